"""``toxmod.predict`` and ``toxmod.load``: any finished run scores new texts, one JSON record each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import toxmod
from tests.helpers import compose_train
from toxmod.errors import ToxmodError
from toxmod.paths import project_root
from toxmod.stages.predict import Predictor, PredictSettings, predict_file
from toxmod.stages.train import TrainResult, train

pytestmark = pytest.mark.slow

LEVELS = ["data=davidson", "data.max_rows=900", "split=stratified", "model=tfidf_logreg", "tracking=none"]


@pytest.fixture(scope="module")
def levels_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(compose_train([*LEVELS, "bootstrap=0"]), tmp_path_factory.mktemp("levels") / "run")


def test_load_predicts_like_the_run_scores(tiny_student_run) -> None:  # noqa: ANN001
    run_dir = tiny_student_run.result.run_dir
    model = toxmod.load(run_dir)
    one = model.predict("free crypto airdrop, claim your tokens now")
    assert set(one) == {"scores", "decisions"}
    assert set(one["scores"]) == {"scam", "topic_crypto"} and set(one["decisions"]) == {
        "scam",
        "topic_crypto",
    }
    texts = ["hello there", "claim free btc now", "gm"]
    many = model.predict(texts)
    scores = model.scorer.predict_scores(texts)
    thresholds = json.loads((run_dir / "thresholds.json").read_text())["thresholds"]
    for record, row in zip(many, scores):
        assert [record["scores"][k] for k in ("scam", "topic_crypto")] == pytest.approx(row, abs=1e-6)
        assert record["decisions"]["scam"] == (row[0] >= thresholds["scam"])
    assert model.predict([]) == []


def test_parquet_in_and_out_in_chunks_scores_like_csv(tiny_student_run, tmp_path: Path) -> None:  # noqa: ANN001
    """A Parquet input read in row batches, written as Parquet row groups with kept columns, gives the
    same records as the CSV input written as JSON lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [
        f"claim your free btc airdrop number {i}" if i % 3 else f"lunch with friends {i}" for i in range(50)
    ]
    texts[7] = ""  # reported, not scored
    frame = pd.DataFrame(
        {"id": [f"p{i}" for i in range(50)], "text": texts, "author": [i % 4 for i in range(50)]}
    )
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "posts.parquet", row_group_size=16
    )
    frame.to_csv(tmp_path / "posts.csv", index=False)
    predictor = Predictor.open(tiny_student_run.result.run_dir)
    common = {"chunk_size": 8, "keep_columns": ["author"]}
    as_parquet = PredictSettings.of(str(tmp_path / "posts.parquet"), str(tmp_path / "out.parquet"), **common)
    summary = predict_file(predictor, as_parquet)
    assert (summary.scored, summary.reported) == (49, 1)
    assert not (tmp_path / "out.parquet.partial").exists()
    written = pq.ParquetFile(tmp_path / "out.parquet")
    assert written.metadata.num_row_groups == 7  # 50 rows in chunks of 8: written batch by batch
    out = written.read().to_pandas()
    predict_file(
        predictor, PredictSettings.of(str(tmp_path / "posts.csv"), str(tmp_path / "out.jsonl"), **common)
    )
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert list(out["id"]) == [r["id"] for r in lines] == list(frame["id"])
    assert list(out["author"]) == list(frame["author"]) and [r["author"] for r in lines] == [
        str(a) for a in frame["author"]
    ]  # CSV columns are read as text
    for row, record in zip(written.read().to_pylist(), lines):
        if "error" in record:
            assert row["error"] == record["error"] == "empty text"
            continue
        assert row["error"] is None and row["scores.scam"] == record["scores"]["scam"]  # the same float
        assert row["decisions.topic_crypto"] == record["decisions"]["topic_crypto"]
    scores = predictor.scorer.predict_scores([t for t in texts if t])
    assert np.array_equal(out.loc[out["error"].isna(), "scores.scam"].to_numpy(), scores[:, 0])


def test_levels_runs_predict_a_level(levels_run: TrainResult) -> None:
    model = Predictor.open(levels_run.run_dir)
    records = model.predict(["you are a wonderful person", "i will hurt you, you worthless idiot"])
    levels = model.scheme.output_names
    for record in records:
        assert record["level"] in levels and set(record["scores"]) == set(levels)
        assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        passed = [d for d, on in record["decisions"].items() if on]  # at_least_<level> cuts passed
        expected = passed[-1].removeprefix("at_least_") if passed else levels[0]
        assert record["level"] == expected


