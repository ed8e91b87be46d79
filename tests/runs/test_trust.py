"""A run someone else made can be opened safely: nothing in it runs code, and a damaged file is one line.

Each test copies a real finished run and plants a pickle, a level rule, a ``_target_`` or a checkpoint
that would create a marker file if it were executed; the marker must never appear.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml
from omegaconf import DictConfig

from tests.helpers import compose_train, reseal, run_entry
from toxmod.errors import ConfigError, DamagedFileError, ToxmodError
from toxmod.models import load_scorer
from toxmod.runs import load_run
from toxmod.stages.evaluate import evaluate_run
from toxmod.stages.train import TrainResult, train

SLICE = ["data=janitr", "data.max_rows=600", "tracking=none", "bootstrap=0"]


class Planted:
    """Unpickling this creates ``path``: what a malicious pickle could do instead."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.makedirs, (str(self.path),))


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    root = tmp_path_factory.mktemp("finished")
    logreg = ["model=tfidf_logreg", "model.max_features=5000"]
    xgboost = [
        "model=tfidf_xgboost",
        "model.n_estimators=10",
        "model.linear_folds=2",
        "model.max_features=5000",
    ]
    return {
        "logreg": train(compose_train([*SLICE, *logreg]), root / "logreg"),
        "xgboost": train(compose_train([*SLICE, *xgboost]), root / "xgboost"),
    }


def copy_of(run: TrainResult, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run.run_dir, tmp_path / "copy"))


def test_classical_models_are_saved_without_pickle_and_reload_exactly(finished_runs: dict) -> None:
    for run in finished_runs.values():
        files = {p.name for p in (run.run_dir / "model").iterdir()}
        assert "model.joblib" not in files and {"model.npz", "model.json", "scorer.json"} <= files
        assert evaluate_run(run.run_dir).max_difference == 0.0
    assert "booster0.ubj" in {p.name for p in (finished_runs["xgboost"].run_dir / "model").iterdir()}


def test_a_pickled_model_is_refused_unless_allowed(finished_runs: dict, tmp_path: Path) -> None:
    run_dir = copy_of(finished_runs["logreg"], tmp_path)
    scorer = load_scorer(run_dir / "model")
    texts = ["claim your free airdrop now", "good morning"]
    # The older format: the same model as one pickle. Benign here, and read only when allowed.
    state = {"featurizer": scorer.featurizer, "estimators": scorer.estimators, "task_classes": [2, 2]}
    for name in ("model.npz", "model.json"):
        (run_dir / "model" / name).unlink()
    joblib.dump(state, run_dir / "model" / "model.joblib")
    with pytest.raises(DamagedFileError, match=r"model.joblib: a pickle, which runs whatever code it holds"):
        load_scorer(run_dir / "model")
    assert np.array_equal(
        load_scorer(run_dir / "model", allow_pickle=True).predict_scores(texts), scorer.predict_scores(texts)
    )

    marker = tmp_path / "pickle-ran"
    (run_dir / "model" / "model.joblib").write_bytes(pickle.dumps(Planted(marker)))
    reseal(run_dir)
    result = run_entry("evaluate", f"run={run_dir}", "tracking=none", f"paths.output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "a pickle, which runs whatever code it holds" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "rule",
    [
        "__import__('os').makedirs('{marker}')",
        "@pd.io.common.os.makedirs('{marker}')",  # DataFrame.eval's local-variable syntax
        "toxic.__class__",
        "toxic | open('{marker}', 'w')",
    ],
)
def test_a_level_rule_cannot_run_code(tmp_path: Path, rule: str) -> None:
    marker = tmp_path / "rule-ran"
    evil = rule.format(marker=marker)
    cfg = compose_train(["data=jigsaw_levels", f"data.level_rules.severe={json.dumps(evil)}", *SLICE[2:]])
    with pytest.raises(ConfigError, match=r"data.level_rules.severe: "):
        train(cfg, tmp_path / "run")
    assert not marker.exists()


