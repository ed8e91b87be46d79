"""Plots, saved holdout predictions and a pyfunc model in every run; ``toxmod.report`` (table, plots,
paired bootstrap, an MLflow run of its own); ``toxmod.select`` (valid metric only, registry alias,
idempotent); the champion served by ``mlflow models serve`` over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import RECORD_EXTRAS_ON, TINY_XGBOOST, compose_train, run_entry, tracking_overrides
from toxmod.config import compose_config
from toxmod.errors import ToxmodError
from toxmod.models import load_scorer
from toxmod.runs.store import global_tracking_uri
from toxmod.stages.predict import Predictor
from toxmod.stages.report import report
from toxmod.stages.select import parse_where
from toxmod.stages.train import TrainResult, train

pytestmark = pytest.mark.slow

JANITR = ["data=janitr", "data.max_rows=600", "bootstrap=0", *RECORD_EXTRAS_ON]
MODELS = {
    "logreg_c4": ["model=tfidf_logreg", "model.C=4"],
    "logreg_c05": ["model=tfidf_logreg", "model.C=0.05"],
    "xgboost": TINY_XGBOOST,
}


@pytest.fixture(scope="module")
def janitr_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, TrainResult], dict[str, str]]:
    root = tmp_path_factory.mktemp("select-report")
    store = {"uri": f"sqlite:///{root / 'mlruns.db'}", "artifact_root": str(root / "mlartifacts")}
    runs = {
        name: train(
            compose_train([*JANITR, *overrides, *tracking_overrides(store), f"run_name={name}"]), root / name
        )
        for name, overrides in MODELS.items()
    }
    return runs, store


def _is_png(path: Path) -> bool:
    import matplotlib.image

    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(path).ndim == 3


def test_every_run_has_plots_holdout_predictions_and_a_pyfunc_model(janitr_runs) -> None:  # noqa: ANN001
    runs, store = janitr_runs
    result = runs["logreg_c4"]
    plots = sorted(p.name for p in (result.run_dir / "plots").iterdir())
    assert plots == [
        "pr_scam.png",
        "pr_topic_crypto.png",
        "reliability.png",
        "scores_scam.png",
        "scores_topic_crypto.png",
    ]
    assert all(_is_png(result.run_dir / "plots" / name) for name in plots)
    assert result.metrics["plots_seconds"] < 10
    client = MlflowClient(store["uri"])
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} == {f"plots/{p}" for p in plots}
    # a model-training experiment, so MLflow 3's UI opens it on the runs table (not the GenAI views)
    experiment = client.get_experiment(client.get_run(result.run_id).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    frame = pd.read_parquet(result.run_dir / "predictions" / "holdout.parquet")
    holdout = json.loads((result.run_dir / "holdout_eval.json").read_text())
    assert len(frame) == holdout["metrics"]["n_examples"]
    assert list(frame.columns[:3]) == ["id", "target/scam", "target/topic_crypto"]

    # the pyfunc model (a LoggedModel of the run) scores as the run's own scorer
    import mlflow.artifacts
    import mlflow.pyfunc

    uri = client.get_run(result.run_id).data.tags["pyfunc_model_uri"]
    texts = ["free airdrop, connect your wallet now", "lunch at noon?"]
    with global_tracking_uri(store["uri"]):
        loaded = mlflow.pyfunc.load_model(uri)
        files = {p.name for p in Path(mlflow.artifacts.download_artifacts(uri)).iterdir()}
        served = loaded.predict(pd.DataFrame({"text": texts}))
    # logged from code: loading imports toxmod and reads the model files; nothing is unpickled
    assert loaded.metadata.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "pyfunc_code.py" in files and not any(name.endswith(".pkl") for name in files)
    scores = load_scorer(result.run_dir / "model").predict_scores(texts)
    assert np.allclose(served[["score/scam", "score/topic_crypto"]].to_numpy(), scores)
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())["thresholds"]
    assert list(served["decision/scam"]) == list(scores[:, 0] >= thresholds["scam"])


def test_a_levels_run_draws_its_confusion_matrix(tmp_path: Path) -> None:
    levels = ["data=davidson", "data.max_rows=900", "split=stratified", "model=tfidf_logreg", "tracking=none"]
    levels += RECORD_EXTRAS_ON
    result = train(compose_train([*levels, "bootstrap=0"]), tmp_path / "levels")
    names = {p.name for p in (result.run_dir / "plots").iterdir()}
    assert {"confusion.png", "reliability.png", "pr_at_least_hate.png", "scores_at_least_hate.png"} <= names
    assert _is_png(result.run_dir / "plots" / "confusion.png")
    off = train(compose_train([*levels, "bootstrap=0", "plots=false"]), tmp_path / "no-plots")
    assert not (off.run_dir / "plots").exists() and "plots_seconds" not in off.metrics


def test_report_writes_the_table_the_paired_tests_and_its_own_mlflow_run(janitr_runs, tmp_path: Path) -> None:  # noqa: ANN001
    runs, store = janitr_runs
    ids = [result.run_id for result in runs.values()]
    cfg = compose_config(
        "report", [f"runs=[{','.join(ids)}]", *tracking_overrides(store), f"output={tmp_path / 'report'}"]
    )
    done = report(cfg, tmp_path / "unused")
    text = done.markdown.read_text()
    for name in MODELS:
        assert f"| {name} |" in text
    assert "## Paired bootstrap" in text and text.count("| scam recall |") == 2  # best vs each other
    assert (tmp_path / "report" / "pr_scam.png").is_file() and (tmp_path / "report" / "pareto.png").is_file()
    best = done.runs[0]
    assert best.metric("holdout/scam/recall") == max(r.metric("holdout/scam/recall") for r in done.runs)
    recorded = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(recorded["pairs"]) == 2 and recorded["pairs"][0]["a"] == best.label
    client = MlflowClient(store["uri"])
    run = client.get_run(done.run_id)
    assert run.data.tags["task_name"] == "report"
    assert {"report/report.md", "report/pareto.png"} <= {
        a.path for a in client.list_artifacts(done.run_id, "report")
    }

    # a named pair, by run name
    cfg = compose_config(
        "report",
        [
            f"runs=[{','.join(ids)}]",
            *tracking_overrides(store),
            f"output={tmp_path / 'pair'}",
            "compare_pairs=[[xgboost,logreg_c05]]",
        ],
    )
    assert [(a, b) for a, b, _ in report(cfg, tmp_path / "unused").pairs] == [("xgboost", "logreg_c05")]


def test_report_reads_predictions_from_mlflow_when_the_run_directory_is_elsewhere(
    janitr_runs, tmp_path: Path
) -> None:  # noqa: ANN001, E501
    import dataclasses

    from toxmod.runs.store import RunStore
    from toxmod.stages.report import _read_run

    runs, store = janitr_runs
    stored = RunStore(store["uri"]).get(runs["xgboost"].run_id)
    local = _read_run(RunStore(store["uri"]), stored, tmp_path / "cache")
    moved = dataclasses.replace(stored, tags={**stored.tags, "run_dir": str(tmp_path / "gone")})
    downloaded = _read_run(RunStore(store["uri"]), moved, tmp_path / "cache")
    assert (tmp_path / "cache" / stored.run_id / "predictions" / "holdout.parquet").is_file()
    assert np.array_equal(local.scores, downloaded.scores) and np.array_equal(local.ids, downloaded.ids)
    assert downloaded.thresholds.as_dict() == local.thresholds.as_dict()


def test_report_refuses_runs_on_different_splits(janitr_runs, tmp_path: Path) -> None:  # noqa: ANN001
    runs, store = janitr_runs
    other = train(
        compose_train(
            [
                "data=janitr",
                "data.max_rows=500",
                "bootstrap=0",
                "model=tfidf_logreg",
                *tracking_overrides(store),
            ]
        ),
        tmp_path / "other-split",
    )
    cfg = compose_config(
        "report", [f"runs=[{runs['logreg_c4'].run_id},{other.run_id}]", *tracking_overrides(store)]
    )
    with pytest.raises(ToxmodError, match="refusing to compare runs evaluated on different splits"):
        report(cfg, tmp_path / "r")


def test_where_conditions_parse_or_fail_in_one_line() -> None:
    assert parse_where("valid/scam/fpr<=0.02 and size_mb<=5") == [
        ("valid/scam/fpr", "<=", 0.02),
        ("size_mb", "<=", 5.0),
    ]
    with pytest.raises(ToxmodError, match="is not '<metric> <op> <number>'"):
        parse_where("valid/scam/fpr <= low")


def test_select_ranks_on_valid_sets_the_alias_once_and_predict_resolves_it(
    janitr_runs, tmp_path: Path
) -> None:  # noqa: ANN001
    runs, store = janitr_runs
    client = MlflowClient(store["uri"])
    # A constructed valid metric that ranks opposite to the holdout: select must follow valid.
    by_holdout = sorted(runs, key=lambda n: runs[n].metrics["holdout/macro_f1"])
    for rank, name in enumerate(by_holdout):
        client.log_metric(runs[name].run_id, "valid/constructed", float(len(by_holdout) - rank))
    worst_on_holdout = by_holdout[0]

    split = json.loads((runs["xgboost"].run_dir / "holdout_eval.json").read_text())["split_sha256"]
    args = [
        "metric=valid/constructed",
        "allow_over_budget=true",  # 600-row runs: the ranking mechanics, not the budget (tests/test_ship.py)
        "f1_floor=0",  # nor the F1 floor (tests/test_selection_rules.py)
        "model_name=janitr",
        f"split_sha256={split}",
        *tracking_overrides(store),
    ]
    first = run_entry("select", *args)
    assert first.returncode == 0, first.stderr
    version = client.get_model_version_by_alias("janitr", "champion")
    assert version.run_id == runs[worst_on_holdout].run_id
    again = run_entry("select", *args)
    assert again.returncode == 0 and "already registered" in again.stdout
    assert len(client.search_model_versions("name = 'janitr'")) == 1

    # where excludes the valid-best run: the next one becomes champion (a second version)
    size = runs[worst_on_holdout].metrics["model_size_bytes"] / 1e6
    others = [n for n in runs if n != worst_on_holdout]
    if all(runs[n].metrics["model_size_bytes"] / 1e6 != size for n in others):
        moved = run_entry("select", *args, f'where="size_mb!={size}"')
        assert moved.returncode == 0, moved.stderr
        assert client.get_model_version_by_alias("janitr", "champion").run_id != runs[worst_on_holdout].run_id

    # a holdout metric never ranks
    refused = run_entry("select", "metric=holdout/macro_f1", *tracking_overrides(store))
    assert refused.returncode == 2 and "valid metric only" in refused.stderr

    # predict and load resolve models:/name@alias
    from toxmod.runs.store import RunStore

    champion_run = client.get_model_version_by_alias("janitr", "champion").run_id
    predictor = Predictor.open("models:/janitr@champion", RunStore(store["uri"]), tmp_path / "cache")
    assert predictor.run_dir.name == champion_run or (predictor.run_dir / "holdout_eval.json").is_file()
    assert set(predictor.predict("claim your free tokens")["scores"]) == {"scam", "topic_crypto"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mlflow_models_serve_answers_an_http_request(janitr_runs, tmp_path: Path) -> None:  # noqa: ANN001
    runs, store = janitr_runs
    result = runs["logreg_c4"]
    env = dict(os.environ, MLFLOW_TRACKING_URI=store["uri"], MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    uri = MlflowClient(store["uri"]).get_run(result.run_id).data.tags["pyfunc_model_uri"]
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"mlflow models serve exited: {server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        body = json.dumps(
            {"dataframe_split": {"columns": ["text"], "data": [["free airdrop, claim now"], ["hi"]]}}
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    scores = load_scorer(result.run_dir / "model").predict_scores(["free airdrop, claim now", "hi"])
    assert [row["score/scam"] for row in predictions] == pytest.approx(list(scores[:, 0]))
    assert all(isinstance(row["decision/scam"], bool) for row in predictions)
