"""Every option of every config group composes with the train root config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra._internal.utils import _locate
from omegaconf import OmegaConf

from tests.helpers import compose_train
from toxmod.config import (
    check_overrides_or_exit,
    compose_config,
    hardware_of,
    instantiate_component,
    one_line_hydra_error,
)
from toxmod.hardware import default_precision
from toxmod.models import SCORER_REGISTRY, Scorer, scorer_class
from toxmod.models.transformer.backbones import StudentArchitecture
from toxmod.paths import CONFIG_DIR

pytestmark = pytest.mark.data_free

GROUPS = ["data", "split", "model", "threshold", "tracking", "hardware", "trainer", "student", "experiment"]
GROUPS += ["prompt"]
USED_BY = {"student": ["model=student"], "prompt": ["model=llm/smollm2_135m"]}  # the models that read them
ROOT_OF = {"suite_format": "evaluate"}  # groups no training job composes: the entry point that does


def compose_with(group: str, overrides: list[str]):  # noqa: ANN201 - DictConfig
    """The config of the entry point that composes ``group`` (training for most), with ``overrides``."""
    if group in ROOT_OF:
        return compose_config(ROOT_OF[group], ["run=some_run", *overrides])
    return compose_train(overrides)


def options(group: str) -> list[str]:
    """The group's options, nested ones as ``llm/smollm2_135m``; ``_``-prefixed bases left out."""
    root = CONFIG_DIR / group
    return sorted(
        str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml") if not p.stem.startswith("_")
    )


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_resolves(group: str, option: str) -> None:
    overrides = [*USED_BY.get(group, []), f"{group}={option}"]
    if group == "data" and option == "csv":
        overrides.append("data.path=/tmp/some.csv")
    resolved = OmegaConf.to_container(
        compose_with(group, overrides), resolve=True
    )  # every interpolation resolves
    chosen = resolved if group == "experiment" else resolved[group]
    assert chosen, f"{group}={option} composed to nothing"
    if group == "data" and option == "csv":  # a user's own file is named after the file
        assert chosen["name"] == "some" and resolved["tracking"]["experiment"] == "some"
    elif "name" in chosen and option != "llm/openai_compat":  # its name is the served model's
        assert chosen["name"] == option.rsplit("/", 1)[-1]  # the option selected is the one composed
    if "_target_" in chosen:  # model, split, threshold, tracking: the class or function exists
        assert callable(_locate(chosen["_target_"]))
    if group == "experiment":
        assert resolved["tags"]["preset"] == option
    if group == "student":
        assert StudentArchitecture(**chosen).bert_config(2).num_hidden_layers == chosen["layers"]
    if group == "hardware":
        assert chosen["accelerator"] in ("auto", "cpu", "cuda", "mps") and chosen["devices"]


def test_a_job_composes_only_the_groups_it_uses() -> None:
    """The student architecture and the LLM prompt appear only with the models that read them."""
    default = compose_train([])
    assert "student" not in default and "prompt" not in default
    student = compose_train(["model=student", "student=h128_l4_a4_i512"])
    assert "prompt" not in student and student.model.student.hidden == 128 == student.student.hidden
    llm = compose_train(["model=llm/phi4", "prompt=few_shot"])
    assert "student" not in llm and llm.model.prompt.name == "few_shot"
    with pytest.raises(Exception, match="Could not override 'student'"):
        compose_train(["student=h128_l4_a4_i512"])  # the default model has no student architecture


@pytest.mark.parametrize("option", options("model"))
def test_every_model_config_builds_a_registered_scorer(option: str) -> None:
    scorer = instantiate_component(compose_train([f"model={option}"]).model, "model")
    assert isinstance(scorer, Scorer) and scorer_class(scorer.kind) is type(scorer)


def test_every_registered_kind_has_a_model_config() -> None:
    kinds = {
        instantiate_component(compose_train([f"model={o}"]).model, "model").kind for o in options("model")
    }
    # temperature_scaled wraps any trained model (calibration=temperature) and onnx is what
    # `toxmod.export` builds from a finished run (conf/export.yaml): neither has a model config
    assert kinds | {"temperature_scaled", "onnx"} == set(SCORER_REGISTRY)


def test_defaults_are_the_documented_main_job() -> None:
    cfg = compose_config("train")
    assert (cfg.data.name, cfg.split.name, cfg.model.name) == ("janitr", "frozen", "tfidf_xgboost")
    assert cfg.threshold.target_fpr == 0.02 and cfg.threshold.fit_split == "calib"
    assert cfg.tracking.uri.startswith("sqlite:///") and cfg.tracking.uri.endswith("/mlruns.db")
    assert cfg.tracking.uri.removeprefix("sqlite:///").startswith("/")  # absolute, not cwd-relative


def test_other_entry_point_configs_compose() -> None:
    for name, overrides in [("evaluate", ["run=x"]), ("split_cli", ["data=davidson"]), ("compare", [])]:
        assert compose_config(name, overrides) is not None


