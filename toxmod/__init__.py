"""toxmod: config-composed experiments for text-moderation classifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load(run: str | Path, tracking_uri: str | None = None, allow_pickle: bool = False) -> Any:
    """A finished run, ready to score new texts: ``toxmod.load("outputs/train/...").predict("text")``.

    ``run``: a run directory, or an MLflow run id with ``tracking_uri`` (e.g. ``sqlite:///mlruns.db``).
    Returns a ``Predictor``; ``predict(text)`` gives a dict, ``predict([texts])`` a list of dicts.
    """
    from toxmod.runs.store import NoStore, RunStore
    from toxmod.stages.predict import Predictor

    store = RunStore(tracking_uri) if tracking_uri else NoStore()
    return Predictor.open(run, store, allow_pickle=allow_pickle)
