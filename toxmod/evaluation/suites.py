"""Functional test suites (CheckList-style): labelled test cases grouped by the behaviour they test.

A suite is a CSV, TSV or JSONL file (``.gz`` too) with one test case per row: its text, the expected
outcome of one decision (flag or not), the functionality it tests and, optionally, the group it
targets. A case passes when the run's decision at its threshold equals the expected outcome. The
balanced pass rate is the mean of the pass rates on expected-flag and expected-pass cases, so a suite's
label mix cannot flatter a model that always says one thing. Column names and label values are
settings (``suite_format``), so any published suite is read without editing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toxmod.data.readers import read_table
from toxmod.errors import ConfigError, DataError
from toxmod.evaluation.slices import metric_key


@dataclass(frozen=True)
class SuiteFormat:
    """``suite_format.*``: the suite's columns and which label values mean "should be flagged"."""

    text_column: str = "text"
    label_column: str = "label"
    functionality_column: str = "functionality"
    group_column: str | None = None
    positive: tuple[str, ...] = ("1", "true", "yes")
    negative: tuple[str, ...] = ("0", "false", "no")
    examples: int = 3  # failing cases shown (and stored) per functionality


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    sha256: str
    texts: list[str]
    expected: np.ndarray  # (n,) bool: should be flagged
    functionalities: np.ndarray  # (n,) str
    groups: np.ndarray | None  # (n,) str, "" when none


@dataclass(frozen=True)
class PassRate:
    name: str
    n: int
    passed: int
    expected_flag: int

    @property
    def rate(self) -> float:
        return self.passed / self.n if self.n else math.nan


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    decision: str
    pass_rate: float
    balanced_pass_rate: float
    by_label: dict[str, float]  # "flag" / "pass" -> pass rate of cases expecting it
    functionalities: list[PassRate]  # worst first
    groups: list[PassRate]
    failures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        found = {"suite/pass_rate": self.pass_rate, "suite/balanced_pass_rate": self.balanced_pass_rate}
        found |= {f"suite/expected_{k}/pass_rate": v for k, v in self.by_label.items()}
        for kind, rows in (("functionality", self.functionalities), ("group", self.groups)):
            found |= {metric_key("suite", kind, r.name, "pass_rate"): r.rate for r in rows}
        return found


def read_suite(path: str | Path, form: SuiteFormat, file_sha256: str) -> Suite:
    """Read and check a suite file; every problem is one line naming the file and the column."""
    path = Path(path).expanduser()
    frame = read_table(path)
    where = f"suite {path}"
    needed = [("text_column", form.text_column), ("label_column", form.label_column)]
    needed += [("functionality_column", form.functionality_column)]
    needed += [("group_column", form.group_column)] if form.group_column else []
    missing = [f"{column!r} (suite_format.{key})" for key, column in needed if column not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: column {', '.join(missing)} not found; columns are {list(frame.columns)[:20]}"
        )
    texts = frame[form.text_column].astype(str)
    if (texts.str.strip() == "").any():
        row = int(np.flatnonzero((texts.str.strip() == "").to_numpy())[0])
        raise DataError(f"{where}: column {form.text_column!r} is empty in row {row + 2}")
    expected = _expected(frame[form.label_column], form, where)
    functionalities = frame[form.functionality_column].astype(str).str.strip()
    if (functionalities == "").any():
        row = int(np.flatnonzero((functionalities == "").to_numpy())[0])
        raise DataError(f"{where}: column {form.functionality_column!r} is empty in row {row + 2}")
    groups = frame[form.group_column].astype(str).str.strip().to_numpy() if form.group_column else None
    return Suite(
        path.stem.split(".")[0],
        path.resolve(),
        file_sha256,
        texts.tolist(),
        expected,
        functionalities.to_numpy(dtype=object),
        groups,
    )


def _expected(values: pd.Series, form: SuiteFormat, where: str) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    positive = {str(v).lower() for v in form.positive}
    negative = {str(v).lower() for v in form.negative}
    unknown = sorted(set(text) - positive - negative)
    if unknown:
        raise DataError(
            f"{where}: column {form.label_column!r} holds {unknown[:5]}, neither suite_format.positive "
            f"{sorted(positive)} nor suite_format.negative {sorted(negative)}; set both to the suite's values"
        )
    return text.isin(positive).to_numpy()


def score_suite(suite: Suite, decision: str, flagged: np.ndarray, examples: int) -> SuiteResult:
    """Pass rates of a run's ``flagged`` decisions (boolean per case) on ``suite``."""
    flagged = np.asarray(flagged, dtype=bool)
    passed = flagged == suite.expected
    by_label = {
        label: float(passed[mask].mean())
        for label, mask in (("flag", suite.expected), ("pass", ~suite.expected))
        if mask.any()
    }
    functionalities = _pass_rates(suite.functionalities, passed, suite.expected)
    groups = _pass_rates(suite.groups, passed, suite.expected) if suite.groups is not None else []
    failures: dict[str, list[dict[str, Any]]] = {}
    for row in functionalities:
        failing = np.flatnonzero((suite.functionalities == row.name) & ~passed)[:examples]
        if len(failing):
            failures[row.name] = [
                {
                    "text": suite.texts[i],
                    "expected": "flag" if suite.expected[i] else "pass",
                    "row": int(i) + 2,
                }
                for i in failing
            ]
    return SuiteResult(
        suite.name,
        decision,
        float(passed.mean()),
        float(np.mean(list(by_label.values()))),
        by_label,
        functionalities,
        [g for g in groups if g.name],
        failures,
    )


def _pass_rates(keys: np.ndarray, passed: np.ndarray, expected: np.ndarray) -> list[PassRate]:
    rows = [
        PassRate(
            str(key),
            int((keys == key).sum()),
            int(passed[keys == key].sum()),
            int(expected[keys == key].sum()),
        )
        for key in dict.fromkeys(keys.tolist())
    ]
    return sorted(rows, key=lambda r: (r.rate, r.name))


def check_format(form: SuiteFormat) -> None:
    """Positive and negative values must not overlap (a case cannot expect both)."""
    both = {str(v).lower() for v in form.positive} & {str(v).lower() for v in form.negative}
    if both:
        raise ConfigError(f"suite_format.positive and suite_format.negative share {sorted(both)}")
