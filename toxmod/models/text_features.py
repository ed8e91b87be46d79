"""Featurizers for the classical models: TF-IDF word/char n-grams plus hand-made text statistics."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import _inplace_csr_row_normalize_l2

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
        letters = sum(map(str.isalpha, text)) or 1
        # no character is both alphanumeric and white space, so this counts punctuation and symbols
        punctuation = len(text) - sum(map(str.isalnum, text)) - sum(map(str.isspace, text))
        rows[i] = (
            np.log1p(len(text)),
            np.log1p(len(_WORD.findall(text))),
            sum(map(str.isupper, text)) / letters,
            punctuation / n,
            np.log1p(text.count("!")),
            sum(map(str.isdigit, text)) / n,
            np.log1p(len(_URL.findall(text))),
            np.log1p(len(_HANDLE.findall(text))),
            np.log1p(len(_HASHTAG.findall(text))),
            np.log1p(len(_CASHTAG.findall(text))),
            np.log1p(len(_EMOJI.findall(text))),
            (len(text) - sum(map(str.isascii, text))) / n,
            np.log1p(text.count("\n")),
        )
    return rows


class FittedTfidf:
    """A fitted ``TfidfVectorizer``'s ``transform`` as plain loops and numpy, without scikit-learn's
    per-call input checks and matrix building (most of the time of scoring one text).

    The arithmetic is scikit-learn's, step for step (counts in the vectorizer's dtype, ``log(tf) + 1``,
    ``*= idf``, the same row normalization), so the values are identical; a vectorizer set up in a way
    this does not cover (``binary``, a norm other than l2 or none, no idf) is left to scikit-learn.
    """

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.vectorizer = vectorizer
        self.analyze = self._analyzer(vectorizer)
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.width = len(self.vocabulary)
        self.dtype = np.dtype(vectorizer.dtype)
        self.idf = vectorizer.idf_

    @staticmethod
    def covers(vectorizer: TfidfVectorizer) -> bool:
        return (
            not vectorizer.binary
            and vectorizer.use_idf
            and vectorizer.norm in ("l2", None)
            and np.dtype(vectorizer.dtype) in (np.float32, np.float64)
        )

    @staticmethod
    def _analyzer(vectorizer: TfidfVectorizer) -> Callable[[str], list[str]]:
        """scikit-learn's analyzer; for ``char_wb`` the same n-grams from list comprehensions
        (scikit-learn's loop appends one n-gram at a time)."""
        if vectorizer.analyzer != "char_wb" or vectorizer.input != "content":
            return vectorizer.build_analyzer()
        preprocess = vectorizer.build_preprocessor()
        min_n, max_n = vectorizer.ngram_range
        white_spaces = vectorizer._white_spaces

        def char_wb_ngrams(text: str) -> list[str]:
            ngrams: list[str] = []
            for word in white_spaces.sub(" ", preprocess(text)).split():
                padded = f" {word} "
                length = len(padded)
                for n in range(min_n, max_n + 1):
                    if n >= length:  # a word no longer than n counts once, whole, and ends the word
                        ngrams.append(padded)
                        break
                    ngrams.extend([padded[i : i + n] for i in range(length - n + 1)])
            return ngrams

        return char_wb_ngrams

    def rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, indices, data)`` of the TF-IDF matrix, column indices sorted within each row."""
        lookup = self.vocabulary.get
        columns_seen: list[int] = []
        counts_seen: list[int] = []
        row_sizes: list[int] = []
        for text in texts:
            counts = Counter(self.analyze(text))
            columns_seen.extend(map(lookup, counts, repeat(-1)))
            counts_seen.extend(counts.values())
            row_sizes.append(len(counts))
        rows = np.repeat(np.arange(len(texts)), row_sizes)
        columns = np.asarray(columns_seen, dtype=np.int64)
        known = columns >= 0  # a term outside the vocabulary is not a feature
        rows, columns = rows[known], columns[known]
        counts_array = np.asarray(counts_seen, dtype=np.int64)[known]
        order = np.lexsort((columns, rows))  # by row, then column
        columns = columns[order].astype(np.int32)
        data = counts_array[order].astype(self.dtype)
        offsets = row_offsets(rows, len(texts)).astype(np.int32)
        if self.vectorizer.sublinear_tf:
            np.log(data, data)
            data += 1.0
        data *= self.idf[columns]
        if self.vectorizer.norm == "l2":
            _inplace_csr_row_normalize_l2(data, (len(texts), self.width), columns, offsets)
        return offsets, columns, data

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        offsets, columns, data = self.rows(texts)
        return sparse.csr_matrix((data, columns, offsets), shape=(len(texts), self.width))


def row_offsets(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """A CSR ``indptr`` from the row index of each stored entry (entries grouped by row, in order)."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])


