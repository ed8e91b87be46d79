"""``python -m toxmod.compare``: runs told apart by name, sorted, whole when piped, and as CSV/markdown."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import JANITR_SLICE, compose_train, run_entry, stored_runs, tracking_overrides
from toxmod.stages.train import default_run_name, train


def test_default_run_names_say_what_the_command_changed() -> None:
    overrides = ["model=tfidf_logreg", "threshold=optuna", "model.C=2", "tracking.uri=sqlite:///x.db"]
    first, second = (default_run_name("tfidf_logreg", "janitr", overrides) for _ in range(2))
    assert re.fullmatch(r"tfidf_logreg-janitr-optuna-C=2-[0-9a-f]{4}", first) and first != second
    assert re.fullmatch(r"student-janitr-[0-9a-f]{4}", default_run_name("student", "janitr", None))


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three finished logistic-regression runs (C = 0.01, 1, 100) and one that failed, in one store."""
    root = tmp_path_factory.mktemp("compare")
    store = {"uri": f"sqlite:///{root / 'mlruns.db'}", "artifact_root": str(root / "artifacts")}
    base = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0"]
    for c in ("0.01", "1", "100"):
        overrides = [*base, f"model.C={c}", *tracking_overrides(store)]
        train(compose_train(overrides), root / f"C{c}", overrides)
    with pytest.raises(ValueError):  # fails inside fit, after the tracking run started
        overrides = [*base, "model.min_df=100000", *tracking_overrides(store)]
        train(compose_train(overrides), root / "failed", overrides)
    return store


def test_compare_sorts_by_the_first_metric_and_writes_csv_and_markdown(
    three_runs: dict[str, str], tmp_path: Path
) -> None:
    tracking = tracking_overrides(three_runs)
    shown = run_entry("compare", *tracking, "format=csv", f"output={tmp_path / 'runs.md'}")
    assert shown.returncode == 0, shown.stderr
    table = pd.read_csv(io.StringIO(shown.stdout))  # notes ("wrote ...") go to stderr
    assert len(table) == 3 and set(table.status) == {"FINISHED"}
    assert table.macro_f1.is_monotonic_decreasing and table.macro_f1.iloc[0] > table.macro_f1.iloc[-1]
    assert {re.sub(r"-[0-9a-f]{4}$", "", name) for name in table.name} == {
        f"tfidf_logreg-janitr-max_rows=600-max_features=2000-C={c}" for c in ("0.01", "1", "100")
    }
    assert f"wrote {tmp_path / 'runs.md'}" in shown.stderr
    markdown = (tmp_path / "runs.md").read_text().splitlines()
    assert markdown[0].startswith("| run | name | status |") and len(markdown) == 5

    by_speed = run_entry("compare", *tracking, "format=csv", "sort_by=train_seconds", "ascending=true")
    assert pd.read_csv(io.StringIO(by_speed.stdout)).train_s.is_monotonic_increasing


def test_a_piped_compare_table_keeps_every_column_whole(three_runs: dict[str, str]) -> None:
    shown = run_entry("compare", *tracking_overrides(three_runs))
    assert shown.returncode == 0 and "by holdout/macro_f1" in shown.stdout
    names = [run.info.run_name for run in stored_runs(three_runs) if run.info.status == "FINISHED"]
    assert all(name in shown.stdout for name in names) and "…" not in shown.stdout


def test_unfinished_runs_are_refused_unless_asked_for(three_runs: dict[str, str]) -> None:
    tracking = tracking_overrides(three_runs)
    failed = next(run for run in stored_runs(three_runs) if run.info.status == "FAILED")
    assert failed.info.run_name.startswith("FAILED tfidf_logreg-janitr-")
    assert "max_df corresponds to < documents than min_df" in failed.data.tags["failure_reason"]
    refused = run_entry("compare", *tracking, f"runs=[{failed.info.run_id}]")
    assert refused.returncode == 2 and "did not finish" in refused.stderr
    shown = run_entry("compare", *tracking, "allow_unfinished=true", "format=csv")
    assert shown.returncode == 0 and sorted(pd.read_csv(io.StringIO(shown.stdout)).status) == [
        "FAILED",
        *["FINISHED"] * 3,
    ]
