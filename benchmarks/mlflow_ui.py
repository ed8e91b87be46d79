"""The MLflow UI journey in a real headless browser: the runs list, a model run's page (its card and
plots), and the Models tab comparing logged models on the same holdout.

    apt-get install -y chromium
    python benchmarks/mlflow_ui.py --store sqlite:///mlruns.db --out docs/img

Starts ``mlflow ui`` on 127.0.0.1 (one worker, job execution off), renders each page in headless
Chromium (``--run-all-compositor-stages-before-draw`` and a virtual-time budget, so the single-page
app finishes drawing instead of showing spinners), saves a PNG per page and checks that each page's
DOM shows what it should (the run names, the run card, the logged models). Exits 1 if a check fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import arguments

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=20000",
    "--window-size=1600,1000",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_ui(store: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--workers", "1"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    # its own process group: `mlflow ui` starts uvicorn as a child, which must end with it (stop_ui)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    stop_ui(process)
    raise RuntimeError("mlflow ui did not start")


def stop_ui(process: subprocess.Popen) -> None:
    """End the UI's whole process group (the uvicorn child too), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def render(browser: str, url: str, png: Path, profile: Path) -> str:
    """Save a screenshot of ``url`` and return its rendered DOM."""
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    subprocess.run([browser, *flags, f"--screenshot={png}", url], capture_output=True, timeout=180)
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    return dom.stdout


def main() -> None:
    parser = arguments(__doc__)  # screenshots only: no JSON record
    parser.add_argument("--store", required=True, help="the tracking store, e.g. sqlite:///mlruns.db")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.store)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`toxmod.kind` = 'model'"
    )
    if not runs:
        raise SystemExit(f"no model runs in {args.store}: train one first")
    run = runs[0]
    experiment = run.info.experiment_id
    port = free_port()
    server = start_ui(args.store, port)
    args.out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}/#/experiments/{experiment}"
    pages = {
        "mlflow_runs.png": (f"{base}/runs", [run.info.run_name]),
        "mlflow_run.png": (f"{base}/runs/{run.info.run_id}", ["holdout recall", run.info.run_name]),
        "mlflow_models.png": (f"{base}/models", [f"{run.data.tags['model']}-{run.data.tags['dataset']}"]),
    }
    failed = []
    try:
        profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"toxmod-chromium-{port}"
        for name, (url, wanted) in pages.items():
            dom = render(args.browser, url, args.out / name, profile)
            missing = [text for text in wanted if text not in dom]
            status = "ok" if not missing else f"MISSING {missing}"
            print(f"{name:<20} {url}  {status}")
            if missing:
                failed.append(name)
        shutil.rmtree(profile, ignore_errors=True)
    finally:
        stop_ui(server)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
