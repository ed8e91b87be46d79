"""What ``select`` refuses to crown, and says why: a run whose other decisions collapsed (the F1
floor), a run over budget on valid, the second of an export and its source; the holdout shown in a
column of its own, never as a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import compose_train, run_entry, tracking_overrides
from toxmod.runs.store import StoredRun
from toxmod.stages.selection_rules import (
    budget_reasons,
    decision_f1,
    f1_floor_reasons,
    holdout_note,
    same_model_reasons,
)
from toxmod.stages.train import train


def _run(run_id: str, metrics: dict[str, float], **tags: str) -> StoredRun:
    return StoredRun(run_id, "FINISHED", "0", run_id, 0, tags=dict(tags), metrics=metrics)


def _decisions(split: str, **f1: float) -> dict[str, float]:
    found = {}
    for decision, value in f1.items():
        found |= {f"{split}/{decision}/f1": value, f"{split}/{decision}/negatives": 200.0}
    return found


@pytest.mark.data_free
def test_the_f1_floor_by_hand() -> None:
    strong = _run("strong", _decisions("valid", scam=0.70, topic_crypto=0.88))
    student = _run("student", _decisions("valid", scam=0.75, topic_crypto=0.21))
    close = _run("close", _decisions("valid", scam=0.72, topic_crypto=0.80))  # 0.80 >= 0.9 x 0.88
    reasons = f1_floor_reasons([strong, student, close], "scam", 0.9)
    assert reasons == {"student": "F1 floor: topic_crypto valid F1 0.210 < 0.9 x 0.880"}
    assert f1_floor_reasons([strong, student], "scam", 0.0) == {}


@pytest.mark.data_free
def test_a_levels_decision_f1_comes_from_precision_and_recall() -> None:
    run = _run("r", {"valid/at_least_hate/precision": 0.5, "valid/at_least_hate/recall": 0.25})
    assert decision_f1(run, "at_least_hate") == pytest.approx(2 * 0.5 * 0.25 / 0.75)


@pytest.mark.data_free
def test_budget_on_valid_is_a_reason_and_the_holdout_only_a_note() -> None:
    metrics = {"threshold/scam/target_fpr": 0.02, "valid/scam/fpr": 0.05, "valid/scam/negatives": 300.0}
    metrics |= {"holdout/scam/fpr": 0.027, "holdout/scam/negatives": 300.0}
    over = _run("over", metrics)
    assert budget_reasons([over], 1.0) == {"over": "over budget on valid: scam valid FPR 0.050 > 0.020"}
    assert holdout_note(over, 1.0) == "over: scam holdout FPR 0.027 > 0.020"


@pytest.mark.data_free
def test_an_export_and_its_source_compete_once() -> None:
    source, export = _run("source", {}), _run("export", {}, source_run_id="source")
    assert same_model_reasons([export, source], set()) == {
        "source": "same model as export (an export and its source compete once)"
    }
    # the export is excluded for another reason: its source competes
    assert same_model_reasons([export, source], {"export"}) == {
        "export": "same model as source (an export and its source compete once)"
    }


@pytest.mark.slow
def test_select_never_crowns_a_run_whose_second_decision_collapsed(
    tmp_path: Path, store: dict[str, str]
) -> None:
    """A real tiny janitr run and a student-like run with a higher valid scam recall within budget but
    topic_crypto collapsed: the real run is crowned, the other is marked with the reason."""
    cfg = compose_train(
        ["data=janitr", "data.max_rows=600", "model=tfidf_logreg", "bootstrap=0", "log_pyfunc=true"]
        + ["threshold.target_fpr=0.2", *tracking_overrides(store)]
    )
    real = train(cfg, tmp_path / "real")
    client = MlflowClient(store["uri"])
    source = client.get_run(real.run_id)
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    student = client.create_run(source.info.experiment_id, run_name="student-collapsed", tags=tags)
    metrics = dict(source.data.metrics)
    metrics["valid/scam/recall"] = metrics["valid/scam/recall"] + 0.1  # ranks first on the metric
    metrics["valid/topic_crypto/f1"] = 0.05  # ... with its other decision gone
    for key, value in metrics.items():
        client.log_metric(student.info.run_id, key, value)
    holdout_eval = tmp_path / "holdout_eval.json"
    holdout_eval.write_text(json.dumps({"split_sha256": source.data.tags["split_sha256"]}))
    client.log_artifact(student.info.run_id, str(holdout_eval))
    client.set_terminated(student.info.run_id, "FINISHED")

    # 600 rows resolve no 2% budget: allowed here, the F1 floor is what is tested
    chosen = run_entry("select", "model_name=janitr", "allow_over_budget=true", *tracking_overrides(store))
    assert chosen.returncode == 0, chosen.stdout[-3000:] + chosen.stderr
    assert client.get_model_version_by_alias("janitr", "champion").run_id == real.run_id
    assert "F1 floor: topic_crypto valid F1 0.050" in chosen.stdout
    assert "not ranked because" in chosen.stdout and "holdout budget" in chosen.stdout
