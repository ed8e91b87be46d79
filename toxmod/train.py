"""``python -m toxmod.train``: compose a run from config and hand it to the train stage.

python -m toxmod.train                                   # the default experiment
python -m toxmod.train data=davidson split=stratified model=tfidf_logreg
python -m toxmod.train -m model=tfidf_xgboost,tfidf_logreg resume=auto
python -m toxmod.train -m search=janitr_classical         # an Optuna search (conf/search)
"""

from __future__ import annotations

from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from toxmod.config import exit_on_user_error, run_entry_point
from toxmod.stages.search.trial import run_trial, trial_link
from toxmod.stages.sweeps import current_sweep, run_sweep_job
from toxmod.stages.train import TrainResult, train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> float | None:
    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    sweep = current_sweep()  # None outside a multirun
    link = trial_link(cfg)  # a search trial's place in its study, else None

    run_dir = hydra_config.runtime.output_dir

    def job() -> TrainResult:
        if link is None:
            return train(cfg, run_dir, overrides, sweep)
        trial_job = lambda: train(cfg, run_dir, overrides, sweep, link.tags, link.callbacks())  # noqa: E731
        return run_trial(link, trial_job, run_dir)

    result = run_sweep_job(job)
    optimized = cfg.get("optimized_metric")
    if result is None or not optimized:  # a failed sweep job (recorded), or nothing to optimize
        return None
    return float(result.metrics[optimized])  # what a sweeper optimizes


def main() -> Any:
    """Console entry point (``toxmod-train`` / ``python -m toxmod.train``)."""
    return run_entry_point("train", _hydra_main)


if __name__ == "__main__":
    main()