def test_the_level_rule_grammar_gives_pandas_results() -> None:
    from toxmod.data.rules import evaluate_rule

    columns = {"a": np.array([0, 1, 1, 0]), "b": np.array([0, 0, 1, 1])}
    cases = {
        "a & b": [0, 0, 1, 0],
        "a | ~b": [1, 1, 1, 0],
        "not a and b": [0, 0, 0, 1],
        "a == 0": [1, 0, 0, 1],
    }
    for rule, expected in cases.items():
        assert evaluate_rule(rule, columns, "k").tolist() == [bool(v) for v in expected], rule
    with pytest.raises(ConfigError, match="names 'c', which is not a column"):
        evaluate_rule("a & c", columns, "k")


def plant_target(run_dir: Path, marker: Path) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["model"]["optimizer"] = {"_target_": "os.makedirs", "_args_": [str(marker)]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    reseal(run_dir)


def test_a_run_config_naming_foreign_code_is_refused(finished_runs: dict, tmp_path: Path) -> None:
    run_dir = copy_of(finished_runs["logreg"], tmp_path)
    marker = tmp_path / "target-ran"
    plant_target(run_dir, marker)
    with pytest.raises(
        ConfigError,
        match="model.optimizer._target_='os.makedirs' is not one of the classes toxmod's configs name",
    ):
        load_run(run_dir)
    result = run_entry("evaluate", f"run={run_dir}", "tracking=none", f"paths.output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and "model.optimizer._target_='os.makedirs'" in result.stderr
    assert not marker.exists()


def resume_copy(shared, tmp_path: Path) -> tuple[Path, DictConfig]:  # noqa: ANN001 - SharedRun
    """A copy of the shared tiny student run, and the config that resumes it."""
    from tests.helpers import JANITR_SLICE, TINY_STUDENT, tracking_overrides

    run_dir = Path(shutil.copytree(shared.result.run_dir, tmp_path / "copy"))
    record = json.loads((run_dir / "tracking.json").read_text())
    # a copy continues no tracking run of its own (a resume may continue only its folder's run)
    (run_dir / "tracking.json").write_text(json.dumps({**record, "run_id": None}))
    overrides = [*JANITR_SLICE, *TINY_STUDENT, *tracking_overrides(shared.store), "trainer.max_epochs=3"]
    return run_dir, compose_train([*overrides, f"resume={run_dir}"])


@pytest.mark.slow
def test_a_resumed_run_config_naming_foreign_code_is_refused(tiny_student_run, tmp_path: Path) -> None:  # noqa: ANN001
    run_dir, cfg = resume_copy(tiny_student_run, tmp_path)
    marker = tmp_path / "target-ran"
    plant_target(run_dir, marker)
    with pytest.raises(ConfigError, match="model.optimizer._target_='os.makedirs'"):
        train(cfg, tmp_path / "new")
    assert not marker.exists()


@pytest.mark.slow
def test_a_planted_checkpoint_is_refused_on_resume(tiny_student_run, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    run_dir, cfg = resume_copy(tiny_student_run, tmp_path)
    marker = tmp_path / "checkpoint-ran"
    torch.save({"state_dict": {}, "payload": Planted(marker)}, run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(DamagedFileError, match=r"last.ckpt: not a checkpoint that can be read safely"):
        train(cfg, tmp_path / "new")
    assert not marker.exists()


def damage(run_dir: Path, case: str) -> None:
    model = run_dir / "model"

    def edit_json(path: Path, change) -> None:  # noqa: ANN001
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    actions = {
        "model_arrays_truncated": lambda: (model / "model.npz").write_bytes(
            (model / "model.npz").read_bytes()[:100]
        ),
        "model_arrays_empty": lambda: (model / "model.npz").write_bytes(b""),
        "model_arrays_missing": lambda: (model / "model.npz").unlink(),
        "model_state_bad_json": lambda: (model / "model.json").write_text('{"featurizer": '),
        "booster_truncated": lambda: (model / "booster0.ubj").write_bytes(b"{"),
        "scorer_bad_json": lambda: (model / "scorer.json").write_text("{not json"),
        "scorer_unknown_kind": lambda: edit_json(model / "scorer.json", lambda d: d.update(kind="svm")),
        "scorer_unknown_parameter": lambda: edit_json(
            model / "scorer.json", lambda d: d["params"].update(gamma=1)
        ),
        "thresholds_bad_json": lambda: (run_dir / "thresholds.json").write_text("[1, 2"),
        "thresholds_not_numbers": lambda: edit_json(
            run_dir / "thresholds.json", lambda d: d["thresholds"].update(scam="high")
        ),
        "thresholds_missing_label": lambda: edit_json(
            run_dir / "thresholds.json", lambda d: d["thresholds"].pop("topic_crypto")
        ),
        "thresholds_extra_label": lambda: edit_json(
            run_dir / "thresholds.json", lambda d: d["thresholds"].update(spam=0.5)
        ),
        "holdout_eval_bad_json": lambda: (run_dir / "holdout_eval.json").write_text("{"),
        "config_bad_yaml": lambda: (run_dir / "config.yaml").write_text("data: [unclosed\n  - x: {"),
    }
    actions[case]()
    reseal(run_dir)  # the reader behind the manifest check must hold on its own


DAMAGE = {
    "model_arrays_truncated": "model.npz: not a readable array file",
    "model_arrays_empty": "model.npz: not a readable array file",
    "model_arrays_missing": "model.npz: missing",
    "model_state_bad_json": "model.json: not valid JSON",
    "booster_truncated": "booster0.ubj: not a readable XGBoost model",
    "scorer_bad_json": "scorer.json: not valid JSON",
    "scorer_unknown_kind": "scorer.json: unknown model kind 'svm'",
    "scorer_unknown_parameter": "scorer.json: parameters do not fit",
    "thresholds_bad_json": "thresholds.json: not valid JSON",
    "thresholds_not_numbers": "thresholds.json: threshold 'scam' is 'high', not a finite number",
    "thresholds_missing_label": "thresholds.json: thresholds name ['scam'], but the decisions are",
    "thresholds_extra_label": "(missing [], unknown ['spam'])",
    "holdout_eval_bad_json": "holdout_eval.json: not valid JSON",
    "config_bad_yaml": "config.yaml: not a readable config",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_file_is_one_line_naming_it(finished_runs: dict, tmp_path: Path, case: str) -> None:
    run_dir = copy_of(finished_runs["xgboost" if case == "booster_truncated" else "logreg"], tmp_path)
    damage(run_dir, case)
    with pytest.raises(ToxmodError) as raised:
        evaluate_run(run_dir)
    message = str(raised.value)
    assert "\n" not in message and DAMAGE[case] in message and message.startswith(str(run_dir))


@pytest.mark.parametrize("case", ["scorer_unknown_parameter", "config_bad_yaml"])
def test_the_command_line_gives_a_damaged_file_one_line_and_exit_2(
    finished_runs: dict, tmp_path: Path, case: str
) -> None:
    run_dir = copy_of(finished_runs["logreg"], tmp_path)
    damage(run_dir, case)
    result = run_entry("evaluate", f"run={run_dir}", "tracking=none", f"paths.output_dir={tmp_path / 'out'}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and DAMAGE[case] in lines[0] and "Traceback" not in result.stderr


def test_thresholds_are_applied_by_name_not_position(finished_runs: dict, tmp_path: Path) -> None:
    run_dir = copy_of(finished_runs["logreg"], tmp_path)
    path = run_dir / "thresholds.json"
    data = json.loads(path.read_text())
    data["thresholds"] = dict(reversed(list(data["thresholds"].items())))  # topic_crypto first
    path.write_text(json.dumps(data))
    reseal(run_dir)
    evaluation = evaluate_run(run_dir)
    assert list(json.loads(path.read_text())["thresholds"]) == ["topic_crypto", "scam"]
    assert evaluation.reproduced and evaluation.max_difference == 0.0
