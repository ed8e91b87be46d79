"""Saved models as plain arrays and JSON: reading a saved model never runs code from it.

Pickle (joblib) files execute whatever their author put in them when they are loaded, so a run
shared by a colleague could run anything on ``evaluate``. Classical models are saved instead as
numpy arrays (``.npz``, read with ``allow_pickle=False``), JSON, and XGBoost's own model format;
a damaged or unexpected file is a one-line error naming it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.errors import DamagedFileError
from toxmod.files import read_json, require_keys

__all__ = ["read_arrays", "read_json", "require_keys", "write_arrays"]


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Numeric and string arrays as one ``.npz`` (object arrays are refused: they would need pickle)."""
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise TypeError(f"{name}: object arrays cannot be saved without pickle")
    named: dict[str, Any] = {name: np.asarray(array) for name, array in arrays.items()}
    np.savez_compressed(path, **named)


def read_arrays(path: Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` written by ``write_arrays``; never unpickles anything."""
    if not path.is_file():
        raise DamagedFileError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DamagedFileError(f"{path}: not a readable array file ({error})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DamagedFileError(f"{path}: arrays {missing} are missing")
    return arrays


# -- scikit-learn parts, as state -------------------------------------------------------------


def logistic_state(model: Any, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A fitted ``LogisticRegression``: its arrays (under ``prefix``) and its parameters."""
    arrays = {
        f"{prefix}coef": model.coef_,
        f"{prefix}intercept": model.intercept_,
        f"{prefix}classes": model.classes_,
    }
    return arrays, {"params": model.get_params(), "n_features_in": int(model.n_features_in_)}


def logistic_from_state(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(**meta["params"])
    model.coef_ = arrays[f"{prefix}coef"]
    model.intercept_ = arrays[f"{prefix}intercept"]
    model.classes_ = arrays[f"{prefix}classes"]
    model.n_features_in_ = int(meta["n_features_in"])
    return model


def vectorizer_state(vectorizer: Any, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A fitted ``TfidfVectorizer``: its idf (under ``prefix``) and its terms in column order."""
    terms = [""] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        terms[column] = term
    params = {key: value for key, value in vectorizer.get_params().items() if key != "dtype"}
    params["dtype"] = np.dtype(vectorizer.dtype).name
    return {f"{prefix}idf": vectorizer.idf_}, {"params": params, "terms": terms}


class UntrustedSetting(ValueError):
    """A saved model's parameter that toxmod never writes (a vectorizer reading files, a custom regex)."""


# A saved vectorizer's parameters: the ones toxmod fixes, and those it lets a config choose (checked).
VECTORIZER_FIXED = {
    "binary": False,
    "decode_error": "strict",
    "encoding": "utf-8",
    "input": "content",  # "filename" would open the files the texts name
    "lowercase": True,
    "max_df": 1.0,
    "norm": "l2",
    "preprocessor": None,
    "smooth_idf": True,
    "stop_words": None,
    "strip_accents": None,
    "token_pattern": r"(?u)\b\w\w+\b",  # scikit-learn's own; another regex could backtrack for ever
    "tokenizer": None,
    "use_idf": True,
    "vocabulary": None,
}


def _vectorizer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` when every one is a value toxmod writes, else ``UntrustedSetting`` naming it."""
    for key, expected in VECTORIZER_FIXED.items():
        if params.get(key, expected) != expected:
            raise UntrustedSetting(f"vectorizer parameter {key}={params[key]!r} is not one toxmod writes")
    chosen: dict[str, Callable[[Any], bool]] = {
        "analyzer": lambda v: v in ("word", "char_wb"),
        "dtype": lambda v: v in ("float32", "float64"),
        "max_features": lambda v: v is None or (type(v) is int and v > 0),
        "min_df": lambda v: type(v) in (int, float) and v >= 0,
        "sublinear_tf": lambda v: type(v) is bool,
        "ngram_range": lambda v: (
            isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v) and 1 <= v[0] <= v[1] <= 10
        ),
    }
    for key, value in params.items():
        if key not in VECTORIZER_FIXED and (key not in chosen or not chosen[key](value)):
            raise UntrustedSetting(f"vectorizer parameter {key}={str(value)[:60]!r} is not one toxmod writes")
    return dict(params)


def vectorizer_from_state(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    params = _vectorizer_params(meta["params"])
    params["dtype"] = np.dtype(params["dtype"]).type
    params["ngram_range"] = tuple(params["ngram_range"])
    vectorizer = TfidfVectorizer(**params)
    vectorizer.vocabulary_ = {term: column for column, term in enumerate(meta["terms"])}
    vectorizer.idf_ = arrays[f"{prefix}idf"]
    return vectorizer
