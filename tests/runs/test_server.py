"""A shared MLflow server (``tracking=server``): a real ``mlflow server`` on 127.0.0.1 with a SQLite
backend and served artifacts; trainings in parallel processes, select and load through HTTP, and
the one line a user gets when no server answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import JANITR_SLICE, TINY_STUDENT, run_cli, run_entry

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``mlflow server`` on a free port of 127.0.0.1: SQLite backend, artifacts served from a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}"]
        command += ["--serve-artifacts", "--artifacts-destination", str(self.folder / "server-artifacts")]
        # its own session: stopping it stops its workers too
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {self.process.stderr}") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    running = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield running.url
    finally:
        running.stop()


def test_runs_are_recorded_on_and_read_back_from_a_tracking_server(server: str, tmp_path: Path) -> None:
    tracking = ["tracking=server", f"tracking.uri={server}"]
    overrides = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0", *tracking]
    trained = run_entry("train", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    run_id = trained.stdout.split("re-evaluate: python -m toxmod.evaluate run=")[1].split()[0]
    # Opened by run id: its files come from the server's artifact store.
    evaluated = run_entry("evaluate", f"run={run_id}", *tracking, f"paths.output_dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0 and "reproduced: max |difference|" in evaluated.stdout, evaluated.stderr
    shown = run_entry("compare", *tracking, "format=csv")
    assert shown.returncode == 0 and run_id[:8] in shown.stdout


def test_four_trainings_at_once_then_select_and_load_the_champion_over_http(
    server: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    import toxmod

    tracking = ["tracking=server", f"tracking.uri={server}", "tracking.experiment=parallel"]
    base = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0", "log_pyfunc=true"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "toxmod.train", *base, *tracking, f"model.C={c}"]
            + [f"hydra.run.dir={tmp_path / f'run{c}'}", "plots=false", "latency.batch64_texts=0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in (1, 2, 4, 8)
    ]
    errors = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [e[-1500:] for e in errors]
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("parallel")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}  # nothing lost
    for run in runs:  # every run's files are on the server, not only on this disk
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"model", "thresholds.json", "holdout_eval.json", "metrics.json"} <= names, names

    chosen = run_entry("select", *tracking, "experiments=parallel", "model_name=parallel-champion")
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    model = client.get_model_version_by_alias("parallel-champion", "champion")
    predictor = toxmod.load(
        "models:/parallel-champion@champion", tracking_uri=server, cache_dir=tmp_path / "dl"
    )
    record = predictor.predict("free crypto airdrop, send btc now")
    assert set(record["scores"]) == {"scam", "topic_crypto"} and model.run_id in str(predictor.run_dir)


def test_a_server_that_does_not_answer_is_one_line_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    trained = run_entry(
        "train", *JANITR_SLICE, "model=tfidf_logreg", "tracking=server", f"tracking.uri={url}"
    )
    assert trained.returncode == 2 and time.monotonic() - started < 60  # no retry storm
    lines = [line for line in trained.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and url in lines[0] and "no MLflow tracking server answers" in lines[0]
    assert "Traceback" not in trained.stderr


def test_a_run_that_loses_the_server_fails_in_its_folder_and_resumes_when_it_is_back(tmp_path: Path) -> None:
    """The server stops mid-fit: the run ends with one line (exit 1), FAILED in its folder with its
    checkpoints; restarted on the same store, ``resume=<run dir>`` finishes the same MLflow run."""
    from mlflow.tracking import MlflowClient

    server = Server(tmp_path).start()
    try:
        pid = server.process.pid if server.process else 0
        run_dir = tmp_path / "run"
        lost = run_cli(
            "train",
            *JANITR_SLICE,
            *TINY_STUDENT,
            "model.max_epochs=1",
            "checkpoint.every_n_steps=5",
            "tracking=server",
            f"tracking.uri={server.url}",
            "+callbacks.stop_server._target_=tests.callbacks.StopProcessAtStep",
            "+callbacks.stop_server.step=6",
            f"+callbacks.stop_server.pid={pid}",
            f"hydra.run.dir={run_dir}",
        )
        lines = [line for line in lost.stderr.splitlines() if line.strip()]
        assert lost.returncode == 1 and len(lines) == 1, lost.stderr[-2000:]
        assert f"tracking.uri={server.url} stopped answering" in lines[0] and f"resume={run_dir}" in lines[0]
        assert (run_dir / "FAILED").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
        server.stop()
        server.start()  # the same store, the same port
        resumed = run_cli("train", f"resume={run_dir}", "tracking=server", f"tracking.uri={server.url}")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        [run] = MlflowClient(server.url).search_runs(["1"])
        assert run.info.status == "FINISHED" and (run_dir / "holdout_eval.json").is_file()
    finally:
        server.stop()
