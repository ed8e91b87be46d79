"""A functional test suite run against a finished run (``toxmod.evaluate suite=...``, ``select``'s gate)."""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.config import as_dict
from toxmod.display import printable
from toxmod.errors import ConfigError
from toxmod.evaluation.suites import Suite, SuiteFormat, SuiteResult, check_format, read_suite, score_suite
from toxmod.evaluation.transfer import decision_of
from toxmod.files import file_sha256
from toxmod.models import Opening
from toxmod.progress import console
from toxmod.runs.evaluations import ScoredData, evaluated_run, find_evaluation, record_evaluation
from toxmod.runs.opening import OpenedModel, open_model
from toxmod.runs.store import RunStore, StoredRun
from toxmod.tables import rows_table

SUITE_FILE = "suite.json"


def suite_format(cfg: Any) -> SuiteFormat:
    """``suite_format`` of a config as settings (positive/negative values as text)."""
    given = as_dict(cfg) if not isinstance(cfg, dict) else dict(cfg)
    form = SuiteFormat(
        text_column=str(given["text_column"]),
        label_column=str(given["label_column"]),
        functionality_column=str(given["functionality_column"]),
        group_column=str(given["group_column"]) if given.get("group_column") else None,
        positive=tuple(str(v) for v in given["positive"]),
        negative=tuple(str(v) for v in given["negative"]),
        examples=int(given["examples"]),
    )
    check_format(form)
    return form


def load_suite(path: str | Path, form: SuiteFormat) -> Suite:
    path = Path(str(path)).expanduser()
    return read_suite(path, form, file_sha256(path) if path.is_file() else "")


def format_digest(form: SuiteFormat, decision: str | None) -> str:
    """What else decides a suite's outcome besides its file: columns, values, the decision tested."""
    fields = {**form.__dict__, "decision": decision}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:16]


def run_suite(opened: OpenedModel, suite: Suite, form: SuiteFormat, decision: str | None) -> SuiteResult:
    """Score the suite's texts and judge one decision at the run's threshold."""
    scheme = opened.scheme
    chosen = decision_of(scheme, decision) if decision else scheme.primary_decision
    if chosen is None:
        raise ConfigError(f"suite_format.decision={decision!r}; the run decides {scheme.decision_names}")
    j = scheme.decision_names.index(chosen)
    console.print(f"scoring suite {suite.name}: {len(suite.texts)} cases, decision {chosen} ...")
    scores = scheme.decision_scores(opened.scorer.predict_scores(suite.texts))
    flagged = scores[:, j] >= opened.thresholds.as_array()[j]
    return score_suite(suite, chosen, np.asarray(flagged), form.examples)


def write_suite(result: SuiteResult, folder: Path) -> Path:
    """``suite.json``: every pass rate and the failing examples."""
    record = {
        "suite": result.suite,
        "decision": result.decision,
        "pass_rate": result.pass_rate,
        "balanced_pass_rate": result.balanced_pass_rate,
        "by_expected_label": result.by_label,
        "functionalities": [r.__dict__ | {"pass_rate": r.rate} for r in result.functionalities],
        "groups": [r.__dict__ | {"pass_rate": r.rate} for r in result.groups],
        "failures": result.failures,
    }
    path = folder / SUITE_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def print_suite(result: SuiteResult) -> None:
    """Pass rates per functionality (worst first) with a failing example each, then per group."""
    rows = [
        [r.name, r.n, r.expected_flag, f"{r.rate:.3f}", _example(result.failures.get(r.name))]
        for r in result.functionalities
    ]
    title = (
        f"suite {result.suite} ({result.decision}): pass rate {result.pass_rate:.3f}, "
        f"balanced {result.balanced_pass_rate:.3f}"
    )
    console.print(
        rows_table(title, ["functionality", "cases", "expect flag", "pass rate", "a failing case"], rows)
    )
    if result.groups:
        group_rows = [[r.name, r.n, f"{r.rate:.3f}"] for r in result.groups]
        console.print(rows_table("pass rate by target group", ["group", "cases", "pass rate"], group_rows))


def _example(failures: list[dict[str, Any]] | None) -> str:
    if not failures:
        return ""
    first = failures[0]
    text = printable(first["text"])
    return f"{text[:60]}{'...' if len(text) > 60 else ''} (expected {first['expected']})"


@dataclass(frozen=True)
class SuiteGate:
    """``select``'s suite gate: each candidate's ``metric`` on the suite, and the bound it must meet."""

    suite: str
    metric: str
    bound: float
    values: dict[str, float]  # run id -> pass rate

    def passes(self, run_id: str) -> bool:
        value = self.values.get(run_id, math.nan)
        return not math.isnan(value) and value >= self.bound - 1e-12

    def note(self, run_id: str) -> str:
        value = self.values.get(run_id, math.nan)
        if math.isnan(value):
            return "not scored"
        return f"{value:.3f}" + ("" if self.passes(run_id) else f" < {self.bound:g}: BELOW GATE")


def suite_gate(
    path: str,
    form: SuiteFormat,
    decision: str | None,
    metric: str,
    bound: float,
    runs: Sequence[StoredRun],
    store: RunStore,
    tracker: Any,
    opening: Opening,
    downloads: Path,
) -> SuiteGate:
    """Every run's suite ``metric``: from its evaluation run on the same suite, format and decision
    when there is one, else scored now (opened by run id) and recorded as an evaluation run."""
    if metric not in SUITE_METRICS:
        raise ConfigError(f"suite_metric={metric}: expected one of {list(SUITE_METRICS)}")
    if not 0.0 <= bound <= 1.0:
        raise ConfigError(f"min_pass_rate={bound}: expected a share in [0, 1]")
    suite = load_suite(path, form)
    digest = suite_digest(suite, form, decision)
    values = {}
    for run in runs:
        earlier = find_evaluation(store, run.run_id, {"suite_digest": digest})
        if earlier is not None and f"suite/{metric}" in earlier.metrics:
            values[run.run_id] = float(earlier.metrics[f"suite/{metric}"])
            continue
        opened = open_model(run.run_id, store, downloads, False, opening)
        result = run_suite(opened, suite, form, decision)
        values[run.run_id] = float(result.metrics()[f"suite/{metric}"])
        with tempfile.TemporaryDirectory() as folder:
            write_suite(result, Path(folder))
            scored, tags = suite_evaluation(suite, form, decision, result)
            record_evaluation(
                tracker, evaluated_run(store, opened.run), f"eval {run.name} on suite {suite.name}"[:250],
                [scored], {"run": run.run_id}, tags, Path(folder),
            )  # fmt: skip
    return SuiteGate(suite.name, metric, bound, values)


SUITE_METRICS = ("balanced_pass_rate", "pass_rate")


def suite_digest(suite: Suite, form: SuiteFormat, decision: str | None) -> str:
    """The suite file's hash and everything else that decides its outcome (columns, values, decision)."""
    return f"{suite.sha256[:20]}-{format_digest(form, decision)}"


def suite_evaluation(
    suite: Suite, form: SuiteFormat, decision: str | None, result: SuiteResult
) -> tuple[ScoredData, dict[str, str]]:
    """What an evaluation run records of a suite result, and the tags the gate finds it by again."""
    digest = suite_digest(suite, form, decision)
    source = {"uri": str(suite.path), "sha256": suite.sha256, "format": form.__dict__}
    scored = ScoredData(f"suite.{suite.name}", digest, source, "suite", result.metrics())
    return scored, {"suite": suite.name, "suite_digest": digest}
