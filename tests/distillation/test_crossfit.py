"""Cross-fitted teacher outputs: fold bookkeeping, resuming a killed cross-fit, the cache keys, a
stacked ensemble on out-of-fold scores, and a student learning from them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tests.helpers import JANITR_SLICE, TINY_STUDENT, TINY_XGBOOST, compose_train
from toxmod.config import spec_of
from toxmod.data import build_dataset
from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError
from toxmod.models import FitContext
from toxmod.models.crossfit import OutOfFold, assign_folds, cross_fit, texts_sha256
from toxmod.models.temperature import link_for
from toxmod.models.tfidf import TfidfLogRegScorer
from toxmod.paths import project_root
from toxmod.runs.record import RunDir
from toxmod.spec import CrossFitSpec, DataSpec, SplitSpec
from toxmod.splits import prepare_split
from toxmod.stages.train import TrainResult, train

QUICK = ["tracking=none", "bootstrap=0", "plots=false", "latency.batch1_texts=0", "latency.batch64_texts=0"]
LOGREG = ["model=tfidf_logreg", "model.max_features=5000"]


class RecordingLogReg(TfidfLogRegScorer):
    """The real TF-IDF logistic regression, noting which texts each copy was fitted on and scored."""

    log: ClassVar[list[tuple[str, frozenset[str]]]] = []

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> RecordingLogReg:
        self.seen = frozenset(texts)
        self.log.append(("fit", self.seen))
        super().fit(texts, targets, scheme, context)
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        assert not self.seen & set(texts), "a copy scored a text it was fitted on"
        self.log.append(("score", frozenset(texts)))
        return super().predict_scores(texts)


def janitr_train() -> tuple[list[str], np.ndarray, LabelScheme]:
    cfg = compose_train(JANITR_SLICE)
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    part = split.part(dataset, "train")
    return list(part.texts), np.asarray(part.targets), dataset.scheme


def test_folds_are_stratified_seeded_and_cover_every_row() -> None:
    texts, targets, scheme = janitr_train()
    folds = assign_folds(scheme, targets, 4, seed=0)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3] and len(folds) == len(texts)
    scam = scheme.decision_targets(targets)[:, 0]
    shares = [scam[folds == k].mean() for k in range(4)]
    assert max(shares) - min(shares) < 0.03  # each fold holds about the train split's share of scam
    assert np.array_equal(folds, assign_folds(scheme, targets, 4, seed=0))
    assert not np.array_equal(folds, assign_folds(scheme, targets, 4, seed=1))
    for bad in (1, -2):
        with pytest.raises(ConfigError, match=f"crossfit.folds={bad}"):
            CrossFitSpec.of({"folds": bad})


def test_no_copy_scores_a_text_it_was_fitted_on_and_a_killed_cross_fit_resumes(tmp_path: Path) -> None:
    texts, targets, scheme = janitr_train()
    folds = assign_folds(scheme, targets, 4, seed=0)
    RecordingLogReg.log.clear()
    scores, fitted = cross_fit(
        lambda: RecordingLogReg(max_features=5000), texts, targets, scheme, folds, None, tmp_path
    )
    assert fitted == 4 and scores.shape == (len(texts), 2)
    fits = [seen for what, seen in RecordingLogReg.log if what == "fit"]
    scored = [seen for what, seen in RecordingLogReg.log if what == "score"]
    assert len(fits) == len(scored) == 4
    for k, (seen, held_out) in enumerate(zip(fits, scored)):
        assert seen == {t for t, f in zip(texts, folds) if f != k}  # fitted on every other fold
        assert held_out == {t for t, f in zip(texts, folds) if f == k} and not seen & held_out
    assert frozenset().union(*scored) == set(texts)  # every train text scored, by one copy

    # Killed during fold 2 (its scores never written; a half-written staging file left): only fold 2
    # is fitted again, and the scores are the same.
    (tmp_path / "fold-2.npy").unlink()
    (tmp_path / "fold-2.partial.npy").write_bytes(b"half")
    RecordingLogReg.log.clear()
    again, fitted = cross_fit(
        lambda: RecordingLogReg(max_features=5000), texts, targets, scheme, folds, None, tmp_path
    )
    assert fitted == 1 and len(RecordingLogReg.log) == 2
    np.testing.assert_allclose(again, scores)


@pytest.fixture(scope="module")
def crossfit_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    """Two cross-fitted members (3 folds), a stacked ensemble of them, a logreg on other folds (4) and
    one not cross-fitted."""
    root = tmp_path_factory.mktemp("crossfit")
    common = [*JANITR_SLICE, *QUICK, f"paths.cache_dir={root / 'cache'}"]
    runs = {
        "logreg": train(compose_train([*common, *LOGREG, "crossfit.folds=3"]), root / "logreg"),
        "xgboost": train(compose_train([*common, *TINY_XGBOOST, "crossfit.folds=3"]), root / "xgboost"),
        "logreg_k4": train(compose_train([*common, *LOGREG, "crossfit.folds=4"]), root / "logreg_k4"),
        "plain": train(compose_train([*common, *LOGREG]), root / "plain"),
    }
    members = f"model.members=[{runs['logreg'].run_dir},{runs['xgboost'].run_dir}]"
    ensemble = [*common, "model=ensemble", "model.combine=stack_oof", members]
    runs["stacked"] = train(compose_train(ensemble), root / "stacked")
    return runs


@pytest.mark.slow
def test_a_cross_fitted_run_keeps_out_of_fold_scores_and_reuses_cached_folds(
    crossfit_runs: dict[str, TrainResult], tmp_path: Path
) -> None:
    run = crossfit_runs["logreg"]
    record = OutOfFold.read(run.run_dir / RunDir.CROSSFIT)
    assert record is not None and record.k == 3 and len(record.scores) == 377
    manifest = json.loads((run.run_dir / RunDir.MANIFEST).read_text())["files"]
    assert {"crossfit/scores.npy", "crossfit/folds.npy", "crossfit/crossfit.json"} <= set(manifest)
    assert run.metrics["crossfit/folds"] == 3 and run.metrics["crossfit/folds_fitted"] == 3
    # Out of fold, the train texts are as hard as unseen ones: below the model's own train scores.
    texts, targets, scheme = janitr_train()
    assert record.texts_sha256 == texts_sha256(texts)
    from toxmod.runs import load_run

    own = load_run(run.run_dir).scorer.predict_scores(texts)
    assert np.abs(own - targets).mean() < np.abs(record.scores - targets).mean()
    assert 0.5 < run.metrics["crossfit/scam/roc_auc"] < 1.0
    # The same model on the same folds again: every fold read from the cache, the same scores.
    cache = run.run_dir.parent / "cache"
    again = train(
        compose_train([*JANITR_SLICE, *QUICK, *LOGREG, "crossfit.folds=3", f"paths.cache_dir={cache}"]),
        tmp_path / "again",
    )
    assert again.metrics["crossfit/folds_fitted"] == 0
    second = OutOfFold.read(again.run_dir / RunDir.CROSSFIT)
    assert second is not None
    np.testing.assert_array_equal(second.scores, record.scores)


@pytest.mark.slow
def test_a_stacked_ensemble_fits_on_out_of_fold_scores_and_is_cross_fitted_itself(
    crossfit_runs: dict[str, TrainResult],
) -> None:
    stacked = crossfit_runs["stacked"]
    state = json.loads((stacked.run_dir / "model" / "ensemble.json").read_text())
    assert 1 <= stacked.metrics["ensemble/members_selected"] <= 2 and state["selection"]
    losses = [step["valid_log_loss"] for step in state["selection"]]
    assert losses == sorted(losses, reverse=True)  # each member added lowered the valid log-loss
    assert {"crossfit/member0/scam/roc_auc", "crossfit/member1/scam/roc_auc"} <= set(stacked.metrics)
    record = OutOfFold.read(stacked.run_dir / RunDir.CROSSFIT)
    members = [OutOfFold.read(crossfit_runs[m].run_dir / RunDir.CROSSFIT) for m in ("logreg", "xgboost")]
    assert record is not None and all(m is not None and m.same_rows(record) for m in members)


@pytest.mark.slow
def test_members_cross_fitted_on_other_folds_are_refused(
    crossfit_runs: dict[str, TrainResult], tmp_path: Path
) -> None:
    members = f"model.members=[{crossfit_runs['logreg'].run_dir},{crossfit_runs['logreg_k4'].run_dir}]"
    cfg = compose_train([*JANITR_SLICE, *QUICK, "model=ensemble", "model.combine=stack_oof", members])
    with pytest.raises(ConfigError, match="cross-fitted on other folds"):
        train(cfg, tmp_path / "mixed")


def student(teacher: TrainResult, cache: Path, *extra: str) -> list[str]:
    return [
        *JANITR_SLICE,
        *TINY_STUDENT,
        *QUICK,
        "trainer.max_epochs=1",
        "distill=kd",
        f"teacher.run={teacher.run_dir}",
        f"paths.cache_dir={cache}",
        *extra,
    ]


def cache_entries(cache: Path) -> set[str]:
    return {p.name for p in (cache / "teacher").iterdir() if p.is_dir()}


@pytest.mark.slow
def test_a_student_learns_from_out_of_fold_teacher_outputs_cached_by_their_folds(
    crossfit_runs: dict[str, TrainResult], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    stacked = crossfit_runs["stacked"]
    first = train(compose_train(student(stacked, cache)), tmp_path / "a")
    assert first.metrics["teacher/cache_built"] == 1 and first.metrics["teacher/out_of_fold_folds"] == 3
    [entry] = cache_entries(cache)
    manifest = json.loads((cache / "teacher" / entry / "manifest.json").read_text())
    record = OutOfFold.read(stacked.run_dir / RunDir.CROSSFIT)
    assert record is not None and manifest["inputs"]["out_of_fold"]["folds_sha256"] == record.folds_sha256
    # The train rows' logits are the teacher's out-of-fold scores, calibrated.
    temperatures = json.loads((cache / "teacher" / entry / "calibration.json").read_text())["temperatures"]
    expected = link_for(build_dataset(spec_of(DataSpec, compose_train(JANITR_SLICE).data)).scheme).to_logits(
        record.scores
    )
    expected = expected / np.array([temperatures["scam"], temperatures["topic_crypto"]])
    np.testing.assert_allclose(np.load(cache / "teacher" / entry / "logits.npy"), expected, rtol=1e-5)

    # Another point of a sweep reads that entry; the teacher's own scores are another entry.
    again = train(compose_train(student(stacked, cache, "distill.alpha=0.2")), tmp_path / "b")
    assert again.metrics["teacher/cache_built"] == 0 and cache_entries(cache) == {entry}
    full = train(compose_train(student(stacked, cache, "distill.teacher_outputs=full")), tmp_path / "c")
    assert full.metrics["teacher/cache_built"] == 1 and full.metrics["teacher/out_of_fold_folds"] == 0
    assert len(cache_entries(cache)) == 2

    # Other K: other folds, another entry.
    other_k = train(compose_train(student(crossfit_runs["logreg_k4"], cache)), tmp_path / "d")
    assert other_k.metrics["teacher/out_of_fold_folds"] == 4 and len(cache_entries(cache)) == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["crossfit.folds=1", *LOGREG], "crossfit.folds=1: expected 0"),
        (["model=ensemble", "model.combine=stack_oof", "model.members=[MEMBERS]"], "no out-of-fold scores"),
        (
            ["distill.teacher_outputs=crossfit", "teacher.run=PLAIN", *TINY_STUDENT, "distill=kd"],
            "has no out-of",
        ),
        (
            ["distill.teacher_outputs=sometimes", "teacher.run=PLAIN", *TINY_STUDENT, "distill=kd"],
            "expected one of",
        ),
        (["crossfit.folds=3", "teacher.run=PLAIN", *TINY_STUDENT, "distill=kd"], "cross-fit the teacher"),
    ],
    ids=["one-fold", "stack-without-oof", "crossfit-teacher-missing", "unknown-outputs", "student-crossfit"],
)
def test_bad_cross_fit_settings_are_one_line_errors(
    crossfit_runs: dict[str, TrainResult], tmp_path: Path, overrides: list[str], message: str
) -> None:
    plain = crossfit_runs["plain"]
    members = f"{plain.run_dir},{crossfit_runs['logreg'].run_dir}"
    resolved: list[Any] = [
        o.replace("MEMBERS", members).replace("PLAIN", str(plain.run_dir)) for o in overrides
    ]
    with pytest.raises(ConfigError, match=message) as error:
        train(compose_train([*JANITR_SLICE, *QUICK, *resolved]), tmp_path / "bad")
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_stack_oof_on_levels_fits_one_multinomial_on_out_of_fold_logits() -> None:
    """A levels scheme (Davidson's three ordinal levels): the stack over out-of-fold scores is one
    multinomial regression, its out-of-fold output a distribution per row."""
    from toxmod.models import ValidationData
    from toxmod.models.ensemble import EnsembleScorer

    cfg = compose_train(["data=davidson", "split=stratified", "data.max_rows=1500"])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    train_part, valid = split.part(dataset, "train"), split.part(dataset, "valid")
    texts, targets = list(train_part.texts), np.asarray(train_part.targets)
    folds = assign_folds(dataset.scheme, targets, 3, seed=0)
    members, out_of_fold = [], []
    for features in (2000, 20000):
        make = lambda features=features: TfidfLogRegScorer(max_features=features)  # noqa: E731
        members.append(make().fit(texts, targets, dataset.scheme))
        scores, _ = cross_fit(make, texts, targets, dataset.scheme, folds, None, Path(tempfile.mkdtemp()))
        out_of_fold.append(scores)
    ensemble = EnsembleScorer(["a", "b"], combine="stack_oof", select_members=False)
    ensemble.attach_members(members)
    ensemble.attach_out_of_fold(out_of_fold)
    context = FitContext(validation=ValidationData(list(valid.texts), valid.targets))
    ensemble.fit(texts, targets, dataset.scheme, context)
    assert len(ensemble.stack) == 1 and np.asarray(ensemble.stack[0]["coef"]).shape == (3, 6)
    combined = ensemble.out_of_fold_scores()
    assert combined is not None and combined.shape == (len(texts), 3)
    np.testing.assert_allclose(combined.sum(axis=1), 1.0)
    assert ensemble.predict_scores(list(valid.texts)).shape == (len(valid), 3)


@pytest.mark.slow
def test_a_cross_fit_killed_mid_way_continues_with_the_folds_it_has(tmp_path: Path) -> None:
    """kill -9 once the first fold's scores exist: the same command again fits only the folds missing."""
    cache = tmp_path / "cache"
    overrides = [*JANITR_SLICE, *QUICK, *TINY_XGBOOST, "crossfit.folds=8", f"paths.cache_dir={cache}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "toxmod.train", *overrides, f"hydra.run.dir={tmp_path / 'killed'}"],
        cwd=project_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(cache.glob("crossfit/*/fold-0.npy")) and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before its first fold was written"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(cache.glob("crossfit/*/fold-[0-9].npy")))
    assert 1 <= done < 8 and not (tmp_path / "killed" / "holdout_eval.json").exists()

    again = train(compose_train(overrides), tmp_path / "again")
    assert again.metrics["crossfit/folds_fitted"] == 8 - done
    record = OutOfFold.read(again.run_dir / RunDir.CROSSFIT)
    assert record is not None and record.k == 8 and np.isfinite(record.scores).all()
