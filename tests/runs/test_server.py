"""A shared MLflow server (``tracking.uri=http://...``): a real ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import JANITR_SLICE, run_entry

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    command += ["--artifacts-destination", str(tmp_path / "server-artifacts")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {process.stderr.read()}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_runs_are_recorded_on_and_read_back_from_a_tracking_server(server: str, tmp_path: Path) -> None:
    tracking = [f"tracking.uri={server}", "tracking.artifact_root=null"]
    overrides = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0", *tracking]
    trained = run_entry("train", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    run_id = trained.stdout.split("re-evaluate: python -m toxmod.evaluate run=")[1].split()[0]
    # Opened by run id: its files come from the server's artifact store.
    evaluated = run_entry("evaluate", f"run={run_id}", *tracking, f"paths.output_dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0 and "reproduced: max |difference|" in evaluated.stdout, evaluated.stderr
    shown = run_entry("compare", *tracking, "format=csv")
    assert shown.returncode == 0 and run_id[:8] in shown.stdout
