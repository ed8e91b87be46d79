"""Which folders are toxmod's runs, and which run a folder is: what housekeeping may touch.

A run folder holds ``toxmod_run.json``, written by the stage that creates the run before anything
else, with a random token that the tracking run records too (tag ``run_token``). The manifest of a
finished run lists it like every other file. A training process holds a lock on it while it runs.

So ``runs gc`` deletes or marks only folders that toxmod created (the marker is there, and its token
is the one the store's run recorded), never one whose run is still going (the lock), and a new run
never writes into a folder that holds someone else's files. A resumed run continues only the
tracking run whose ``run_dir`` and token are this folder's: a copied folder, or one whose
``tracking.json`` names another run, cannot redirect a resume into that run.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from toxmod.config import LAUNCHER_FILES, RUN_FOLDER_KEY
from toxmod.errors import ConfigError, ToxmodError
from toxmod.files import read_json
from toxmod.runs.record import RunDir, write_json
from toxmod.runs.store import NoStore, RunStore

MARKER = RunDir.MARKER
TOKEN_TAG = "run_token"


def marker_path(run: RunDir) -> Path:
    return run.path / MARKER


def run_token(run: RunDir) -> str | None:
    """The token of a toxmod run folder, or None when the folder is not one (no marker, a link, or
    a marker toxmod did not write)."""
    path = marker_path(run)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = read_json(path)
    except ToxmodError:  # an unreadable marker: not a run toxmod can vouch for
        return None
    token = record.get("token") if isinstance(record, dict) else None
    return token if isinstance(token, str) and len(token) == 32 else None


def claim(run: RunDir, resuming: bool) -> str:
    """Make ``run`` a toxmod run folder and return its token: a new run needs an empty folder (but
    the launcher's own files) or a run folder; a resumed run keeps its token (one made before toxmod marked
    its runs gets one now). Else one line naming the folder and what is in it."""
    token = run_token(run)
    if token is not None:
        return token
    if run.path.exists() and not resuming:
        if not run.path.is_dir():
            raise ConfigError(f"{RUN_FOLDER_KEY}={run.path}: not a folder")
        foreign = sorted(p.name for p in run.path.iterdir() if p.name not in LAUNCHER_FILES)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise ConfigError(
                f"{RUN_FOLDER_KEY}={run.path}: holds files that are not a toxmod run's ({shown}); "
                "train into a new or empty folder"
            )
    if marker_path(run).is_symlink():
        raise ConfigError(f"{marker_path(run)}: a link; a run folder holds plain files only")
    run.path.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    write_json(marker_path(run), {"toxmod_run": 1, "token": token})
    return token


@contextlib.contextmanager
def claimed(run: RunDir, resuming: bool) -> Iterator[str]:
    """``claim`` the folder and hold its lock while the block runs (``runs gc`` leaves a locked
    folder alone); yields the token. A run stopped before it wrote anything but the marker it
    added takes the marker back (and the folder, if the claim made it)."""
    existed, marked = run.path.exists(), run_token(run) is not None
    token = claim(run, resuming)
    try:
        with holding(run):
            yield token
    except BaseException:
        if (
            not marked
            and run.path.is_dir()
            and {p.name for p in run.path.iterdir()} <= {MARKER, *LAUNCHER_FILES}
        ):
            # nothing but the marker written: the folder is as it was (Hydra's own is the entry
            # point's to discard), or gone if this claim made it
            marker_path(run).unlink()
            if not existed:
                shutil.rmtree(run.path)
        raise


@contextlib.contextmanager
def holding(run: RunDir) -> Iterator[None]:
    """Hold the run's lock while the block runs: ``runs gc`` leaves a locked folder alone."""
    with open(marker_path(run), "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def in_use(run: RunDir) -> bool:
    """Whether a process holds the run's lock (it is training, resuming or finishing)."""
    try:
        with open(marker_path(run), "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def owned(folder: Path, tags: dict[str, str] | None = None) -> bool:
    """Whether housekeeping may write into or delete ``folder``: a toxmod run folder (marker), not a
    link, whose token is the one the store's run recorded (``tags``; a run recorded without a token
    is matched by its marker alone)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    token = run_token(RunDir(folder))
    if token is None:
        return False
    recorded = (tags or {}).get(TOKEN_TAG)
    return recorded is None or recorded == token


def check_resume_target(run: RunDir, run_id: str | None, store: RunStore | NoStore) -> None:
    """Before a resume writes anything: the tracking run ``tracking.json`` names must be this
    folder's own (its ``run_dir`` tag is this folder and its token this folder's), else one line."""
    if run_id is None or isinstance(store, NoStore):
        return
    if not store.has_run(run_id):
        raise ConfigError(
            f"resume: {run.tracking} names tracking run {run_id}, which {store.uri} does not hold; "
            "pass tracking.uri=<the store it was recorded in>"
        )
    tags = store.get(run_id).tags
    recorded_dir = tags.get("run_dir")
    here = str(run.path.resolve())
    if recorded_dir != here:
        raise ConfigError(
            f"resume: {run.tracking} names tracking run {run_id}, whose folder is {recorded_dir}; a "
            "copied or edited run folder cannot continue another folder's run: resume that folder, "
            "or start a new run"
        )
    token = run_token(run)
    if tags.get(TOKEN_TAG) is not None and tags.get(TOKEN_TAG) != token:
        raise ConfigError(
            f"resume: {marker_path(run)} is not the marker of tracking run {run_id}; start a new run"
        )
