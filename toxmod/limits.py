"""What files toxmod did not write may cost: bytes, line lengths, columns, model-file sizes.

A data file, a ``predict`` input or a shared run can be built to exhaust memory or time: a 23 MB
``.gz`` that expands to gigabytes of one line, a CSV of a million columns, a ``config.json`` whose
``vocab_size`` allocates gigabytes before any weight is read. Every reader checks these limits as it
reads (``LimitedReader``) or before it loads (``check_size``), and stops with one line naming the
file and the key to raise (exit 1).

The values are ``conf/limits/_defaults.yaml``; an entry point applies its ``limits`` config
(``configure``), and Python use reads the same file.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from toxmod.errors import DamagedFileError, ToxmodError
from toxmod.files import read_json
from toxmod.spec.limits import LimitsSpec

TRUST = "raise it if you trust the file"


class LimitError(ToxmodError):
    """A file asked for more than a limit allows (``limits.<key>``)."""

    exit_code = 1


@functools.cache
def shipped() -> LimitsSpec:
    """The limits of ``conf/limits/_defaults.yaml``."""
    return LimitsSpec.of()


_active: list[LimitsSpec] = []


def current() -> LimitsSpec:
    """The limits in force: the entry point's ``limits`` config, else the shipped ones."""
    return _active[-1] if _active else shipped()


def configure(values: Mapping[str, Any] | None) -> None:
    """Apply an entry point's ``limits`` config (each a positive integer, else one line)."""
    if values is not None:
        _active[:] = [LimitsSpec.of(values)]


def check_size(path: Path, key: str) -> None:
    """``path`` is at most ``limits.<key>`` bytes, checked before it is read."""
    limit = getattr(current(), key)
    size = path.stat().st_size
    if size > limit:
        raise LimitError(f"{path}: {size:,} bytes, over limits.{key}={limit:,}; {TRUST}")


def check_value(path: Path, name: str, value: Any, key: str) -> None:
    """A number a model file declares (``vocab_size``) is at most ``limits.<key>``."""
    limit = getattr(current(), key)
    if isinstance(value, int) and not isinstance(value, bool) and value > limit:
        raise LimitError(f"{path}: {name}={value:,}, over limits.{key}={limit:,}; {TRUST}")


class LimitedReader:
    """A binary stream (decompressed, for ``.gz``) that stops with one line past ``limits.input_bytes``
    in all or ``limits.line_bytes`` between two newlines: memory stays bounded whatever the file holds.
    Reads, reads lines and iterates over lines like a file; pandas and pyarrow read it as one."""

    def __init__(self, raw: BinaryIO, name: str, gzipped: bool = False) -> None:
        self.raw = raw
        self.stream: Any = gzip.GzipFile(fileobj=raw) if gzipped else raw
        self.name = name
        self.limits = current()
        self.total = 0
        self.since_newline = 0

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limits.input_bytes:
            raise LimitError(
                f"{self.name}: more than limits.input_bytes={self.limits.input_bytes:,} bytes "
                "(decompressed); raise it if the file is that large"
            )
        newline = data.rfind(b"\n")
        self.since_newline = len(data) - newline - 1 if newline >= 0 else self.since_newline + len(data)
        if self.since_newline > self.limits.line_bytes:
            raise LimitError(
                f"{self.name}: a line of more than limits.line_bytes={self.limits.line_bytes:,} bytes "
                f"(after byte {self.total - self.since_newline:,}); one text or row is never that long"
            )
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # whole: in pieces, so the limits stop it early
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        return self._count(self.stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        cap = self.limits.line_bytes + 1 - self.since_newline
        return self._count(self.stream.readline(cap if size is None or size < 0 else min(size, cap)))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return bool(getattr(self.raw, "closed", False))

    def close(self) -> None:
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()

    def __enter__(self) -> LimitedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A saved transformer's files that are read or built from before any weight is checked.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
WEIGHT_FILES = ("model.safetensors", "pooled_head.safetensors", "model.onnx", "model.int8.onnx")


def check_model_folder(directory: Path) -> None:
    """A saved transformer's folder within ``limits`` before any of it is loaded: tokenizer files
    (``tokenizer_bytes``), weights (``weights_bytes``), and a ``config.json`` whose ``vocab_size``
    is within ``limits.vocab_size`` and no larger than its weights could hold (a vocabulary the
    weights do not have would be allocated in full before loading fails)."""
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            check_size(directory / name, "tokenizer_bytes")
    weights = [directory / name for name in WEIGHT_FILES if (directory / name).is_file()]
    for path in weights:
        check_size(path, "weights_bytes")
    config = directory / "config.json"
    if not config.is_file():
        return
    check_size(config, "tokenizer_bytes")
    try:
        settings = read_json(config)
    except DamagedFileError:
        return  # the loader says what is wrong with it
    if not isinstance(settings, dict):
        return
    vocab, width = settings.get("vocab_size"), settings.get("hidden_size") or settings.get("dim")
    check_value(config, "vocab_size", vocab, "vocab_size")
    stored = sum(path.stat().st_size for path in weights)
    if (
        weights
        and isinstance(vocab, int)
        and isinstance(width, int)
        and not isinstance(width, bool)
        and vocab * width > stored  # at least one byte a weight (int8), whatever the format
    ):
        raise LimitError(
            f"{config}: vocab_size={vocab:,} x hidden {width:,} is more than its weights hold "
            f"({stored:,} bytes); not built"
        )