def test_hardware_cpu_resolves_to_full_precision() -> None:
    settings = hardware_of(compose_train(["hardware=cpu", "hardware.threads=2"]).hardware)
    assert (settings.accelerator, settings.precision, settings.threads) == ("cpu", "32-true", 2)
    assert settings.num_workers == 0 and settings.strategy == "auto"


def test_hardware_ddp_spawns_one_process_per_device_and_shares_the_cores() -> None:
    cfg = compose_train(["hardware=ddp", "hardware.accelerator=cpu", "hardware.devices=2"]).hardware
    settings = hardware_of(cfg)
    assert (settings.strategy, settings.devices) == ("ddp_spawn", 2)
    assert settings.precision == default_precision("cpu")[0]  # bf16-mixed on a CPU with bf16 instructions
    import os

    assert settings.threads == max((os.cpu_count() or 1) // 2, 1)


def test_auto_precision_is_bf16_on_a_cpu_with_bf16_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    import toxmod.environment

    monkeypatch.setattr(toxmod.environment, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    precision, why = default_precision("cpu")
    assert precision == "bf16-mixed" and "avx512_bf16" in why
    auto = hardware_of(compose_train(["hardware=auto", "hardware.accelerator=cpu"]).hardware)
    assert (auto.precision, auto.precision_from) == ("bf16-mixed", why)
    explicit = hardware_of(compose_train(["hardware=cpu"]).hardware)  # hardware=cpu says 32-true
    assert (explicit.precision, explicit.precision_from) == ("32-true", "hardware.precision")
    monkeypatch.setattr(toxmod.environment, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert default_precision("cpu") == ("32-true", "auto: the cpu default")
    assert default_precision("cuda")[0] == "bf16-mixed"


def test_model_epochs_feed_the_trainer_and_students_take_any_architecture() -> None:
    cfg = compose_train(["model=student", "student=h384_l4_a6_i1536", "student.layers=6"])
    assert cfg.trainer.max_epochs == cfg.model.max_epochs == 10
    assert (cfg.model.student.hidden, cfg.model.student.heads, cfg.model.student.layers) == (384, 6, 6)
    assert compose_train(["model=minilm"]).trainer.max_epochs == 5
    assert compose_train([]).trainer.max_epochs == 3  # classical models ignore it


def test_hydra_errors_become_one_line() -> None:
    message = (
        "In 'train': Could not find 'model/x'\n\nAvailable options in 'model':\n\ta\n\tb\n"
        "Config search path:\n\tp"
    )
    assert (
        one_line_hydra_error(message)
        == "In 'train': Could not find 'model/x' (available options in 'model': a, b)"
    )


def test_extra_callbacks_are_instantiated_from_config_with_one_line_errors() -> None:
    from lightning.pytorch.callbacks import LearningRateMonitor
    from omegaconf import OmegaConf

    from toxmod.errors import ConfigError

    cfg = compose_train(["+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor"])
    assert isinstance(instantiate_component(cfg.callbacks.lr, "callbacks.lr"), LearningRateMonitor)
    missing = OmegaConf.create({"_target_": "no.such.Callback"})
    with pytest.raises(ConfigError) as error:
        instantiate_component(missing, "callbacks.x")
    assert str(error.value) == (
        "callbacks.x config (no.such.Callback): Error loading 'no.such.Callback': "
        "ModuleNotFoundError(\"No module named 'no'\")"
    )


@pytest.mark.data_free
def test_a_conf_folder_in_the_working_directory_joins_the_search_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "my_model.yaml").write_text(
        "defaults:\n  - tfidf_logreg\n  - _self_\nname: my_model\nC: 0.5\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOXMOD_CONF", raising=False)
    cfg = compose_train(["model=my_model"])
    assert cfg.model.name == "my_model" and cfg.model.C == 0.5 and cfg.model.max_iter == 2000
    monkeypatch.chdir(tmp_path / "conf")  # no conf/ here: the shipped groups only
    with pytest.raises(Exception, match="my_model"):
        compose_train(["model=my_model"])


NOT_A_KEY = "is not a key of this command; did you mean"


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        ("train", ["modle=tfidf_logreg"], f"modle {NOT_A_KEY} model=tfidf_logreg?"),
        ("train", ["+modle=tfidf_logreg"], "modle is read by nothing; did you mean model=tfidf_logreg?"),
        ("train", ["model=tfidf_logreg", "model.Cc=4"], f"model.Cc {NOT_A_KEY} model.C=4?"),
        ("train", ["max_rows=30"], f"max_rows {NOT_A_KEY} data.max_rows=30?"),
        ("evaluate", ["run=x", "subsets=valid"], f"subsets {NOT_A_KEY} subset=valid?"),
    ],
)
def test_an_unknown_key_names_the_closest_one_never_the_plus_hint(
    command: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        check_overrides_or_exit(command, argv)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and message in error
    assert error.count("\n") == 1 and "To append" not in error


def test_known_keys_and_plus_into_a_mapping_pass() -> None:
    callback = "+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor"
    check_overrides_or_exit("train", ["model=tfidf_logreg", "model.C=4", callback, "tags={a: b}"])