def test_a_table_with_a_blank_and_an_overlong_text(levels_run: TrainResult, tmp_path: Path) -> None:
    table = tmp_path / "posts.csv"
    texts = ["nice post", "", "x" * 50, "you idiot"]
    pd.DataFrame({"id": ["a", "b", "c", "d"], "text": texts}).to_csv(table, index=False)
    output = tmp_path / "out" / "predictions.jsonl"
    settings = PredictSettings.of(str(table), str(output), batch_size=3, max_chars=40)
    summary = predict_file(Predictor.open(levels_run.run_dir), settings)
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b", "c", "d"]  # input order across batches
    assert records[1] == {"id": "b", "error": "empty text"}
    assert records[2] == {"id": "c", "error": "50 characters, over predict.max_chars=40"}
    assert "level" in records[0] and "level" in records[3]
    assert (summary.scored, summary.reported) == (2, 2)
    assert not list(output.parent.glob("*.partial"))
    direct = Predictor.open(levels_run.run_dir).predict(["nice post", "you idiot"])
    assert [records[0]["scores"], records[3]["scores"]] == [d["scores"] for d in direct]


def predict_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "toxmod.predict", "tracking=none", "hardware=cpu", *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, cwd=project_root(), timeout=300
    )


def test_stdin_to_stdout_and_an_unfinished_run_refused(levels_run: TrainResult, tmp_path: Path) -> None:
    result = predict_cli(f"run={levels_run.run_dir}", "input=-", stdin="hello friend\n\nyou moron\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: records only
    assert [r["id"] for r in records] == [1, 2, 3] and records[1]["error"] == "empty text"
    assert np.isclose(sum(records[2]["scores"].values()), 1.0, atol=1e-5)
    assert "scored 2 texts" in result.stderr and "1 reported" in result.stderr

    unfinished = tmp_path / "unfinished"
    shutil.copytree(levels_run.run_dir, unfinished)
    (unfinished / "holdout_eval.json").unlink()
    refused = predict_cli(f"run={unfinished}", "input=-", stdin="hello\n")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (
        f"error: run directory {unfinished} has no holdout_eval.json: the run did not finish"
    )
    with pytest.raises(ToxmodError, match="the run did not finish"):
        toxmod.load(unfinished)


def test_engine_ray_gives_the_local_engines_output(tmp_path: Path) -> None:
    """``engine=ray`` (Ray Data on a local Ray instance, two actors) writes the records the local engine
    writes, keyed by id (Ray writes rows in its own order). A linear model scores each text on its own,
    so the two are equal to the bit (a transformer's scores move in the last bits with how texts are
    batched and padded)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from tests.helpers import run_cli

    texts = [f"free btc airdrop {i}, claim now" if i % 2 else f"see you at lunch {i}" for i in range(300)]
    texts[5] = "   "
    table = pa.table({"id": list(range(1000, 1300)), "text": texts, "lang": ["en"] * 300})
    pq.write_table(table, tmp_path / "posts.parquet", row_group_size=64)
    trained = train(
        compose_train(["data=janitr", "data.max_rows=600", "model=tfidf_logreg", "tracking=none"]),
        tmp_path / "run",
    )
    run = f"run={trained.run_dir}"
    common = ["tracking=none", "predict.chunk_size=50", "predict.keep_columns=[lang]"]
    local = run_cli(
        "predict", run, f"input={tmp_path / 'posts.parquet'}", f"output={tmp_path / 'local.parquet'}", *common
    )
    assert local.returncode == 0, local.stderr[-2000:]
    on_ray = run_cli(
        "predict",
        run,
        f"input={tmp_path / 'posts.parquet'}",
        f"output={tmp_path / 'ray.parquet'}",
        "engine=ray",
        "ray.workers=2",
        *common,
    )
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    assert "scored 299 texts" in on_ray.stderr and "1 reported" in on_ray.stderr
    expected = pq.read_table(tmp_path / "local.parquet").sort_by("id")
    got = ds.dataset(tmp_path / "ray.parquet", format="parquet").to_table().sort_by("id")
    assert got.schema == expected.schema and got.equals(expected)
    assert not (tmp_path / "ray.parquet.partial").exists()
