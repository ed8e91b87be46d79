"""The run record under faults: degenerate data, concurrent starts, sweeps started together, dead
processes, and thresholds on shifted data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import janitr_frame, run_entry, stored_runs, tracking_overrides
from toxmod.runs import MlflowTracker
from toxmod.runs.claim import TOKEN_TAG, claim
from toxmod.runs.gc import PROCESS_DIED, collect, process_identity
from toxmod.runs.record import RunDir, stage_marker

LOGREG = ["model=tfidf_logreg", "model.max_features=2000", "bootstrap=0"]
CSV = ["data=csv", "data.text_column=text", "data.label_columns=[scam,topic_crypto]", "data.id_column=id"]


def janitr_csv(tmp_path: Path, rows: int, edit=lambda f: f) -> Path:  # noqa: ANN001
    frame = janitr_frame()
    frame = edit(frame[frame.split != "none"].sample(n=rows, random_state=0).copy())
    path = tmp_path / "slice.csv"
    frame.to_csv(path, index=False)
    return path


def train_on_upstream_split(path: Path, run_dir: Path):  # noqa: ANN201 - EntryResult
    """``python -m toxmod.train data=janitr`` on an edited janitr file, keeping its own split column."""
    return run_entry(
        "train", "data=janitr", f"data.path={path}", *LOGREG, "tracking=none", f"hydra.run.dir={run_dir}"
    )


@pytest.mark.parametrize(
    ("rows", "edit", "expected"),
    [
        (1, lambda f: f, "(train/valid/calib/holdout = 1/0/0/0 rows): the calib split is empty; the holdout"),
        (300, lambda f: f.assign(scam="0"), "train (179 rows) has no positive rows of scam"),
        (300, lambda f: f.assign(topic_crypto="1"), "train (179 rows) has no negative rows of topic_crypto"),
        (4, lambda f: f, "rows): the calib split is empty"),
    ],
    ids=["one_row", "all_negative", "all_positive", "four_rows"],
)
def test_degenerate_data_is_refused_in_one_line(tmp_path: Path, rows: int, edit, expected: str) -> None:  # noqa: ANN001
    overrides = [*CSV, f"data.path={janitr_csv(tmp_path, rows, edit)}", "split=stratified", *LOGREG]
    result = run_entry("train", *overrides, "tracking=none", f"hydra.run.dir={tmp_path / 'run'}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_a_label_without_holdout_positives_reports_its_recall_as_undefined(tmp_path: Path) -> None:
    def no_holdout_scam(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[~((frame.split == "holdout") & (frame.scam == "1"))]

    result = train_on_upstream_split(janitr_csv(tmp_path, 900, no_holdout_scam), tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "warning: holdout has no positives of scam: its recall is undefined (null)" in result.stdout
    record = json.loads((tmp_path / "run" / "holdout_eval.json").read_text())
    assert record["metrics"]["scam/recall"] is None and record["metrics"]["scam/support"] == 0.0
    assert record["metrics"]["topic_crypto/recall"] is not None


def test_too_few_calibration_negatives_say_the_remedy_in_numbers_and_are_recorded(
    tmp_path: Path, store: dict[str, str]
) -> None:
    from tests.helpers import tracking_overrides
    from toxmod import load

    path = janitr_csv(tmp_path, 300)
    overrides = [*CSV, f"data.path={path}", "split=stratified", *LOGREG, *tracking_overrides(store)]
    result = run_entry("train", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    # 300 rows -> 15 calib rows with 11 negatives of scam: FPR steps of 1/11, far coarser than 0.02.
    assert "calib has 11 negatives of scam in 15 rows: its FPR moves in steps of 0.0909" in result.stdout
    assert "needs >= 50 negatives, about 69 rows at this negative rate" in result.stdout
    assert "or a target >= 0.0909, the smallest these rows resolve" in result.stdout
    (run,) = stored_runs(store)
    assert run.data.tags["calib_too_small"].startswith("scam: 11 negatives, needs 50")
    compared = run_entry("compare", *tracking_overrides(store), "format=csv")
    assert "calib too small: scam: 11 negatives, needs 50" in compared.stdout
    # what predict says is exactly the recorded thresholds applied to the scores it prints
    thresholds = json.loads((tmp_path / "run" / "thresholds.json").read_text())["thresholds"]
    for record in load(tmp_path / "run").predict(["free airdrop claim now", "good morning all", "btc 2x"]):
        for name, cut in thresholds.items():
            assert record["decisions"][name] == (record["scores"][name] >= cut)


def test_shifted_calibration_data_is_flagged(tmp_path: Path) -> None:
    def enrich_calib(frame: pd.DataFrame) -> pd.DataFrame:  # calib keeps 1 in 5 of its non-scam posts
        return frame[~((frame.split == "calib") & (frame.scam == "0") & (np.arange(len(frame)) % 5 != 0))]

    result = train_on_upstream_split(janitr_csv(tmp_path, 1200, enrich_calib), tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "warning: thresholds may not transfer: scam is" in result.stdout


def test_the_jigsaw_calibration_split_is_drawn_from_the_kaggle_test_rows() -> None:
    from tests.helpers import compose_train
    from toxmod.config import spec_of
    from toxmod.data import build_dataset
    from toxmod.spec import DataSpec, SplitSpec
    from toxmod.splits import prepare_split

    cfg = compose_train(["data=jigsaw"])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    test_rows = set(np.flatnonzero(dataset.given_splits == "holdout"))
    calib, holdout = set(split.rows["calib"]), set(split.rows["holdout"])
    assert calib | holdout == test_rows and not calib & holdout
    assert len(calib) == 1314 and len(holdout) == 3067
    rates = [dataset.targets[sorted(rows), 0].mean() for rows in (calib, holdout)]  # toxic
    assert abs(rates[0] - rates[1]) < 0.01


# Each process opens the new store and records one run, as the train stage does, without training.
FIRST_START = """
import sys
from toxmod.runs import MlflowTracker
tracker = MlflowTracker(sys.argv[1], sys.argv[2], experiment="janitr")
with tracker.run(run_name=sys.argv[3], tags={"split_sha256": "s"}):
    tracker.log_metrics({"holdout/macro_f1": 0.5})
