"""toxmod: config-composed experiments for text-moderation classifiers."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from toxmod.environment import cpu_flags  # standard library only: numpy is not loaded yet

__version__ = "0.1.0"

# OpenBLAS picks its kernels by CPU when numpy loads, and AVX-512 kernels sum in another order than
# AVX2 ones: the default model's out-of-fold logistic regression then differs in its last bits, and
# XGBoost's splits on those scores turn that into different decisions (janitr holdout scam recall
# 0.6735 vs 0.6816 on AVX-512 vs AVX2 machines). Pinning OpenBLAS to its AVX2 (Haswell) kernels on
# every x86 CPU that has AVX2 gives identical numbers on both, for ~3% of training time
# (docs/reproducibility.md). TOXMOD_BLAS_CORETYPE=native keeps the CPU's own kernels; any other value is
# passed on as OPENBLAS_CORETYPE. Too late once numpy is imported: import toxmod first.
_BLAS = os.environ.get("TOXMOD_BLAS_CORETYPE", "Haswell")
_UNSET = "OPENBLAS_CORETYPE" not in os.environ and "numpy" not in sys.modules
if _UNSET and _BLAS != "native" and (_BLAS != "Haswell" or "avx2" in cpu_flags()):
    os.environ["OPENBLAS_CORETYPE"] = _BLAS


def default_tracking_uri() -> str | None:
    """The store a user of MLflow expects: ``MLFLOW_TRACKING_URI``, the URI set with
    ``mlflow.set_tracking_uri``, else toxmod's own store in the checkout (``TOXMOD_ROOT``)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if "mlflow" in sys.modules:  # only a program that imported mlflow can have set one
        from mlflow.tracking._tracking_service import utils

        if utils.is_tracking_uri_set():
            return str(utils.get_tracking_uri())
    from toxmod.paths import project_root

    return f"sqlite:///{project_root() / 'mlruns.db'}"


def load(
    run: str | Path,
    tracking_uri: str | None = None,
    allow_pickle: bool = False,
    cache_dir: str | Path | None = None,
    checkpoint: str | int | None = None,
    **model_settings: Any,
) -> Any:
    """A finished run, ready to score new texts: ``toxmod.load("outputs/train/...").predict("text")``.

    ``run``: a run directory, or an MLflow run id / ``models:/name@alias`` looked up in ``tracking_uri``
    (default: ``MLFLOW_TRACKING_URI``, else the URI given to ``mlflow.set_tracking_uri``, else the
    checkout's ``mlruns.db``). Downloads go under ``cache_dir`` (default ``TOXMOD_CACHE`` or
    ``~/.cache/toxmod``). ``model_settings`` are what a saved run never chooses for you: an LLM run's
    ``base_url`` and ``api_key_env``, or ``pretrained`` (its weights folder). ``checkpoint``: ``last``
    or a step the run kept besides its best (``checkpoint.top_k``, ``checkpoint.keep_last``).
    Returns a ``Predictor``; ``predict(text)`` gives a dict, ``predict([texts])`` a list of dicts.
    """
    from toxmod.runs.opening import default_opening
    from toxmod.runs.store import NoStore, RunStore
    from toxmod.stages.predict import Predictor

    uri = tracking_uri or default_tracking_uri()
    store = RunStore(uri) if uri else NoStore()
    base = default_opening(Path(cache_dir).expanduser() if cache_dir else None)
    opening = dataclasses.replace(base, settings=dict(model_settings))
    return Predictor.open(run, store, allow_pickle=allow_pickle, opening=opening, checkpoint=checkpoint)
