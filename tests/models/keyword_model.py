"""A keyword-count model: per output, the words most over-represented in its positive train texts;
a text's score grows with how many of them it holds. A model kind of a user's own (one file)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.models import FitContext, Scorer

WORD = re.compile(r"\w+")
KEYWORDS_FILE = "keywords.json"


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


class KeywordCountScorer(Scorer):
    kind = "keyword_count"

    def __init__(self, keywords_per_label: int = 50) -> None:
        super().__init__()
        self.keywords_per_label = keywords_per_label
        self.keywords: list[list[str]] = []

    def params(self) -> dict[str, Any]:
        return {"keywords_per_label": self.keywords_per_label}

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> KeywordCountScorer:
        self.scheme = scheme
        bags, targets = [words(t) for t in texts], np.asarray(targets)
        self.keywords = []
        for column in targets.T:
            inside, outside = Counter(), Counter()
            for bag, positive in zip(bags, column):
                (inside if positive else outside).update(bag)
            n_in, n_out = column.sum() + 2, len(column) - column.sum() + 2
            ratio = {w: (c + 1) / n_in / ((outside[w] + 1) / n_out) for w, c in inside.items()}
            self.keywords.append(sorted(ratio, key=lambda w: (-ratio[w], w))[: self.keywords_per_label])
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        sets = [set(keywords) for keywords in self.keywords]
        bags = [words(t) for t in texts]
        hits = np.array([[len(bag & s) for s in sets] for bag in bags], dtype=np.float64).reshape(
            -1, len(sets)
        )
        sizes = np.array([len(bag) + 1 for bag in bags], dtype=np.float64)[:, None]
        return hits / (hits + 1.0) + 1e-3 * hits / sizes  # more keywords -> closer to 1; share breaks ties

    def _save_weights(self, directory: Path) -> None:
        (directory / KEYWORDS_FILE).write_text(json.dumps(self.keywords))

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        self.keywords = json.loads((directory / KEYWORDS_FILE).read_text())
