"""The train stage's steps, each run on its own: what it takes, what it returns, what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import JANITR_SLICE, compose_train
from toxmod.config import spec_of
from toxmod.errors import ConfigError
from toxmod.evaluation import evaluate_predictions
from toxmod.progress import StageClock
from toxmod.runs.record import RunDir
from toxmod.runs.tracking import NullTracker
from toxmod.spec import CalibrationSpec
from toxmod.splits import build_manifest
from toxmod.stages.steps import STEPS
from toxmod.stages.steps.calibrate import calibrate
from toxmod.stages.steps.components import build_components
from toxmod.stages.steps.data import PreparedData, default_run_name, prepare_data
from toxmod.stages.steps.evaluate import evaluate_run, split_metrics
from toxmod.stages.steps.fit import fit_context, fit_model
from toxmod.stages.steps.score import reported_splits, score_and_threshold
from toxmod.stages.steps.teacher import teacher_outputs
from toxmod.thresholds import Thresholds

LOGREG = [*JANITR_SLICE, "model=tfidf_logreg", "tracking=none"]


@pytest.mark.data_free
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["threshold.fit_split=holdout"], "never on the holdout"),
        (["teacher.run=/some/run"], "teacher.run=/some/run needs distill=kd"),
        (["distill=kd"], "distill=kd needs teacher.run="),
        (["model=tfidf_logreg", "distill=kd", "teacher.run=/some/run"], "cannot learn from a teacher"),
    ],
)
def test_components_refuse_from_config_alone(tmp_path: Path, overrides: list[str], message: str) -> None:
    cfg = compose_train(["data.path=/nowhere/missing.csv", *overrides])  # no data is read
    with pytest.raises(ConfigError, match=message):
        build_components(cfg, RunDir(tmp_path))


@pytest.fixture(scope="module")
def prepared_logreg(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    cfg = compose_train(LOGREG)
    run = RunDir(tmp_path_factory.mktemp("steps"))
    components = build_components(cfg, run)
    return cfg, run, components, prepare_data(cfg, components, StageClock())


def test_data_step_gives_the_split_and_its_hash(prepared_logreg) -> None:  # noqa: ANN001
    _, _, _, prepared = prepared_logreg
    assert isinstance(prepared, PreparedData)
    parts = prepared.parts()
    assert sum(len(p) for p in parts.values()) <= len(prepared.dataset) <= 600  # purged rows leave train
    assert prepared.split_sha256 == build_manifest(prepared.dataset, prepared.split)["split_sha256"]
    assert set(parts) == {"train", "valid", "calib", "holdout"} and all(len(p) for p in parts.values())


def test_optional_steps_add_nothing_when_off(prepared_logreg) -> None:  # noqa: ANN001
    cfg, run, components, prepared = prepared_logreg
    assert teacher_outputs(cfg, prepared, NullTracker()) == (None, {})  # no teacher.run
    scorer = components.scorer
    none = spec_of(CalibrationSpec, cfg.calibration)
    assert calibrate(none, scorer, prepared.parts()["valid"], run) == (scorer, {})  # calibration=none


def test_fit_score_and_evaluate_steps(prepared_logreg) -> None:  # noqa: ANN001
    cfg, run, components, prepared = prepared_logreg
    parts, tracker, clock = prepared.parts(), NullTracker(), StageClock()
    context = fit_context(cfg, parts, tracker, components, None, None)
    assert context.validation is not None and len(context.validation.texts) == len(parts["valid"])
    fitted = fit_model(cfg, components.scorer, parts["train"], "janitr", context, clock)
    fitted.scorer.save(run.model)
    splits = reported_splits(cfg, components.fit_split)
    assert splits == ["calib", "valid", "holdout"]
    scored = score_and_threshold(
        splits, fitted.scorer, parts, components.thresholder, components.fit_split, run, clock
    )
    assert Thresholds.load(run.thresholds).as_dict() == scored.thresholds.as_dict()
    calib = scored.scored["calib"]  # the thresholds hold the FPR budget on the split they were fit on
    scheme = prepared.dataset.scheme
    flagged = scheme.decision_scores(calib.scores) >= scored.thresholds.as_array()[None, :]
    negatives = ~scheme.decision_targets(calib.targets)
    assert np.all((flagged & negatives).sum(axis=0) <= np.floor(0.02 * negatives.sum(axis=0) + 1e-9))

    holdout = list(parts["holdout"].texts)
    metrics = evaluate_run(
        cfg, run, fitted, scored, holdout, len(parts["train"]), components, tracker, clock, {}
    )
    expected = evaluate_predictions(
        scheme, scored.holdout.scores, scored.holdout.targets, scored.thresholds.as_array(), 0, 0
    )
    assert metrics["holdout/macro_f1"] == expected["macro_f1"]
    assert split_metrics(scheme, scored.holdout, scored.thresholds, 0, 0) == expected
    assert metrics["train_rows"] == len(parts["train"]) and "plots_seconds" not in metrics  # plots=false


@pytest.mark.data_free
def test_the_run_name_says_what_the_command_changed() -> None:
    name = default_run_name("tfidf_logreg", "janitr", ["threshold=optuna", "model.C=2", "tracking=none"])
    assert name.startswith("tfidf_logreg-janitr-optuna-C=2-") and len(name.rsplit("-", 1)[1]) == 4
    assert STEPS[0] == "components" and STEPS[-1] == "record"


@pytest.mark.data_free
def test_members_and_corpora_are_composed_before_any_work(tmp_path: Path) -> None:
    """Every member config and every ``distill.transfer`` source is made concrete when the run starts:
    a wrong name fails before the first member trains or any data is read."""
    from toxmod.stages.steps.components import transfer_corpora
    from toxmod.stages.steps.members import member_jobs

    ensemble = ["model=ensemble", "teacher.member=tfidf_logreg", "teacher.seeds=[1,2]"]
    jobs = member_jobs(compose_train([*ensemble, "teacher.also_train=[tfidf_xgboost]"]))
    assert [(j.member, j.seed, j.config.model.name) for j in jobs] == [
        ("tfidf_logreg", 1, "tfidf_logreg"),
        ("tfidf_logreg", 2, "tfidf_logreg"),
        ("tfidf_xgboost", 0, "tfidf_xgboost"),
    ]
    assert all(j.config.teacher.seeds == [] and j.config.resume == "auto" for j in jobs)
    with pytest.raises(Exception, match="nope"):  # Hydra's missing option, before any member trains
        member_jobs(compose_train([*ensemble, "teacher.also_train=[nope]"]))

    texts = tmp_path / "unlabeled.txt"
    texts.write_text("claim your airdrop\n")
    corpora = transfer_corpora(compose_train(["distill=kd", f"distill.transfer=[train,ruddit,{texts}]"]))
    assert [(c.source, c.data is not None, c.path) for c in corpora] == [
        ("ruddit", True, None),
        (str(texts), False, texts),
    ]
    assert corpora[0].data is not None and corpora[0].data.name == "ruddit"  # composed, not read
    with pytest.raises(ConfigError, match=r"^distill.transfer=/no/such.txt: no such file"):
        transfer_corpora(compose_train(["distill=kd", "distill.transfer=[train,/no/such.txt]"]))
