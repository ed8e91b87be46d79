"""Every option of every config group composes with the train root config."""

from __future__ import annotations

import pytest

from tests.helpers import compose_train
from toxmod.config import compose_config, one_line_hydra_error
from toxmod.hardware import resolve_hardware
from toxmod.paths import CONFIG_DIR

GROUPS = ["data", "split", "model", "threshold", "tracking", "hardware", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_resolves(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "data" and option == "csv":
        overrides.append("data.path=/tmp/some.csv")
    cfg = compose_train(overrides)
    container = cfg[group] if group != "experiment" else cfg
    assert container is not None
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


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
    settings = resolve_hardware(compose_train(["hardware=cpu", "hardware.threads=2"]).hardware)
    assert (settings.accelerator, settings.precision, settings.threads) == ("cpu", "32-true", 2)


def test_hydra_errors_become_one_line() -> None:
    message = (
        "In 'train': Could not find 'model/x'\n\nAvailable options in 'model':\n\ta\n\tb\n"
        "Config search path:\n\tp"
    )
    assert (
        one_line_hydra_error(message)
        == "In 'train': Could not find 'model/x' (available options in 'model': a, b)"
    )