"""


@pytest.mark.slow
def test_three_runs_starting_together_on_a_new_store_all_finish(tmp_path: Path) -> None:
    store = {"uri": f"sqlite:///{tmp_path / 'new.db'}", "artifact_root": str(tmp_path / "artifacts")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START, store["uri"], store["artifact_root"], f"run{i}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    runs = stored_runs(store)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_second_get_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as real_datetime

    import hydra.core.utils

    class FrozenClock(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206
            return cls(2026, 1, 1, 12, 0, 0)

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)  # Hydra's ${now:} reads it
    sweep = ["-m", "data=janitr", "data.max_rows=300", *LOGREG, "model.C=1,2", "tracking=none"]
    places = [f"paths.output_dir={tmp_path / 'outputs'}", f"paths.multirun_dir={tmp_path / 'multirun'}"]
    for _ in range(2):
        assert run_entry("train", *sweep, *places).returncode == 0
    folders = sorted((tmp_path / "multirun" / "train").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("2026-01-01_12-00-00-") for f in folders)
    assert all(sorted(p.name for p in f.iterdir() if p.is_dir()) == ["0", "1"] for f in folders)


def test_runs_a_dead_process_left_running_are_settled(tmp_path: Path, store: dict[str, str]) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    tracker = MlflowTracker(store["uri"], store["artifact_root"])
    client = tracker.client
    experiment = tracker._experiment_id()

    def running(tags: dict[str, str], run_dir: Path) -> str:
        token = claim(RunDir(run_dir), resuming=False)  # a folder toxmod made for the run
        tags = {**tags, "run_dir": str(run_dir), TOKEN_TAG: token}
        return client.create_run(experiment, tags=tags).info.run_id

    gone = running(
        {**process_identity(), "process.pid": dead.stdout.strip(), "process.start": ""}, tmp_path / "a"
    )
    alive = running(process_identity(), tmp_path / "b")
    elsewhere = running({**process_identity(), "process.host": "another-host"}, tmp_path / "c")
    finished_dir = tmp_path / "d"
    finished = running(process_identity(), finished_dir)
    stage_marker(RunDir(finished_dir), RunDir.HOLDOUT_EVAL, {"metrics": {}})
    client.set_terminated(finished, "FINISHED")  # the process died between FINISHED and the rename

    result = collect(tracker.store())
    assert result.failed == [gone] and result.completed == [finished] and result.unknown.count(elsewhere) == 1
    statuses = {run.info.run_id: run.info.status for run in stored_runs(store)}
    assert statuses == {gone: "FAILED", alive: "RUNNING", elsewhere: "RUNNING", finished: "FINISHED"}
    assert client.get_run(gone).data.tags["failure_reason"] == PROCESS_DIED
    assert (tmp_path / "a" / "FAILED").read_text().startswith(PROCESS_DIED)
    assert RunDir(finished_dir).finished and not (finished_dir / RunDir.PENDING).exists()

    shown = run_entry("runs", "gc", *tracking_overrides(store))
    assert shown.returncode == 0 and "RUNNING run(s) of other hosts left as they are" in shown.stdout


def test_a_rare_labels_sampling_noise_is_not_called_a_shift() -> None:
    from toxmod.splits.checks import _shifted

    assert not _shifted(3, 1314, 12, 3067)  # jigsaw threat: 0.2% vs 0.4%, a handful of rows
    assert _shifted(100, 208, 50, 220)  # 48% vs 23% of a few hundred rows
    assert not _shifted(40, 200, 25, 200)  # 20% vs 12.5%: under 2x
