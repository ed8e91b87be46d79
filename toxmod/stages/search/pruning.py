"""The Lightning callback that reports a trial's monitored valid metric and stops a hopeless trial."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl

from toxmod.stages.search.outcomes import TrialPruned


class PruningCallback(pl.Callback):
    """After every validation: report the checkpoint monitor at the global step, and raise
    ``TrialPruned`` when the study's pruner says so. A monitor whose direction is not the study's
    (a search minimizing latency, a monitor maximized) is reported but never prunes."""

    def __init__(self, open_trial: Callable[[], Any], maximize: bool) -> None:
        self.open_trial, self.maximize = open_trial, maximize  # the trial, opened at the first report
        self._trial: Any = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        monitor = getattr(checkpoint, "monitor", None)
        if trainer.sanity_checking or trainer.global_rank != 0 or not monitor:
            return
        value = trainer.callback_metrics.get(monitor)
        if value is None:
            return
        if self._trial is None:
            self._trial = self.open_trial()
        step = int(trainer.global_step)
        self._trial.report(float(value), step=step)
        mode = getattr(checkpoint, "mode", "max")
        same_way = (mode == "max") == self.maximize
        if same_way and self._trial.should_prune():
            raise TrialPruned(step, monitor, float(value))
