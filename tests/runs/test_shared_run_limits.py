"""A shared run or data file can neither delete, redirect nor exhaust anything, and what a person reads
from it is inert: reserved tags, run-folder ownership (gc, resume), resource limits, model-file
settings, the rule for code named by the opener's own conf/, and escaping at every sink."""

from __future__ import annotations

import gzip
import io
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from rich.table import Table

from tests.helpers import compose_train, run_entry, tracking_overrides
from toxmod.display import csv_cell, markdown_cell, printable
from toxmod.errors import ConfigError, DamagedFileError, DataError
from toxmod.files import read_json
from toxmod.limits import LimitedReader, LimitError, check_model_folder, configure, shipped
from toxmod.models import load_scorer
from toxmod.progress import InertConsole
from toxmod.runs.claim import MARKER, TOKEN_TAG, check_resume_target, claim, holding, in_use, owned
from toxmod.runs.gc import collect
from toxmod.runs.record import RunDir
from toxmod.runs.store import RunStore
from toxmod.runs.tracking import check_user_tags
from toxmod.stages.train import TrainResult, train
from toxmod.tables import rows_text, run_card
from toxmod.thresholds import Thresholds
from toxmod.trusted import check_targets

SLICE = ["data=janitr", "data.max_rows=600", "bootstrap=0"]
LOGREG = ["model=tfidf_logreg", "model.max_features=2000"]


@pytest.fixture(scope="module")
def logreg_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    root = tmp_path_factory.mktemp("shared")
    return train(compose_train([*SLICE, *LOGREG, "tracking=none"]), root / "run")


@pytest.fixture(autouse=True)
def shipped_limits() -> None:
    configure(shipped().__dict__)  # an earlier in-process command may have set others


# -- what toxmod writes itself -------------------------------------------------------------------


