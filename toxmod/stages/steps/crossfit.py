"""Step 6 (optional, ``crossfit.folds``): the run's out-of-fold scores on its train split.

K copies of the run's model config, each fitted without one fold of the train rows, score that fold
(``models/crossfit.py``; each fold's scores are cached as soon as they exist, so a killed cross-fit
continues). An ensemble of cross-fitted runs is cross-fitted by combining its members' out-of-fold
scores. The scores go to ``crossfit/`` in the run (what a student's teacher outputs and a stacked
ensemble read) with their ranking metrics on the train split (``crossfit/<decision>/...``).
"""

from __future__ import annotations

import time

import numpy as np
from omegaconf import DictConfig

from toxmod.config import as_dict, instantiate_component, spec_of
from toxmod.data import LabeledDataset
from toxmod.data.schemes import LabelScheme
from toxmod.evaluation.metrics import ranking
from toxmod.models import FitContext, Scorer
from toxmod.models.calibrated import TemperatureScaled
from toxmod.models.capabilities import OutOfFoldFromRuns
from toxmod.models.crossfit import (
    OutOfFold,
    assign_folds,
    cross_fit,
    cross_fit_key,
    texts_sha256,
)
from toxmod.progress import StageClock, console, styled
from toxmod.runs.record import RunDir
from toxmod.spec import CrossFitSpec, PathsSpec
from toxmod.stages.steps.components import Components, crossfit_settings
from toxmod.thresholds.cuts import threshold_at_fpr

NOT_IN_KEY = ("n_jobs", "name")  # the process's CPU share and the config's label do not change scores


def cross_fit_run(
    cfg: DictConfig,
    run: RunDir,
    train: LabeledDataset,
    scorer: Scorer,
    context: FitContext,
    components: Components,
    members: list[OutOfFold],
    clock: StageClock,
) -> dict[str, float]:
    """The run's out-of-fold train scores saved in ``crossfit/`` and their metrics (empty: none)."""
    settings = crossfit_settings(cfg)
    inner = scorer.inner if isinstance(scorer, TemperatureScaled) else scorer
    metrics: dict[str, float] = {}
    if isinstance(inner, OutOfFoldFromRuns):
        combined = inner.out_of_fold_scores() if members else None
        if combined is None:
            return {}
        record = OutOfFold(combined, members[0].folds, members[0].seed, members[0].texts_sha256)
        for i, member in enumerate(members):  # each member's beside the ensemble's
            prefix = f"crossfit/member{i}"
            metrics.update(
                out_of_fold_metrics(train.scheme, member.scores, train.targets, components, prefix)
            )
    elif settings.enabled:
        record, fitted, seconds = _refitted(cfg, train, context, components, settings, clock)
        metrics.update({"crossfit/folds_fitted": float(fitted), "crossfit/seconds": seconds})
    else:
        return {}
    if isinstance(scorer, TemperatureScaled) and scorer.temperatures is not None:
        scores = scorer.temperatures.apply(train.scheme, record.scores)
        record = OutOfFold(scores, record.folds, record.seed, record.texts_sha256)
    record.save(run / RunDir.CROSSFIT)
    metrics["crossfit/folds"] = float(record.k)
    metrics.update(out_of_fold_metrics(train.scheme, record.scores, train.targets, components, "crossfit"))
    return metrics


def _refitted(
    cfg: DictConfig,
    train: LabeledDataset,
    context: FitContext,
    components: Components,
    settings: CrossFitSpec,
    clock: StageClock,
) -> tuple[OutOfFold, int, float]:
    texts, targets, scheme = list(train.texts), np.asarray(train.targets), train.scheme
    folds = assign_folds(scheme, targets, settings.folds, settings.seed)
    model = {k: v for k, v in as_dict(cfg.model).items() if k not in NOT_IN_KEY}
    description = {
        "model": model,
        "trainer": as_dict(cfg.get("trainer")),
        "early_stopping": as_dict(cfg.get("early_stopping")),
        "checkpoint_monitor": cfg.checkpoint.get("monitor"),
        # a network's numbers depend on its precision; a classical model's do not
        "precision": components.hardware.precision if components.scorer.neural_models else None,
        "scheme": scheme.describe(),
    }
    texts_hash = texts_sha256(texts)
    key = cross_fit_key(description, texts_hash, targets, folds)
    store = spec_of(PathsSpec, cfg.paths).cache_dir / "crossfit" / key[:24]

    def announce(fold: int, k: int, rows: int) -> None:
        console.print(styled("cross-fitting", f" {cfg.model.name} fold {fold + 1}/{k} on {rows} train rows"))

    started = time.perf_counter()
    with clock.stage("crossfit"):
        scores, fitted = cross_fit(
            lambda: instantiate_component(cfg.model, "model"),
            texts,
            targets,
            scheme,
            folds,
            context,
            store,
            announce,
        )
    reused = settings.folds - fitted
    console.print(f"cross-fit: {settings.folds} folds ({fitted} fitted now, {reused} read from {store})")
    return OutOfFold(scores, folds, settings.seed, texts_hash), fitted, time.perf_counter() - started


def out_of_fold_metrics(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, components: Components, prefix: str
) -> dict[str, float]:
    """Each decision's ROC-AUC, PR-AUC and recall at its FPR target on out-of-fold train scores (at
    the threshold reaching the target on these same scores: a ranking number, not an operating point)."""
    decision_scores, truth = scheme.decision_scores(scores), scheme.decision_targets(targets)
    metrics: dict[str, float] = {}
    for j, name in enumerate(scheme.decision_names):
        positive = truth[:, j].astype(bool)
        metrics[f"{prefix}/{name}/roc_auc"], metrics[f"{prefix}/{name}/pr_auc"] = ranking(
            positive, decision_scores[:, j]
        )
        target = components.fpr_targets.get(name)
        if target is not None and positive.any() and not positive.all():
            _, info = threshold_at_fpr(decision_scores[:, j], positive, target)
            metrics[f"{prefix}/{name}/recall_at_fpr"] = float(info["fit_recall"])
    return metrics
