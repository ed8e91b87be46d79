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
