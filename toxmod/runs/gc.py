"""Settling runs that a dead process left behind, so every reader sees the same state.

A run records its process (host, pid, start time) when it starts. A run still RUNNING in the store
whose process on this host is gone was killed (kill -9, a crash, a machine reboot): it is marked
FAILED with the reason "process died" and a ``FAILED`` file in its directory. A run the store has
FINISHED whose result marker still waits in ``.pending/`` only lost its last rename: it is completed.
Runs of other hosts are left alone (their processes cannot be checked from here).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from toxmod.errors import DamagedFileError
from toxmod.files import refuse_links_out
from toxmod.runs.claim import in_use, owned
from toxmod.runs.record import RunDir, mark_finished
from toxmod.runs.store import RunStore

PROCESS_DIED = "process died"


def process_identity() -> dict[str, str]:
    """This process as tags: host, pid and (on Linux) its start time, so a reused pid is not mistaken."""
    return {
        "process.host": socket.gethostname(),
        "process.pid": str(os.getpid()),
        "process.start": str(_start_ticks(os.getpid()) or ""),
    }


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat; the first two (pid, comm) are before the ")"


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process a run recorded still runs: None when it cannot be told from here."""
    if tags.get("process.host") != socket.gethostname() or not tags.get("process.pid"):
        return None
    pid = int(tags["process.pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process with that pid: alive, unless the start time says otherwise
    recorded = tags.get("process.start")
    return not recorded or str(_start_ticks(pid)) == recorded


@dataclass
class Collected:
    """What a collection did: runs marked FAILED, runs completed, RUNNING runs left (another host)."""

    failed: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # run folders with a link out: not written into
    removed: list[str] = field(default_factory=list)  # folders of failed runs (``remove_failed``)


def collect(
    store: RunStore, max_runs: int = 1000, remove_failed: bool = False, folders: Sequence[Path] = ()
) -> Collected:
    """Mark RUNNING runs whose process died as FAILED; complete FINISHED runs left in ``.pending``.

    ``remove_failed``: also delete the folders of FAILED and KILLED runs (the store's, and any folder
    under ``folders`` with a ``FAILED`` file and no result marker); their MLflow records stay.
    """
    result = Collected()
    for run in store.search(status="RUNNING", max_results=max_runs):
        alive = process_alive(run.tags)
        if alive is None:
            result.unknown.append(run.run_id)
        elif not alive:
            store.mark_failed(run.run_id, PROCESS_DIED)
            directory = run.tags.get("run_dir")
            if directory and _ours(Path(directory), run.tags, result):
                marker = RunDir(Path(directory)).failed
                if not marker.exists() and not marker.is_symlink():
                    marker.write_text(f"{PROCESS_DIED} (the run was RUNNING and its process is gone)\n")
            result.failed.append(run.run_id)
    for run in store.search(status="FINISHED", max_results=max_runs):
        directory = run.tags.get("run_dir")
        if (
            directory
            and (Path(directory) / RunDir.PENDING).is_dir()
            and _ours(Path(directory), run.tags, result)
        ):
            mark_finished(RunDir(Path(directory)))
            result.completed.append(run.run_id)
    if remove_failed:
        stopped: dict[Path, dict[str, str]] = {
            Path(r.tags["run_dir"]).absolute(): r.tags
            for s in ("FAILED", "KILLED")
            for r in store.search(status=s, max_results=max_runs)
            if r.tags.get("run_dir")
        }
        marked = [
            p.parent.absolute()
            for folder in folders
            if folder.is_dir()
            for p in folder.glob(f"**/{RunDir.FAILED}")
        ]
        for folder_path in dict.fromkeys([*stopped, *marked]):
            _remove_failed(RunDir(folder_path), stopped.get(folder_path), result)
    return result


def _remove_failed(run: RunDir, tags: dict[str, str] | None, result: Collected) -> None:
    """A failed run's folder, gone: only a folder toxmod created for that run (``claim.owned``) that
    holds a ``FAILED`` file and no finished marker, no process holds (a resume under way), and none
    of whose links leaves it."""
    if not run.path.is_dir() or run.finished or not run.failed.is_file():
        return
    if not _ours(run.path, tags, result) or in_use(run):
        return
    shutil.rmtree(run.path)
    result.removed.append(str(run.path))


def _ours(directory: Path, tags: dict[str, str] | None, result: Collected) -> bool:
    """A folder gc may write into or delete: a toxmod run folder whose token is the run's
    (``claim.owned``), with no link that leaves it. Any other folder is left as it is."""
    return owned(directory, tags) and _writable(directory, result)


def _writable(directory: Path, result: Collected) -> bool:
    """A run folder gc may write into: none of its links leaves it (else it is left as it is)."""
    try:
        refuse_links_out(directory)
    except DamagedFileError as error:
        result.refused.append(str(error))
        return False
    return True
