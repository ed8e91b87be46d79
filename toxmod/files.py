"""Reading the JSON a run or model left on disk (a missing, empty or malformed file is a one-line error),
and a file lock for what several processes may build at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toxmod.errors import DamagedFileError


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a missing, empty or malformed file is a one-line error naming it."""
    if not path.is_file():
        raise DamagedFileError(f"{path}: missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFileError(f"{path}: not valid JSON ({error})") from None


def require_keys(path: Path, state: Any, keys: tuple[str, ...]) -> None:
    """A JSON object read from ``path`` must hold ``keys``."""
    if not isinstance(state, dict):
        raise DamagedFileError(f"{path}: expected a JSON object")
    missing = [key for key in keys if key not in state]
    if missing:
        raise DamagedFileError(f"{path}: keys {missing} are missing")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs (other processes wait for it)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
