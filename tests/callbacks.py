"""Lightning callbacks that tests inject through config (``+callbacks.<name>._target_=tests.callbacks...``).

Kept apart from ``tests.helpers`` so that importing the helpers does not import Lightning.
"""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class CtrlCAtStep(pl.Callback):
    """Sends this process SIGINT ``presses`` times, as Ctrl-C does, right after optimizer step ``step``."""

    def __init__(self, step: int, presses: int = 1) -> None:
        self.step, self.presses = step, presses

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.presses):
                os.kill(os.getpid(), signal.SIGINT)


class StopProcessAtStep(pl.Callback):
    """Terminates process ``pid`` (a tracking server) right after optimizer step ``step``, and waits
    until it is gone (or a zombie its parent has not reaped): the run goes on without it."""

    def __init__(self, step: int, pid: int) -> None:
        self.step, self.pid = step, pid

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        import time

        import psutil

        if trainer.global_step != self.step:
            return
        os.kill(self.pid, signal.SIGTERM)
        for _ in range(200):  # up to 20 s
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)