def test_a_config_cannot_set_a_tag_toxmod_writes(tmp_path: Path) -> None:
    assert check_user_tags({"owner": "me"}) == {"owner": "me"}
    for tag in ("run_dir", "run_token", "source_run_dir", "process.pid", "mlflow.note.content", "env.cpu"):
        with pytest.raises(ConfigError, match=rf"tags.{tag}: a tag toxmod writes itself"):
            check_user_tags({tag: "/elsewhere"})
    cfg = compose_train([*SLICE, *LOGREG, "tracking=none", "+tags={run_dir: /elsewhere}"])
    with pytest.raises(ConfigError, match="tags.run_dir"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the folder is made


def test_a_finished_run_is_marked_and_its_manifest_covers_the_marker_and_tracking(
    logreg_run: TrainResult,
) -> None:
    run = RunDir(logreg_run.run_dir)
    listed = read_json(run / RunDir.MANIFEST)["files"]
    assert MARKER in listed and RunDir.TRACKING in listed
    assert owned(run.path) and not in_use(run)


def test_training_refuses_a_folder_of_someone_elses_files(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("mine: true\n")
    with pytest.raises(ConfigError, match=r"holds files that are not a toxmod run's \(config.yaml\)"):
        claim(RunDir(folder), resuming=False)
    assert (folder / "config.yaml").read_text() == "mine: true\n" and not (folder / MARKER).exists()
    (tmp_path / "hydra-only" / ".hydra").mkdir(parents=True)  # Hydra writes this before toxmod starts
    assert len(claim(RunDir(tmp_path / "hydra-only"), resuming=False)) == 32


def _dead_run(client: MlflowClient, folder: Path, status: str, token: str | None = None) -> str:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    tags = {"run_dir": str(folder), "process.host": socket.gethostname(), "process.pid": dead.stdout.strip()}
    if token:
        tags[TOKEN_TAG] = token
    experiment = client.get_experiment_by_name("gc") or client.get_experiment(client.create_experiment("gc"))
    run = client.create_run(experiment.experiment_id, tags=tags)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_gc_deletes_and_marks_only_toxmod_run_folders_and_never_a_locked_one(
    tmp_path: Path, store: dict[str, str]
) -> None:
    client, outputs = MlflowClient(store["uri"]), tmp_path / "outputs"
    # a user's project folder with a FAILED file, named by a FAILED run's run_dir tag and under outputs
    project = outputs / "project"
    project.mkdir(parents=True)
    (project / "FAILED").write_text("my own file\n")
    (project / "notes.txt").write_text("keep me\n")
    _dead_run(client, project, "FAILED")
    # a folder with a FAILED file named by a dead RUNNING run: gc must not write into it either
    other = tmp_path / "other"
    other.mkdir()
    _dead_run(client, other, "RUNNING")
    # a real failed toxmod run, and one whose process holds its lock (a resume under way)
    failed, resuming = outputs / "failed", outputs / "resuming"
    tokens = {}
    for folder in (failed, resuming):
        tokens[folder] = claim(RunDir(folder), resuming=False)
        (folder / "FAILED").write_text("process died\n")
        _dead_run(client, folder, "FAILED", tokens[folder])
    # a toxmod-marked folder whose token is not the store run's
    impostor = outputs / "impostor"
    claim(RunDir(impostor), resuming=False)
    (impostor / "FAILED").write_text("x\n")
    _dead_run(client, impostor, "FAILED", "0" * 32)
    with holding(RunDir(resuming)):
        assert in_use(RunDir(resuming))
        result = collect(RunStore(store["uri"]), remove_failed=True, folders=[outputs])
    assert result.removed == [str(failed.absolute())]
    assert (project / "notes.txt").read_text() == "keep me\n" and resuming.is_dir() and impostor.is_dir()
    assert not (other / "FAILED").exists()


def test_a_resume_continues_only_the_tracking_run_of_its_own_folder(
    tmp_path: Path, store: dict[str, str]
) -> None:
    client = MlflowClient(store["uri"])
    original, copy = tmp_path / "original", tmp_path / "copy"
    token = claim(RunDir(original), resuming=False)
    run_id = _dead_run(client, original.resolve(), "FAILED", token)
    shutil.copytree(original, copy)
    runs = RunStore(store["uri"])
    check_resume_target(RunDir(original), run_id, runs)  # its own run: fine
    with pytest.raises(ConfigError, match=r"whose folder is .*original; a copied or edited run folder"):
        check_resume_target(RunDir(copy), run_id, runs)
    with pytest.raises(ConfigError, match="does not hold"):
        check_resume_target(RunDir(original), "0" * 32, runs)
    (original / MARKER).write_text(json.dumps({"toxmod_run": 1, "token": "f" * 32}))
    with pytest.raises(ConfigError, match="is not the marker of tracking run"):
        check_resume_target(RunDir(original), run_id, runs)


def test_a_train_resume_redirected_by_tracking_json_is_refused(tmp_path: Path, store: dict[str, str]) -> None:
    """``tracking.json`` of a checkpointed run edited to name another run: one line, nothing written."""
    client = MlflowClient(store["uri"])
    victim_dir = tmp_path / "victim"
    victim = _dead_run(client, victim_dir, "FINISHED", claim(RunDir(victim_dir), resuming=False))
    run_dir = tmp_path / "attacker"
    claim(RunDir(run_dir), resuming=False)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"not read")
    (run_dir / RunDir.TRACKING).write_text(json.dumps({"run_id": victim}))
    cfg = compose_train([*SLICE, *LOGREG, f"tracking.uri={store['uri']}", f"resume={run_dir}"])
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump({k: v for k, v in _plain(cfg).items() if k != "tracking"})
    )
    with pytest.raises(ConfigError, match=r"names tracking run .*whose folder is"):
        train(cfg, tmp_path / "new")
    assert client.get_run(victim).info.status == "FINISHED"
    assert client.get_run(victim).data.tags["run_dir"] == str(victim_dir)


def _plain(cfg: object) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


# -- model files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("input", "filename"), ("token_pattern", "(a+)+$"), ("analyzer", "char"), ("ngram_range", [1, 99])],
)
def test_a_vectorizer_toxmod_never_writes_is_refused(
    logreg_run: TrainResult, tmp_path: Path, key: str, value: object
) -> None:
    run_dir = Path(shutil.copytree(logreg_run.run_dir, tmp_path / "copy"))
    state_path = run_dir / "model" / "model.json"
    state = json.loads(state_path.read_text())
    state["featurizer"]["word"]["params"][key] = value
    state_path.write_text(json.dumps(state))
    with pytest.raises(
        DamagedFileError, match=rf"model.json: vectorizer parameter {key}=.* not one toxmod writes"
    ):
        load_scorer(run_dir / "model")


