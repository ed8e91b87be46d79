"""The typed specifications of the config groups: one default per key (the YAML's), one-line errors
naming the key, and what the rest of the code derives from the declarations."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from tests.helpers import compose_train
from toxmod.config import RANGES, compose_config, group_options, spec_of
from toxmod.data import build_dataset
from toxmod.errors import ConfigError
from toxmod.paths import PACKAGE_DIR
from toxmod.runs.jobs import RESUME_FREE_KEYS, changes_the_model
from toxmod.spec import SPECS, DataSpec, HardwareSpec, SplitSpec, group_defaults

pytestmark = pytest.mark.data_free


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.GROUP)
def test_every_key_has_one_default_and_one_declaration(spec: type) -> None:
    declared = [f.name for f in dataclasses.fields(spec) if f.name not in ("target", spec.OPTION_KEYS)]
    assert sorted(declared) == sorted(group_defaults(spec.GROUP, spec.ROOT))
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(spec))  # the YAML's only


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.GROUP)
def test_every_shipped_option_makes_its_specification(spec: type) -> None:
    """Each option of a group; a block of the train config (``checkpoint``) as composed."""
    for option in group_options(spec.GROUP) if spec.ROOT is None else [None]:
        if option is None:
            made = spec_of(spec, compose_config(spec.ROOT)[spec.GROUP])
        else:
            made = spec_of(spec, compose_train([f"{spec.GROUP}={option}"])[spec.GROUP])
        assert isinstance(made, spec), option
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.seed = 1  # type: ignore[misc]


def test_values_become_their_declared_types() -> None:
    made = spec_of(DataSpec, compose_train(["data=davidson"]).data)
    assert made.levels == ("neither", "offensive", "hate") and made.level_values == {
        "0": "hate",
        "1": "offensive",
        "2": "neither",
    }
    assert made.path is not None and made.path.endswith("labeled_data.csv.gz")  # interpolation resolved
    assert DataSpec.of({"level_bins": [1, 2.5], "label_columns": [0, "y"]}).level_bins == (1.0, 2.5)
    assert DataSpec.of({"label_columns": [0, "y"]}).label_columns == ("0", "y")  # YAML read a name as 0
    assert made.as_dict()["levels"] == ["neither", "offensive", "hate"]


def test_a_key_a_saved_config_lacks_takes_the_yaml_default() -> None:
    """A run saved before a key existed opens with that key's default."""
    made = DataSpec.of({"name": "old", "path": "posts.csv", "label_columns": ["y"]})
    assert (made.text_column, made.drop_empty_texts, made.on_leak, made.seed) == ("text", False, "refuse", 0)
    assert HardwareSpec.of({"accelerator": "cpu"}).devices == 1


