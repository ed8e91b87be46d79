"""Reading the JSON a run or model left on disk (a missing, empty or malformed file is a one-line error),
and a file lock for what several processes may build at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

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


class _ConfigLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML as a saved config was written: ``1e-05`` is a number (YAML 1.1 wants ``1.0e-05``), a date
    stays text, a key given twice is refused -- as Hydra's own loader reads it, without running code."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG:
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_config_yaml(path: Path) -> Any:
    """A saved config's YAML as plain dicts and lists; unreadable YAML is a one-line error naming it."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)  # noqa: S506 - safe loader
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{path}: not a readable config ({reason})") from None


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