def test_a_transformer_folder_is_sized_before_it_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10_000)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 100_000_000, "hidden_size": 8}))
    with pytest.raises(LimitError, match=r"config.json: vocab_size=100,000,000, over limits.vocab_size"):
        check_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 50_000, "hidden_size": 8}))
    with pytest.raises(LimitError, match=r"is more than its weights hold \(10,000 bytes\)"):
        check_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 1_000, "hidden_size": 8}))
    (tmp_path / "tokenizer.json").write_bytes(b"{}" * 600)
    check_model_folder(tmp_path)
    configure({**shipped().__dict__, "tokenizer_bytes": 1_000})
    with pytest.raises(LimitError, match=r"tokenizer.json: 1,200 bytes, over limits.tokenizer_bytes=1,000"):
        check_model_folder(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"thresholds": {"scam": ' + "1" + "0" * 400 + "}}", "not a finite number"),
        ('{"thresholds": {"scam": ' + "1" * 5001 + "}}", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_numbers_and_nesting_beyond_reason_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text(content.replace("}}", '}, "method": "target_fpr", "fit_split": "calib"}'))
    with pytest.raises(DamagedFileError, match=message):
        Thresholds.load(path)


def test_a_label_name_with_a_control_character_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("text,sc\x07am\nhello,0\n")
    cfg = compose_train(["data=csv", f"data.path={data}", "data.label_columns=[scam]", "tracking=none"])
    cfg.data.label_columns = ["sc\x07am"]  # as a config file of the user's own can hold it
    with pytest.raises(DataError, match=r"label name 'sc\\x07am': holds '\\x07'"):
        train(cfg, tmp_path / "run")


# -- the rule for code the opener's own conf/ names ----------------------------------------------


def test_a_run_cannot_choose_the_arguments_of_code_only_the_openers_conf_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf" / "threshold"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("_target_: os.makedirs\nname: mine\nexist_ok: true\n")
    monkeypatch.setenv("TOXMOD_CONF", str(tmp_path / "conf"))
    ok = {"threshold": {"_target_": "os.makedirs", "exist_ok": True}}
    check_targets(ok, "run/config.yaml")  # the opener's own values
    for node in (
        {"_target_": "os.makedirs", "_args_": [str(tmp_path / "ran")]},
        {"_target_": "os.makedirs", "exist_ok": False},
        {"_target_": "os.makedirs", "mode": 7},
        {"_target_": "os.makedirs", "exist_ok": {"_target_": "os.getcwd"}},
    ):
        with pytest.raises(
            ConfigError, match=r"run/config.yaml: threshold passes .* code only your conf/ names"
        ):
            check_targets({"threshold": node}, "run/config.yaml")
    assert not (tmp_path / "ran").exists()


# -- inputs that would exhaust memory ------------------------------------------------------------


def test_the_limited_reader_stops_a_long_line_and_a_large_input() -> None:
    configure({**shipped().__dict__, "line_bytes": 100, "input_bytes": 1_000})
    assert list(LimitedReader(io.BytesIO(b"a\n" * 50), "ok")) == [b"a\n"] * 50
    with pytest.raises(LimitError, match=r"bomb: a line of more than limits.line_bytes=100 bytes"):
        list(LimitedReader(io.BytesIO(b"x" * 500), "bomb"))
    with pytest.raises(LimitError, match=r"big: more than limits.input_bytes=1,000 bytes"):
        LimitedReader(io.BytesIO(b"a\n" * 1000), "big").read()


def _memory_capped() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))  # 1 GiB of heap


def test_a_gzip_bomb_and_a_wide_header_stop_under_a_memory_cap(
    logreg_run: TrainResult, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.txt.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as handle:  # 2 GiB of one line, about 2 MB on disk
        for _ in range(128):
            handle.write(b"0" * (1 << 24))
    wide = tmp_path / "wide.csv"
    wide.write_text(
        ",".join(["text", *(f"c{i}" for i in range(300_000))]) + "\nhello" + ",1" * 300_000 + "\n"
    )
    for source, message in ((bomb, "limits.line_bytes"), (wide, "300,001 columns, over limits.columns")):
        start = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "toxmod.predict",
                f"run={logreg_run.run_dir}",
                f"input={source}",
                "tracking=none",
            ],
            capture_output=True,
            text=True,
            preexec_fn=_memory_capped,
            timeout=120,
        )
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr[-800:]
        assert time.perf_counter() - start < 60