def stack_rows(
    blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], widths: Sequence[int], dtype: Any
) -> sparse.csr_matrix:
    """Column blocks of the same rows, each ``(indptr, indices, data)``, side by side as one CSR matrix
    (what ``sparse.hstack`` builds, without converting each block to a matrix first)."""
    n_rows = len(blocks[0][0]) - 1
    offsets = np.cumsum([0, *widths[:-1]])
    if n_rows == 1:  # one text: its entries are the blocks' entries in order
        indices = np.concatenate([block[1] + offset for block, offset in zip(blocks, offsets)])
        data = np.concatenate([block[2].astype(dtype, copy=False) for block in blocks])
        indptr = np.array([0, len(indices)], dtype=np.int32)
    else:
        rows = np.concatenate([np.repeat(np.arange(n_rows), np.diff(block[0])) for block in blocks])
        order = np.argsort(rows, kind="stable")  # by row, keeping the blocks (columns) in order
        indices = np.concatenate([block[1] + offset for block, offset in zip(blocks, offsets)])[order]
        data = np.concatenate([block[2].astype(dtype, copy=False) for block in blocks])[order]
        indptr = row_offsets(rows, n_rows).astype(np.int32)
    return sparse.csr_matrix((data, indices.astype(np.int32), indptr), shape=(n_rows, int(sum(widths))))


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
        self._fitted: list[FittedTfidf | TfidfVectorizer] | None = None

    @property
    def n_stats(self) -> int:
        """How many text-statistics columns sit at the end of the feature matrix."""
        return len(TEXT_STAT_NAMES) if self.text_stats else 0

    def _stack(self, texts: Sequence[str], parts: list[sparse.spmatrix]) -> sparse.csr_matrix:
        if self.text_stats:
            parts.append(sparse.csr_matrix(text_statistics(texts).astype(np.float32)))
        return parts[0].tocsr() if len(parts) == 1 else sparse.hstack(parts, format="csr")

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        self._fitted = None
        parts = [self.word.fit_transform(texts)]
        if self.char is not None:
            parts.append(self.char.fit_transform(texts))
        return self._stack(texts, parts)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The fitted features of ``texts``: the matrix ``fit_transform`` would give for them, at a
        fraction of scikit-learn's per-call cost (one text at a time is how a moderation model is used)."""
        fitted = self._fitted_vectorizers()
        if not all(isinstance(vectorizer, FittedTfidf) for vectorizer in fitted):
            return self._stack(texts, [vectorizer.transform(texts) for vectorizer in fitted])
        blocks = [vectorizer.rows(texts) for vectorizer in fitted]
        widths = [vectorizer.width for vectorizer in fitted]
        if self.text_stats:
            stats = text_statistics(texts).astype(np.float32)
            rows, columns = np.nonzero(stats)  # a sparse matrix stores no zeros
            indptr = row_offsets(rows, len(texts))
            blocks.append((indptr, columns.astype(np.int32), stats[rows, columns]))
            widths.append(stats.shape[1])
        return stack_rows(blocks, widths, np.float32)

    def _fitted_vectorizers(self) -> list[FittedTfidf | TfidfVectorizer]:
        fitted = getattr(self, "_fitted", None)  # absent on a featurizer unpickled from an older format
        if fitted is None:
            vectorizers = [self.word] if self.char is None else [self.word, self.char]
            fitted = [FittedTfidf(v) if FittedTfidf.covers(v) else v for v in vectorizers]
            self._fitted = fitted
        return fitted

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
        featurizer._fitted = None
        return featurizer
