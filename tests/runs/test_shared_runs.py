"""A run someone else shared can neither run code, reach the network, read a secret nor write outside
itself; and a full disk, a bad argument, bad bytes or a closed pipe are one line, never a broken store.

Each attack is planted in a real finished run folder (a copy of one trained here). What would show
it worked -- a marker file, a request at a real HTTP server on 127.0.0.1, a file outside the run --
must never appear.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import compose_train, reseal, run_entry
from toxmod.data.schemes import MultiLabelScheme
from toxmod.errors import ConfigError, DamagedFileError, DataError
from toxmod.models import Opening, load_scorer
from toxmod.paths import project_root
from toxmod.runs import load_run
from toxmod.stages.train import TrainResult, train

SLICE = ["data=janitr", "data.max_rows=600", "tracking=none", "bootstrap=0", "model=tfidf_logreg"]
SLICE += ["model.max_features=5000"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(compose_train(SLICE), tmp_path_factory.mktemp("shared") / "run")


def shared_copy(run: TrainResult, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run.run_dir, tmp_path / "shared-run"))


def edit_config(run_dir: Path, change) -> None:  # noqa: ANN001
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    change(config)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    reseal(run_dir)


def python(
    code: str,
    *args: str,
    env: dict[str, str] | None = None,
    limit_bytes: int | None = None,
    stdin: bytes | None = None,
):  # noqa: ANN201
    """Run ``code`` in a new interpreter (from the checkout), optionally under a file-size limit;
    with ``stdin`` bytes, the output is bytes too."""

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=stdin is None,
        cwd=project_root(),
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
        preexec_fn=limit,
        timeout=300,
    )


def cli(module: str, *args: str, **options):  # noqa: ANN003, ANN201
    """``python -m toxmod.<module> args...`` in a new interpreter (``python``'s options)."""
    code = f"import sys; from toxmod.{module} import main; sys.argv[0] = 'toxmod-{module}'; main()"
    return python(code, *args, **options)


# -- 1. no code from a run's config, by any route ------------------------------------------------


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        ({"_target_": "toxmod.config.os.makedirs"}, "is not one of the classes toxmod's configs name"),
        ({"_target_": "toxmod.runs.record.shutil.copy2"}, "is not one of the classes toxmod's configs name"),
        ({"package": "planted_module"}, "is not a weights package toxmod's configs name"),
        ({"base_url": "http://127.0.0.1:9/v1?k=${oc.env:HOME}"}, "is an interpolation"),
    ],
)
def test_a_run_config_names_no_code_by_any_route(
    finished: TrainResult, tmp_path: Path, planted: dict, message: str
) -> None:
    run_dir = shared_copy(finished, tmp_path)
    marker = tmp_path / "code-ran"
    # a module planted where the interpreter looks first: importing it would create the marker
    (tmp_path / "planted_module.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).mkdir()\n")
    edit_config(run_dir, lambda c: c["model"].update({"extra": {**planted, "_args_": [str(marker)]}}))
    with pytest.raises(ConfigError, match=message):
        load_run(run_dir)
    if "package" in planted:  # a new interpreter whose import path holds the planted module
        result = cli("export", f"run={run_dir}", "tracking=none", env={"PYTHONPATH": str(tmp_path)})
    else:
        result = run_entry("export", f"run={run_dir}", "tracking=none")
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not marker.exists()


# -- 2. a run's files never choose where texts, keys or files go --------------------------------