def test_a_parquet_text_column_that_is_not_text_is_one_line(logreg_run: TrainResult, tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "ints.parquet"
    pd.DataFrame({"text": [1, 2, 3]}).to_parquet(path)
    result = run_entry("predict", f"run={logreg_run.run_dir}", f"input={path}", "tracking=none")
    assert result.returncode == 2 and "column 'text' holds int64, not text" in result.stderr


def test_sigterm_stops_predict_cleanly(logreg_run: TrainResult, tmp_path: Path) -> None:
    texts = tmp_path / "many.txt"
    texts.write_text("".join(f"claim your free airdrop number {i}\n" for i in range(300_000)))
    output = tmp_path / "scored.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toxmod.predict",
            f"run={logreg_run.run_dir}",
            f"input={texts}",
            f"output={output}",
        ]
        + ["tracking=none"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not Path(f"{output}.partial").exists() and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr.strip() == "error: terminated (SIGTERM)"
    assert not output.exists() and not Path(f"{output}.partial").exists()


# -- what a person reads -------------------------------------------------------------------------


def test_text_reaches_every_sink_inert() -> None:
    hostile = "\x1b[2J[bold red]ALL CHECKS PASSED[/] | <script>x</script> [x](http://e)"
    assert printable(hostile).startswith("\\x1b[2J[bold red]") and "\x1b" not in printable(hostile)
    cell = markdown_cell(hostile)
    assert "\\|" in cell and "<script>" not in cell and "](" not in cell and "\x1b" not in cell
    assert csv_cell('=HYPERLINK("http://e")') == '\'=HYPERLINK("http://e")' and csv_cell("-0.5") == "-0.5"
    assert csv_cell(0.25) == 0.25
    out = io.StringIO()
    console = InertConsole(file=out, width=200, color_system=None)
    table = Table(title="[/x]")
    table.add_column("run [/x]")
    table.add_row(hostile)
    console.print(table)
    console.print("[/x] name", "\x1b[2J")
    shown = out.getvalue()
    assert "[bold red]ALL CHECKS PASSED[/]" in shown and "\x1b" not in shown and "[/x] name \\x1b[2J" in shown
    markdown = rows_text(["run|x"], [["a|b"]], "markdown")
    assert markdown.splitlines()[0] == "| run\\|x |" and markdown.splitlines()[2] == "| a\\|b |"
    assert rows_text(["run"], [["=1+1"]], "csv").splitlines()[1] == "'=1+1"


def test_the_run_card_escapes_names(logreg_run: TrainResult) -> None:
    from toxmod.data.schemes import MultiLabelScheme

    thresholds = Thresholds.load(logreg_run.run_dir / "thresholds.json")
    card = run_card(
        "<img src=x onerror=alert(1)>",
        "d|x",
        MultiLabelScheme(["scam", "topic_crypto"]),
        thresholds,
        {},
        {},
        "ab`c",
        "cmd`x",
    )
    assert "<img" not in card and "d\\|x" in card and "`ab'c`" in card


def test_compare_shows_hostile_run_names_without_crashing(store: dict[str, str], tmp_path: Path) -> None:
    overrides = [
        *SLICE,
        *LOGREG,
        f"tracking.uri={store['uri']}",
        f"tracking.artifact_root={store['artifact_root']}",
    ]
    cfg = compose_train(overrides)
    cfg.run_name = "[/x] =HYPERLINK(1)|<b>"
    train(cfg, tmp_path / "run")
    shown = run_entry("compare", f"tracking.uri={store['uri']}")
    assert shown.returncode == 0 and "[/x] =HYPERLINK(1)" in shown.stdout
    csv_out = tmp_path / "runs.csv"
    assert run_entry("compare", f"tracking.uri={store['uri']}", f"output={csv_out}").returncode == 0
    assert "'[/x]" not in csv_out.read_text() and "[/x] =HYPERLINK" in csv_out.read_text()
    report = run_entry("report", *tracking_overrides(store), f"output={tmp_path / 'report'}")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "<b>" not in text and "\\|&lt;b>" in text
