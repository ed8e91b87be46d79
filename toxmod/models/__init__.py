"""Model kinds behind the ``Scorer`` interface; a registry maps a saved kind to its class, lazily."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from toxmod.errors import DamagedFileError, ToxmodError
from toxmod.files import read_json, require_keys
from toxmod.models.base import (
    SCORER_FILE,
    FitContext,
    FitReport,
    Opening,
    Scorer,
    ValidationData,
    artifact_size_bytes,
    opened_with,
)
from toxmod.trusted import allowed_targets

# kind -> "module:Class", imported only when a model of that kind is loaded.
SCORER_REGISTRY: dict[str, str] = {
    "tfidf_xgboost": "toxmod.models.tfidf:TfidfXGBoostScorer",
    "tfidf_logreg": "toxmod.models.tfidf:TfidfLogRegScorer",
    "fasttext": "toxmod.models.fasttext_model:FastTextScorer",
    "transformer": "toxmod.models.transformer.scorer:TransformerScorer",
    "ensemble": "toxmod.models.ensemble:EnsembleScorer",
    "temperature_scaled": "toxmod.models.calibrated:TemperatureScaled",
    "onnx": "toxmod.models.onnx_model:OnnxScorer",
    "llm": "toxmod.models.llm.scorer:LLMScorer",
}


def scorer_class(kind: str) -> type[Scorer]:
    """The class registered for ``kind``."""
    if kind not in SCORER_REGISTRY:
        raise ToxmodError(f"unknown model kind {kind!r}; registered kinds: {sorted(SCORER_REGISTRY)}")
    module_name, class_name = SCORER_REGISTRY[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_scorer(directory: str | Path, allow_pickle: bool = False, opening: Opening | None = None) -> Scorer:
    """Load any saved model directory (its ``scorer.json`` names the kind); nothing in it is executed.

    ``allow_pickle``: also read an older pickle-format model (only for models you trust). ``opening``:
    what the opener gives (server, credential name, folders); None keeps the current one (a model
    inside a model) or, at the top, gives none.
    """
    directory = Path(directory)
    description_path = directory / SCORER_FILE
    if not description_path.is_file():
        raise ToxmodError(f"{directory} is not a saved toxmod model ({SCORER_FILE} missing)")
    description = read_json(description_path)
    require_keys(description_path, description, ("kind", "scheme"))
    kind = description["kind"]
    cls = scorer_class(kind) if kind in SCORER_REGISTRY else _own_kind(kind, description, description_path)
    with opened_with(opening):
        return cls.load(directory, description, allow_pickle)


def _own_kind(kind: str, description: dict[str, Any], where: Path) -> type[Scorer]:
    """A model kind of the user's own: its class (``scorer.json``'s ``class``) must be one the opener's
    config folder names as a ``_target_`` (``conf/model/<name>.yaml``); only then is it imported."""
    target = description.get("class")
    if not isinstance(target, str) or target not in allowed_targets():
        raise DamagedFileError(
            f"{where}: unknown model kind {kind!r}; known: {sorted(SCORER_REGISTRY)}; a kind of your own "
            f"opens where your conf/ folder names its class ({target!r}) as a model's _target_"
        )
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError as error:
        raise ToxmodError(f"{where}: model kind {kind!r}: cannot import {module_name} ({error})") from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer) and cls.kind == kind):
        raise DamagedFileError(f"{where}: {target} is not a Scorer of kind {kind!r}")
    return cls


__all__ = [
    "SCORER_REGISTRY",
    "FitContext",
    "FitReport",
    "Opening",
    "Scorer",
    "ValidationData",
    "artifact_size_bytes",
    "load_scorer",
    "scorer_class",
]