class Recorder(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook
        Recorder.requests.append({"path": self.path, "headers": dict(self.headers)})
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def recording_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that records every request it gets."""
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def plant_llm_model(run_dir: Path, base_url: str, cache_dir: Path) -> None:
    """The run's model replaced by an LLM scored through ``base_url``, reading the victim's key."""
    from toxmod.models.llm import LLMScorer

    scorer = LLMScorer(
        backend="openai_compat",
        served_name="any",
        base_url=base_url,
        api_key_env="TOXMOD_VICTIM_KEY",
        cache_dir=str(cache_dir),
    )
    scorer.fit(["a text"], np.zeros((1, 2), dtype=int), MultiLabelScheme(["scam", "topic_crypto"]))
    shutil.rmtree(run_dir / "model")
    scorer.save(run_dir / "model")
    reseal(run_dir)


def test_a_shared_llm_run_sends_nothing_unless_the_user_names_its_server(
    finished: TrainResult, tmp_path: Path, recording_server: str
) -> None:
    run_dir = shared_copy(finished, tmp_path)
    outside = tmp_path / "senders-cache"
    plant_llm_model(run_dir, recording_server, outside)
    texts = tmp_path / "texts.txt"
    texts.write_text("claim your airdrop\nhello\n")
    victim = {"TOXMOD_VICTIM_KEY": "sk-victim-0123456789"}
    for module, args in (
        ("predict", [f"run={run_dir}", f"input={texts}", "tracking=none"]),
        ("evaluate", [f"run={run_dir}", "tracking=none", f"paths.output_dir={tmp_path / 'out'}"]),
    ):
        result = cli(module, *args, env=victim)
        assert result.returncode == 2, result.stderr
        assert f"pass model.base_url={recording_server}" in result.stderr
    assert Recorder.requests == [] and not outside.exists()

    # the user names the server: it is used, with the user's cache and no key unless the user names one
    opening = Opening(settings={"base_url": recording_server}, cache_dir=tmp_path / "mine")
    backend = load_scorer(run_dir / "model", opening=opening).backend
    assert backend.settings.base_url == recording_server and backend.settings.api_key_env is None
    assert backend.settings.cache_dir == str(tmp_path / "mine")
    with pytest.raises(ConfigError, match="thresholds were fitted on answers from"):
        load_scorer(run_dir / "model", opening=Opening(settings={"base_url": "http://127.0.0.1:1/v1"}))


def test_a_run_names_no_data_file_outside_its_folder_or_the_users(
    finished: TrainResult, tmp_path: Path
) -> None:
    run_dir = shared_copy(finished, tmp_path)
    data = Path(load_run(run_dir).dataset.path)
    elsewhere = tmp_path / "elsewhere" / data.name
    elsewhere.parent.mkdir()
    shutil.copy(data, elsewhere)
    edit_config(run_dir, lambda c: c["data"].update(path=str(elsewhere)))
    with pytest.raises(ConfigError, match=r"data.path=.* lies outside this run and your toxmod folders"):
        load_run(run_dir)
    assert load_run(run_dir, data_path=elsewhere).dataset.path == elsewhere.resolve()


# -- 3. secrets never reach disk or logs --------------------------------------------------------


class Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = f"invalid key {self.headers.get('Authorization')}".encode()
        self.send_response(401)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.mark.slow
def test_a_key_echoed_by_the_server_reaches_no_file_record_or_console(tmp_path: Path, store: dict) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    key = "sk-very-secret-4242"
    result = cli(
        "train",
        "model=llm/openai_compat",
        f"model.base_url={url}",
        "model.api_key_env=TOXMOD_KEY",
        "model.retries=0",
        "data=janitr",
        "data.max_rows=300",
        "split.sample={calib: 20, holdout: 20}",
        f"tracking.uri={store['uri']}",
        f"tracking.artifact_root={store['artifact_root']}",
        f"paths.output_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",  # the LLM's answer cache: never the checkout's
        "plots=false",
        "log_pyfunc=false",
        env={"TOXMOD_KEY": key},
    )
    server.shutdown()
    assert result.returncode != 0 and "HTTP 401 invalid key Bearer ***" in result.stderr
    failed = next((tmp_path / "out").glob("train/*/FAILED"))
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    recorded = [result.stdout, result.stderr, failed.read_text(), run.data.tags["failure_reason"]]
    assert run.info.status == "FAILED" and all(key not in text for text in recorded)
    assert "***" in failed.read_text()


# -- 4. a full disk never leaves a broken store -------------------------------------------------


@pytest.mark.slow
def test_a_store_created_on_a_full_disk_is_finished_by_the_next_start(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    code = "import sys; from toxmod.runs.store import open_client; open_client(sys.argv[1])"
    full = python(code, uri, limit_bytes=60_000)  # the schema needs about 1 MB: creation stops part-way
    assert full.returncode != 0 and sorted(p.name for p in tmp_path.iterdir()) == ["mlruns.db.lock"]
    # MLflow itself (or an older toxmod) building the store in place on a full disk leaves it half made
    mlflow_itself = (
        "import sys; from mlflow.tracking import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()"
    )
    assert python(mlflow_itself, uri, limit_bytes=60_000).returncode != 0
    assert (tmp_path / "mlruns.db").stat().st_size > 0
    again = python(code, uri)
    assert again.returncode == 0 and "was half created and held no runs; moved aside" in again.stdout
    with sqlite3.connect(tmp_path / "mlruns.db") as db:
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] >= 1


@pytest.mark.slow
def test_a_full_disk_during_a_run_is_one_line_and_no_finished_looking_run(
    tmp_path: Path, store: dict
) -> None:
    shutil.copy(store["uri"].removeprefix("sqlite:///"), tmp_path / "full.db")
    uri = f"sqlite:///{tmp_path / 'full.db'}"
    args = [*SLICE[:-2], "model=tfidf_xgboost", f"tracking.uri={uri}", f"paths.output_dir={tmp_path / 'out'}"]
    args = [a for a in args if a != "tracking=none"] + ["plots=false", "log_pyfunc=false"]
    result = cli("train", *args, limit_bytes=300_000)  # the booster files pass the limit
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and "no space left" in lines[0] or "is the disk full" in lines[0]
    run_dir = next((tmp_path / "out").glob("train/*"))
    assert not (run_dir / "holdout_eval.json").exists()


# -- 5. every file read from a cache or a run is listed with its hash ---------------------------


def test_an_unlisted_or_unlisted_required_file_in_a_teacher_cache_is_refused(tmp_path: Path) -> None:
    from toxmod.distillation.teacher import TeacherCache

    entry = TeacherCache(tmp_path / "entry", "k", {})
    entry.write(np.zeros((3, 2), dtype=np.float32), {"temperature": 1.0})
    assert entry.read()[0].shape == (3, 2)
    (entry.directory / "hidden.npy").write_bytes(b"planted")
    with pytest.raises(DamagedFileError, match=r"hidden.npy: not listed in .*manifest.json; refused"):
        entry.read()
    (entry.directory / "hidden.npy").unlink()
    manifest = json.loads(entry.manifest.read_text())
    del manifest["files"]["calibration.json"]
    entry.manifest.write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="calibration.json: not listed"):
        entry.read()


def test_an_unlisted_or_changed_file_in_a_run_is_refused(finished: TrainResult, tmp_path: Path) -> None:
    run_dir = shared_copy(finished, tmp_path)
    (run_dir / "model" / "extra.json").write_text("{}")
    with pytest.raises(DamagedFileError, match=r"model/extra.json: not listed in .*manifest.json"):
        load_run(run_dir)
    (run_dir / "model" / "extra.json").unlink()
    (run_dir / "thresholds.json").write_text(
        (run_dir / "thresholds.json").read_text().replace("0.", "0.0", 1)
    )
    with pytest.raises(DamagedFileError, match="thresholds.json: changed since it was written"):
        load_run(run_dir)


# -- 6. ids and names are checked where they enter ----------------------------------------------


def test_an_id_with_a_newline_is_one_line_before_training(tmp_path: Path) -> None:
    data = tmp_path / "posts.csv"
    rows = [f"{i},text number {i} {'spam' if i % 3 else ''},{int(i % 3 == 0)}" for i in range(60)]
    data.write_text("id,text,label\n" + "\n".join(rows) + '\n"bad\nid",another text,1\n')
    cfg = compose_train(
        [
            "data=csv",
            f"data.path={data}",
            "data.id_column=id",
            "data.label_columns=[label]",
            "split=stratified",
            "tracking=none",
        ]
    )
    with pytest.raises(DataError, match="IDs that are empty or hold control characters"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("module", "override", "message"),
    [
        ("train", "run_name='a\tb'", "holds the control character"),
        ("select", "alias=latest", "an alias is letters, digits"),
        ("select", "model_name=a/b", "a registered model name has no"),
        ("train", "model.C=abc", "model.C='abc': expected a number"),
        ("train", "seed=abc", "seed='abc': expected an integer"),
        ("train", "data.max_rows=-5", "data.max_rows=-5: expected a positive integer"),
        ("train", "trainer.max_steps=-3", "trainer.max_steps=-3: expected an integer >= -1"),
        ("train", "bootstrap=many", "bootstrap='many': expected an integer"),
        ("predict", "predict.batch_size=abc", "predict.batch_size='abc': expected an integer"),
    ],
)
def test_a_wrong_argument_is_one_line_and_exit_2_before_any_work(
    tmp_path: Path, module: str, override: str, message: str
) -> None:
    extra = {"train": ["model=tfidf_logreg"], "select": [], "predict": ["run=x", "input=-"]}[module]
    result = run_entry(module, *extra, override, f"paths.root={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip() == f"error: {result.stderr.strip()[7:]}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written: no store, no run folder


# -- 8. predict's input and output edges ---------------------------------------------------------


@pytest.mark.slow
def test_invalid_utf8_is_one_line_naming_the_byte_and_a_closed_pipe_is_quiet(
    finished: TrainResult, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text\n" + b"\xff\xfe broken\n")
    result = cli("predict", f"run={finished.run_dir}", f"input={bad}", "tracking=none")
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"error: {bad}: invalid UTF-8 at byte 10: invalid start byte"
    )
    piped = cli("predict", f"run={finished.run_dir}", "input=-", "tracking=none", stdin=b"ok\n\xc3(\n")
    assert piped.returncode == 2 and b"stdin: invalid UTF-8 at byte 3 (line 2)" in piped.stderr
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"text {i} free airdrop" for i in range(20_000)) + "\n")
    command = (
        f"{sys.executable} -m toxmod.predict run={finished.run_dir} input={many} tracking=none "
        "predict.chunk_size=64 | head -1"
    )
    shell = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=project_root()
    )
    assert (
        json.loads(shell.stdout)["id"] == 1
        and "Traceback" not in shell.stderr
        and "Broken" not in shell.stderr
    )


# -- 9. housekeeping never follows a link out ----------------------------------------------------


def test_gc_and_resume_never_write_through_a_link_out_of_the_run(tmp_path: Path, store: dict) -> None:
    from toxmod.runs.claim import claim
    from toxmod.runs.gc import collect
    from toxmod.runs.record import RunDir, reopen
    from toxmod.runs.store import RunStore, open_client

    run_dir = tmp_path / "run"
    claim(RunDir(run_dir), resuming=False)  # a folder toxmod made for the run
    outside = tmp_path / "outside" / "written"
    (run_dir / "FAILED").symlink_to(outside)  # dangling: a write would create the outside file
    client = open_client(store["uri"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    tags = {"run_dir": str(run_dir), "process.host": socket.gethostname(), "process.pid": dead.stdout.strip()}
    experiment = client.create_experiment("links")
    run = client.create_run(experiment, tags=tags)
    collected = collect(RunStore(store["uri"]))
    assert collected.failed == [run.info.run_id] and collected.refused and not outside.parent.exists()
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    with pytest.raises(DamagedFileError, match="a link to .*outside"):
        reopen(RunDir(run_dir))
    assert not outside.parent.exists()
