"""``python -m toxmod.evaluate run=<MLflow run id or run dir> [subset=holdout]``: re-score a run.

Reloads the run's resolved config, frozen split (hashes verified against the data file), model and
thresholds, scores the chosen split through the scoring interface, and checks the numbers against
the run's own ``holdout_eval.json``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from toxmod.calibration import Thresholds
from toxmod.config import instantiate_component, run_entry_point
from toxmod.data import SPLIT_NAMES, LabeledDataset, LabelScheme, build_dataset
from toxmod.errors import ConfigError, ToxmodError, exit_on_user_error
from toxmod.evaluation import evaluate_predictions
from toxmod.models import Scorer, load_scorer
from toxmod.reports import console, headline_table, results_table
from toxmod.runs import (
    CONFIG_FILE,
    EVALUATION_SPLIT,
    HOLDOUT_EVAL_FILE,
    METRICS_FILE,
    MODEL_DIR,
    SPLIT_DIR,
    THRESHOLDS_FILE,
    prefixed,
    score_split,
)
from toxmod.splits import Split, read_split_folder

REPRODUCTION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one split of a finished run, and how they compare with what the run recorded."""

    subset: str
    scheme: LabelScheme
    thresholds: dict[str, float]
    metrics: dict[str, float]
    recorded: dict[str, float] | None
    max_difference: float | None

    @property
    def reproduced(self) -> bool | None:
        return None if self.max_difference is None else self.max_difference <= REPRODUCTION_TOLERANCE


def locate_run(run: str, tracking_cfg: DictConfig, cache_dir: Path) -> Path:
    """A local directory with the run's files: the run dir itself, or MLflow artifacts downloaded."""
    candidate = Path(run).expanduser()
    if candidate.is_dir():
        if not (candidate / HOLDOUT_EVAL_FILE).is_file():
            raise ToxmodError(f"run directory {candidate} has no {HOLDOUT_EVAL_FILE}: the run did not finish")
        return candidate
    if tracking_cfg.get("_target_", "").endswith("NullTracker"):
        raise ToxmodError(f"run={run!r} is not a run directory (and tracking=none cannot look up run ids)")
    tracker = instantiate_component(tracking_cfg, "tracking")
    try:
        info = tracker.client.get_run(run)
    except Exception as error:  # MlflowException for unknown ids
        raise ToxmodError(f"run={run!r} is neither a run directory nor a run id in {tracker.uri}") from error
    if info.info.status != "FINISHED":
        raise ToxmodError(
            f"MLflow run {run} has status {info.info.status}; only FINISHED runs can be evaluated"
        )
    target = cache_dir / run
    target.mkdir(parents=True, exist_ok=True)
    tracker.client.download_artifacts(run, "", str(target))
    return target


@dataclass(frozen=True)
class LoadedRun:
    """A finished run rebuilt from its files: config, data, split, model, thresholds (notebooks too)."""

    directory: Path
    config: DictConfig
    dataset: LabeledDataset
    split: Split
    scorer: Scorer
    thresholds: Thresholds

    def part(self, subset: str) -> LabeledDataset:
        """The rows of one split (train, valid, calib or holdout)."""
        if subset not in SPLIT_NAMES:
            raise ConfigError(f"subset={subset!r}; expected one of {list(SPLIT_NAMES)}")
        return self.split.part(self.dataset, subset)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory; the split's hashes are verified against the data file on the way."""
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    dataset = build_dataset(cfg.data)
    split, _ = read_split_folder(run_dir / SPLIT_DIR, dataset)
    return LoadedRun(
        run_dir,
        cfg,
        dataset,
        split,
        load_scorer(run_dir / MODEL_DIR),
        Thresholds.load(run_dir / THRESHOLDS_FILE),
    )


def evaluate_run(
    run_dir: Path, subset: str = "holdout", bootstrap: int | None = None, seed: int | None = None
) -> Evaluation:
    """Re-score ``subset`` of the run stored in ``run_dir`` (bootstrap and seed default to the run's)."""
    run = load_run(run_dir)
    part = run.part(subset)
    bootstrap = int(run.config.get("bootstrap", 1000) if bootstrap is None else bootstrap)
    seed = int(run.config.get("seed", 0) if seed is None else seed)
    scored = score_split(run.scorer, part)
    scheme = run.dataset.scheme
    values = evaluate_predictions(
        scheme, scored.scores, scored.targets, run.thresholds.as_array(), bootstrap=bootstrap, seed=seed
    )
    recorded = recorded_metrics(run_dir, subset)
    shared = [k for k in values if recorded.get(k) is not None and not math.isnan(values[k])]
    difference = max((abs(values[k] - recorded[k]) for k in shared), default=0.0) if shared else None
    return Evaluation(
        subset, scheme, run.thresholds.as_dict(), prefixed(subset, values), recorded or None, difference
    )


def recorded_metrics(run_dir: Path, subset: str) -> dict[str, float]:
    """What the run recorded for ``subset`` (holdout: ``holdout_eval.json``; others: ``metrics.json``)."""
    if subset == EVALUATION_SPLIT:
        return json.loads((run_dir / HOLDOUT_EVAL_FILE).read_text())["metrics"]
    prefix = f"{subset}/"
    everything = json.loads((run_dir / METRICS_FILE).read_text())
    return {k.removeprefix(prefix): v for k, v in everything.items() if k.startswith(prefix)}


def _report(evaluation: Evaluation, run_dir: Path) -> None:
    scheme = evaluation.scheme
    console.print(
        results_table(
            f"{run_dir.name} {evaluation.subset}",
            evaluation.subset,
            scheme,
            evaluation.metrics,
            evaluation.thresholds,
        )
    )
    console.print(
        headline_table(
            evaluation.subset,
            evaluation.metrics,
            ["macro_f1", "weighted_f1", scheme.headline_name, "mean_roc_auc"],
        )
    )
    if evaluation.reproduced is not None:
        verdict = "reproduced" if evaluation.reproduced else "NOT reproduced"
        source = HOLDOUT_EVAL_FILE if evaluation.subset == EVALUATION_SPLIT else METRICS_FILE
        console.print(f"{verdict}: max |difference| from {source} = {evaluation.max_difference:.3g}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    cache = Path(cfg.paths.output_dir) / "evaluate" / "runs"
    run_dir = locate_run(str(cfg.run), cfg.tracking, cache)
    evaluation = evaluate_run(run_dir, str(cfg.subset), cfg.bootstrap, cfg.seed)
    _report(evaluation, run_dir)
    out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{evaluation.subset}_eval.json").write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    if evaluation.reproduced is False:
        sys.exit(1)
    return evaluation.metrics


def main() -> Any:
    """Console entry point (``toxmod-evaluate`` / ``python -m toxmod.evaluate``)."""
    return run_entry_point("evaluate", _hydra_main)


if __name__ == "__main__":
    main()
