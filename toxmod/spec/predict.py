"""The ``predict`` block of ``python -m toxmod.predict``: how texts are read, batched and written."""

from __future__ import annotations

from dataclasses import dataclass

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class PredictSpec(Spec):
    """``predict.*`` (conf/predict.yaml has each one's meaning)."""

    GROUP = "predict"
    ROOT = "predict"

    batch_size: int = setting(low=1)  # texts per scoring call from stdin (records come out as lines arrive)
    chunk_size: int = setting(low=1)  # texts per scoring call from a file
    max_chars: int = setting(low=1)  # longer texts are reported, not scored
    text_column: str = setting()
    id_column: str = setting()
    keep_columns: tuple[str, ...] = setting()
