"""Featurizers for the classical models: TF-IDF word/char n-grams plus hand-made text statistics."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from toxmod.models.persistence import vectorizer_from_state, vectorizer_state

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_CASHTAG = re.compile(r"(?<!\w)\$[A-Za-z]{2,10}\b")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")
_WORD = re.compile(r"\w+")

TEXT_STAT_NAMES = (
    "log_chars",
    "log_words",
    "caps_ratio",
    "punctuation_ratio",
    "exclamations",
    "digit_ratio",
    "urls",
    "handles",
    "hashtags",
    "cashtags",
    "emoji",
    "non_ascii_ratio",
    "newlines",
)


def text_statistics(texts: Sequence[str]) -> np.ndarray:
    """(n, len(TEXT_STAT_NAMES)) features: length, caps, punctuation, digits, URLs, handles, emoji."""
    rows = np.zeros((len(texts), len(TEXT_STAT_NAMES)), dtype=np.float64)
    for i, text in enumerate(texts):
        n = max(len(text), 1)
        letters = sum(c.isalpha() for c in text) or 1
        rows[i] = (
            np.log1p(len(text)),
            np.log1p(len(_WORD.findall(text))),
            sum(c.isupper() for c in text) / letters,
            sum((not c.isalnum()) and (not c.isspace()) for c in text) / n,
            np.log1p(text.count("!")),
            sum(c.isdigit() for c in text) / n,
            np.log1p(len(_URL.findall(text))),
            np.log1p(len(_HANDLE.findall(text))),
            np.log1p(len(_HASHTAG.findall(text))),
            np.log1p(len(_CASHTAG.findall(text))),
            np.log1p(len(_EMOJI.findall(text))),
            sum(ord(c) > 127 for c in text) / n,
            np.log1p(text.count("\n")),
        )
    return rows


class TfidfFeaturizer:
    """Word n-gram TF-IDF, optional char n-gram TF-IDF, optional text statistics, as one sparse matrix."""

    def __init__(
        self,
        word_ngrams: Sequence[int] = (1, 3),
        char_ngrams: Sequence[int] | None = (2, 5),
        max_features: int | None = 200_000,
        min_df: int = 2,
        text_stats: bool = True,
    ) -> None:
        self.word = TfidfVectorizer(
            ngram_range=tuple(word_ngrams),
            min_df=min_df,
            sublinear_tf=True,
            max_features=max_features,
            dtype=np.float32,
        )
        self.char = (
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=tuple(char_ngrams),
                min_df=min_df,
                sublinear_tf=True,
                max_features=max_features,
                dtype=np.float32,
            )
            if char_ngrams
            else None
        )
        self.text_stats = text_stats

    @property
    def n_stats(self) -> int:
        """How many text-statistics columns sit at the end of the feature matrix."""
        return len(TEXT_STAT_NAMES) if self.text_stats else 0

    def _stack(self, texts: Sequence[str], parts: list[sparse.spmatrix]) -> sparse.csr_matrix:
        if self.text_stats:
            parts.append(sparse.csr_matrix(text_statistics(texts).astype(np.float32)))
        return sparse.hstack(parts, format="csr")

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        parts = [self.word.fit_transform(texts)]
        if self.char is not None:
            parts.append(self.char.fit_transform(texts))
        return self._stack(texts, parts)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        parts = [self.word.transform(texts)]
        if self.char is not None:
            parts.append(self.char.transform(texts))
        return self._stack(texts, parts)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted featurizer as arrays and JSON (``from_state`` rebuilds it exactly)."""
        arrays, word = vectorizer_state(self.word, "word_")
        meta: dict[str, Any] = {"text_stats": self.text_stats, "word": word, "char": None}
        if self.char is not None:
            char_arrays, meta["char"] = vectorizer_state(self.char, "char_")
            arrays.update(char_arrays)
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> TfidfFeaturizer:
        featurizer = cls.__new__(cls)
        featurizer.word = vectorizer_from_state(arrays, meta["word"], "word_")
        featurizer.char = vectorizer_from_state(arrays, meta["char"], "char_") if meta["char"] else None
        featurizer.text_stats = bool(meta["text_stats"])
        return featurizer
