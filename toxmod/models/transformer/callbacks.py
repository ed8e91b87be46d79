"""Lightning callbacks and the logger of a fine-tune or DAPT run: curves to the run's tracker, the one
writer of ``last.ckpt`` (periodic, chunk end, Ctrl-C, epoch end) and one console line per epoch."""

from __future__ import annotations

import itertools
import math
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint, WeightAveraging
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from toxmod.models.base import MetricsLogger
from toxmod.progress import console


class TrackerLogger(Logger):
    """Lightning metrics (epoch curves, train loss) into the run's own tracker, keyed by global step."""

    def __init__(self, tracker: MetricsLogger) -> None:
        super().__init__()
        self.tracker = tracker

    @property
    def name(self) -> str:
        return "toxmod"

    @property
    def version(self) -> str:
        """The tracking run id's first 8 characters (the progress bar shows it as ``v_num``)."""
        return str(getattr(self.tracker, "run_id", None) or "0")[:8]

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Parameters are logged once by the entry point (the resolved config)."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        self.tracker.log_metrics(values, step=step)


class LastCheckpoint(Checkpoint):
    """The one writer of ``last.ckpt``: what ``resume=`` continues from.

    Written from the batch-end hook (Lightning restores that as "mid-epoch", so a resume continues
    the same epoch exactly) every ``every_n_steps`` steps, at the step that reaches
    ``trainer.max_steps`` (the end of a chunk) and at the first Ctrl-C; and at the end of every
    whole epoch. A ``Checkpoint``, so Lightning runs it with the checkpoint callbacks, in list order:
    placed after the best-checkpoint callback, the epoch-end save holds that validation's best score.

    Ctrl-C: the SIGINT handler only sets a flag; the next batch end finishes the running step,
    saves and stops (the run ends as an interrupt, MLflow KILLED), so nothing computed is lost.
    A second Ctrl-C interrupts at once. Installed for single-process training in the main thread;
    under DDP a Ctrl-C stops every process at once and loses the steps since the last save.
    """

    def __init__(self, path: str, every_n_steps: int | None = None) -> None:
        self.path, self.every_n_steps = path, every_n_steps
        self.stop_requested = False
        self._previous_handler: Any = None
        self._handler_installed = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        periodic = (
            self.every_n_steps is not None and self.every_n_steps > 0 and step % self.every_n_steps == 0
        )
        # Ctrl-C on an epoch's last batch waits for the epoch end: its validation runs first, then
        # the epoch-end save (a batch-end save there would resume without that validation).
        stop_now = self.stop_requested and not _last_batch_of_epoch(trainer)
        if periodic or 0 < trainer.max_steps <= step or stop_now:
            trainer.save_checkpoint(self.path)
        if stop_now:
            raise KeyboardInterrupt

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not when max_steps ends a chunk mid-epoch: the batch end saved that position, and an
        # epoch-end save there would make resume skip the rest of the epoch.
        if _last_batch_of_epoch(trainer):
            trainer.save_checkpoint(self.path)
            if self.stop_requested:
                raise KeyboardInterrupt

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size != 1 or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            return  # started with Ctrl-C ignored (e.g. a background job): leave it ignored
        self._previous_handler = signal.signal(signal.SIGINT, self._request_stop)
        self._handler_installed = True

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True
        self._restore_handler()  # a second Ctrl-C goes to the previous handler: stop now
        print(
            "\nCtrl-C: finishing this step and writing last.ckpt (resume=last continues); "
            "press Ctrl-C again to stop now",
            file=sys.stderr,
            flush=True,
        )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._handler_installed:
            previous = self._previous_handler
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
            self._handler_installed = False


class EpochLines(pl.Callback):
    """Progress off a terminal (a log, CI, a pipe): a step line within seconds of the start and then
    every ``every`` seconds (steps/s and the time left), one line per epoch with the step, the training
    loss, the monitored validation metric and the elapsed time -- never a bar redrawn in a file."""

    FIRST_LINE_S = 5.0

    def __init__(self, monitor: str | None = None, every: float = 60.0) -> None:
        self.monitor, self.every = monitor, every
        self.started = self.last_line = 0.0
        self.first_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        self.last_line = self.started - self.every + self.FIRST_LINE_S  # the first line after ~5 s
        self.first_step = trainer.global_step  # a resumed run starts further on

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        now = time.perf_counter()
        if trainer.global_rank != 0 or now - self.last_line < self.every:
            return
        self.last_line = now
        planned = float(trainer.estimated_stepping_batches)
        step, total = trainer.global_step, int(planned) if math.isfinite(planned) else 0
        rate = (step - self.first_step) / max(now - self.started, 1e-9)
        left = f" · ~{(total - step) / rate / 60:.1f} min left" if rate > 0 and total > step else ""
        loss = trainer.callback_metrics.get("train/loss")
        shown = f" · train/loss {float(loss):.4f}" if loss is not None else ""
        of = f"/{total}" if total else ""
        console.print(f"step {step}{of} · {rate:.2f} steps/s{shown}{left}", soft_wrap=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}", f"step {trainer.global_step}"]
        for name in ("train/loss", self.monitor):
            if name and name in metrics:
                parts.append(f"{name} {float(metrics[name]):.4f}")
        parts.append(f"{time.perf_counter() - self.started:.0f} s")
        console.print(" · ".join(parts), soft_wrap=True)


def _last_batch_of_epoch(trainer: pl.Trainer) -> bool:
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class AveragedWeights(WeightAveraging):
    """Lightning's weight averaging from ``start_step`` on: ``ema`` (exponential, ``decay``) or ``swa``
    (an equal average of every step's weights). Validation runs on, and checkpoints hold, the average;
    before the first averaged step they hold the current weights (Lightning's average would still be
    the initial weights, and a checkpoint chosen then would be the untrained network)."""

    def __init__(self, method: str, start_step: int, decay: float = 0.99) -> None:
        from torch.optim.swa_utils import get_ema_multi_avg_fn

        options = {"multi_avg_fn": get_ema_multi_avg_fn(decay)} if method == "ema" else {}  # type: ignore[no-untyped-call]
        super().__init__(use_buffers=True, **options)
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step

    def _follow_until_started(self, pl_module: pl.LightningModule) -> None:
        average = self._average_model
        if average is None or int(average.n_averaged) > 0:
            return
        for kept, current in zip(
            itertools.chain(average.module.parameters(), average.module.buffers()),
            itertools.chain(pl_module.parameters(), pl_module.buffers()),
        ):
            kept.data.copy_(current.data)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow_until_started(pl_module)
        super().on_validation_epoch_start(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._follow_until_started(pl_module)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
