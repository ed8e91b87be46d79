"""The run: its directory and record, the tracking store (write and read side), jobs and resumption."""

from toxmod.runs.opening import LoadedRun, load_run, locate_run
from toxmod.runs.record import EVALUATION_SPLIT, RunDir
from toxmod.runs.store import NoStore, RunStore, StoredRun
from toxmod.runs.tracking import MlflowTracker, NullTracker, Tracker

__all__ = [
    "EVALUATION_SPLIT",
    "LoadedRun",
    "MlflowTracker",
    "NoStore",
    "NullTracker",
    "RunDir",
    "RunStore",
    "StoredRun",
    "Tracker",
    "load_run",
    "locate_run",
]
