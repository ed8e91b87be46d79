"""Step 7: score every split the run reports through the scoring interface, then choose thresholds
on the fit split (calib or valid; never the holdout)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from toxmod.data import LabeledDataset
from toxmod.evaluation.scoring import ScoredSplit, score_split
from toxmod.models import Scorer
from toxmod.models.capabilities import scoring_report
from toxmod.progress import StageClock
from toxmod.runs.record import EVALUATION_SPLIT, RunDir
from toxmod.thresholds import Thresholder, Thresholds


@dataclass(frozen=True)
class ScoredRun:
    """Each reported split's scores, the scoring reports (e.g. LLM tokens) and the fitted thresholds."""

    scored: dict[str, ScoredSplit]
    reports: dict[str, dict[str, float]]
    thresholds: Thresholds

    @property
    def holdout(self) -> ScoredSplit:
        return self.scored[EVALUATION_SPLIT]


def reported_splits(cfg: DictConfig, fit_split: str) -> list[str]:
    """The splits a run scores: the fit split, ``evaluate_splits`` and always the holdout, once each."""
    return list(dict.fromkeys([fit_split, *cfg.evaluate_splits, EVALUATION_SPLIT]))


def score_and_threshold(
    splits: list[str],
    scorer: Scorer,
    parts: dict[str, LabeledDataset],
    thresholder: Thresholder,
    fit_split: str,
    run: RunDir,
    clock: StageClock,
) -> ScoredRun:
    """Score ``splits``, fit thresholds on ``fit_split`` and save them as the run's ``thresholds.json``."""
    scored, reports = {}, {}
    with clock.stage("score"):
        for name in splits:
            scored[name] = score_split(scorer, parts[name])
            reports[name] = scoring_report(scorer)
    scheme = parts[fit_split].scheme
    with clock.stage("thresholds"):
        thresholds = thresholder.fit(scheme, scored[fit_split].scores, scored[fit_split].targets)
    thresholds.save(run.thresholds)
    return ScoredRun(scored, reports, thresholds)
