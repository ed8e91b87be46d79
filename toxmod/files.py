"""Reading the JSON a run or model left on disk (a missing, empty or malformed file is a one-line error),
and a file lock for what several processes may build at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from toxmod.errors import DamagedFileError


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a missing, empty or malformed file is a one-line error naming it."""
    if not path.is_file():
        raise DamagedFileError(f"{path}: missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise DamagedFileError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:  # malformed, not UTF-8, or an integer of more than 4,300 digits
        raise DamagedFileError(f"{path}: not valid JSON ({str(error)[:200]})") from None


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


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def listed_files(directory: Path, skip: Collection[str] = ()) -> dict[str, str]:
    """``{relative name: SHA-256}`` of every file under ``directory`` (links are not followed and
    refused), but top-level names in ``skip``."""
    found = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if name.split("/", 1)[0] in skip:
            continue
        if path.is_symlink():
            raise DamagedFileError(f"{path}: a link; a run or cache folder holds plain files only")
        if path.is_file():
            found[name] = file_sha256(path)
    return found


def verify_listed(
    directory: Path, listed: Mapping[str, str], manifest: Path, skip: Collection[str] = ()
) -> None:
    """Every file under ``directory`` (but top-level ``skip`` names) is listed in ``manifest`` with
    the SHA-256 it has, and every listed file is there: else one line naming the first that is not."""
    if not isinstance(listed, Mapping) or not all(isinstance(v, str) for v in listed.values()):
        raise DamagedFileError(f"{manifest}: its file list is not {{name: sha256}}")
    present = listed_files(directory, skip)
    for name, expected in listed.items():
        if name not in present:
            raise DamagedFileError(f"{directory / name}: listed in {manifest} but missing")
        if present[name] != expected:
            raise DamagedFileError(
                f"{directory / name}: changed since it was written (SHA-256 in {manifest})"
            )
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        raise DamagedFileError(f"{directory / unlisted[0]}: not listed in {manifest}; refused")


def links_out(folder: Path) -> list[tuple[Path, Path]]:
    """``(link, target)`` for every symbolic link under ``folder`` whose target lies outside it
    (dangling ones included): what a writer into the folder would write through."""
    root = folder.resolve()
    found = []
    for base, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            path = Path(base) / name
            if path.is_symlink():
                target = (path.parent / os.readlink(path)).resolve()
                if not target.is_relative_to(root):
                    found.append((path, target))
    return found


def refuse_links_out(folder: Path) -> None:
    """A folder toxmod writes into (a run continued, settled or finished) holds no link that leaves
    it; else one line naming the first."""
    found = links_out(folder)
    if found:
        link, target = found[0]
        raise DamagedFileError(f"{link}: a link to {target}, outside {folder}; nothing is written through it")
