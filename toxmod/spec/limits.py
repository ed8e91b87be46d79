"""The ``limits`` group: what files toxmod did not write may cost (``toxmod.limits`` applies them)."""

from __future__ import annotations

from dataclasses import dataclass

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class LimitsSpec(Spec):
    """Each a positive integer; past one, reading stops with one line naming the file and the key.
    (Part of the job key as they always were: a job's key does not change between versions.)"""

    GROUP = "limits"

    input_bytes: int = setting(low=1)  # decompressed bytes of one data or input file
    line_bytes: int = setting(low=1)  # bytes between two newlines
    columns: int = setting(low=1)  # columns in a table file's header
    tokenizer_bytes: int = setting(low=1)  # a model's tokenizer.json
    vocab_size: int = setting(low=1)  # a transformer's declared vocab_size
    weights_bytes: int = setting(low=1)  # a model's weights file