@pytest.mark.parametrize(
    ("spec", "values", "message"),
    [
        (DataSpec, {"max_rows": "many"}, "data.max_rows='many': expected an integer"),
        (DataSpec, {"max_rows": 0}, "data.max_rows=0: expected a positive integer"),
        (DataSpec, {"drop_empty_texts": "yes"}, "data.drop_empty_texts='yes': expected true or false"),
        (DataSpec, {"label_columns": "y"}, "data.label_columns='y': expected a list of texts"),
        (DataSpec, {"level_values": [1]}, r"data.level_values=\[1\]: expected a mapping"),
        (DataSpec, {"text_colum": "t"}, "data.text_colum is not a setting; data has auxiliary, "),
        (DataSpec, {"text_column": None}, "data.text_column is not set"),
        (HardwareSpec, {"devices": True}, "hardware.devices=True: expected an integer or text"),
        (HardwareSpec, {"threads": 0}, "hardware.threads=0: expected a positive integer"),
        (HardwareSpec, {"num_workers": -1}, "hardware.num_workers=-1: expected a non-negative integer"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(spec: type, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}") as raised:
        spec.of(values)
    assert "\n" not in str(raised.value)


def test_a_split_keeps_its_builders_own_arguments() -> None:
    frozen = spec_of(SplitSpec, compose_train(["data=janitr", "split=frozen"]).split)
    assert frozen.target == "toxmod.splits.builders.frozen_split" and frozen.on_leak == "purge_train"
    assert frozen.arguments == {"dir": None, "carve": None, "allow_data_change": False}
    drawn = spec_of(SplitSpec, compose_train(["split=stratified", "split.sample={calib: 50}"]).split)
    assert drawn.arguments["ratios"]["train"] == 0.6 and drawn.sample == {"calib": 50}
    with pytest.raises(ConfigError, match=r"^split.sample=\{'calib': 'x'\}: expected a mapping$"):
        SplitSpec.of({"_target_": "f", "name": "n", "sample": {"calib": "x"}})
    with pytest.raises(ConfigError, match=r"^split._target_ is not set$"):
        SplitSpec.of({"name": "n"})


def test_an_unset_path_is_said_when_the_file_is_read() -> None:
    """``data=csv`` names the data after its path (an interpolation of an unset value): the scheme can be
    made without a file, reading one says which key to set."""
    made = spec_of(DataSpec, compose_train(["data=csv", "data.label_columns=[y]"]).data)
    assert made.path is None and made.name is None and made.label_columns == ("y",)
    with pytest.raises(ConfigError, match="^data.path is not set: point it at a CSV, TSV or JSONL file$"):
        build_dataset(made)


def test_ranges_and_free_keys_come_from_the_declarations() -> None:
    assert RANGES["data.max_rows"] == (1, None) and RANGES["hardware.threads"] == (1, None)
    assert RANGES["hardware.num_workers"] == (0, None)
    assert {"data.path", "hardware.", "checkpoint.", "early_stopping."} <= set(RESUME_FREE_KEYS)
    assert RANGES["checkpoint.top_k"] == (1, None) and RANGES["early_stopping.min_delta"] == (0.0, None)
    assert not changes_the_model("hardware.threads") and not changes_the_model("data.path")
    assert changes_the_model("data.max_rows") and changes_the_model("data.text_column")
    assert changes_the_model("crossfit.folds") and changes_the_model("teacher.seeds")
    assert not changes_the_model("checkpoint.top_k") and not changes_the_model("early_stopping.patience")


BELOW_STAGES_EXEMPT = ("config.py", "conf/", "stages/", "__main__.py")


def test_nothing_below_the_stages_imports_hydra_or_omegaconf() -> None:
    """The layers below the stages get typed specifications and plain mappings, never a composed config."""
    entry_points = {p.name for p in PACKAGE_DIR.glob("*.py") if "hydra.main" in p.read_text()}
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        name = path.relative_to(PACKAGE_DIR).as_posix()
        if name.startswith(BELOW_STAGES_EXEMPT) or name.endswith("__main__.py") or name in entry_points:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            if any(m.split(".")[0] in ("hydra", "omegaconf") for m in modules):
                found.add(name)
    assert found == set()


def test_the_train_blocks_are_typed_with_the_yaml_defaults() -> None:
    from toxmod.models import FitContext
    from toxmod.spec import CalibrationSpec, CheckpointSpec, CrossFitSpec, TeacherSpec

    assert FitContext().checkpoint == CheckpointSpec.of() and CheckpointSpec.of().every_n_steps == 200
    teacher = spec_of(TeacherSpec, compose_train(["teacher.seeds=[13,42]", "teacher.member=minilm"]).teacher)
    assert (teacher.seeds, teacher.member, teacher.also_train) == ((13, 42), "minilm", ())
    with pytest.raises(ConfigError, match=r"^crossfit.folds=1: expected 0 \(off\) or a number of folds"):
        CrossFitSpec.of({"folds": 1})
    with pytest.raises(ConfigError, match=r"^checkpoint.top_k=0: expected a positive integer$"):
        CheckpointSpec.of({"top_k": 0})
    with pytest.raises(ConfigError, match=r"^calibration.method='platt': expected one of"):
        CalibrationSpec.of({"method": "platt"})
