"""Inject faults into real runs and report what the run record looks like afterwards.

    python benchmarks/faults.py                       # this checkout
    python benchmarks/faults.py --code /path/to/old   # another checkout of toxmod (before/after tables)

Every case runs the real command line (``python -m toxmod.train`` / ``evaluate`` / ``runs gc``) in a
fresh temporary folder with its own SQLite MLflow store, on slices of the janitr data:

- kill -9 at six points of a TF-IDF run (the process kills itself from a hook: an MLflow store call,
  the model fit, or a file opened for writing); a run is *consistent* when its marker
  (``holdout_eval.json``) exists exactly when MLflow says FINISHED, after ``runs gc`` where the code
  has it;
- three first starts at once on a new store; two sweeps started in the same (frozen) second;
- damaged files in a finished run, opened with ``evaluate``: one line and exit 2 is the goal;
- malicious runs (a pickle model, a level rule, a ``_target_``): the planted marker must not appear;
- degenerate data (tiny, one-class, no positives where they are needed);
- shared runs and careless input: code named through toxmod's own modules, a shared LLM run's server
  and key variable, a key echoed by a server, a store created on a full disk, an unlisted file in a
  teacher cache or a run, a newline in an ID, wrong arguments, invalid UTF-8 and a closed pipe for
  predict, a link out of a run folder, an export stopped by its parity gate, the pyfunc model's load.

Writes ``benchmarks/results/faults-<label>.json`` and prints one table row per case.
"""

from __future__ import annotations

import http.server
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TOXMOD_DATASETS", ROOT.parent / "shared" / "datasets"))
PROGRAMS = Path(__file__).resolve().parent / "fault_programs"  # what a case's child process runs
OPEN_STORE = PROGRAMS / "open_store.py"
LOGREG = ["model=tfidf_logreg", "model.max_features=2000", "bootstrap=0"]
SLICE = ["data=janitr", "data.max_rows=600"]
CSV = ["data=csv", "data.text_column=text", "data.label_columns=[scam,topic_crypto]", "data.id_column=id"]

# Run by the child process before the entry point: it kills itself at FAULT_POINT.
KILL_HOOK = PROGRAMS / "kill_hook.py"

# Hydra's ${now:} frozen at one second, for the same-second sweep case.
FROZEN_CLOCK = PROGRAMS / "frozen_clock.py"

GROUPS = ("kill", "concurrency", "damaged", "malicious", "degenerate", "shared", "trust3")
KILL_POINTS = [
    "run created",
    "model fitting",
    "model writing",
    "holdout metrics logging",
    "just before FINISHED",
    "just after FINISHED",
]


class Planted:
    """Unpickling this creates ``path``: a stand-in for whatever a crafted pickle could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.makedirs, (str(self.path),))


class Workspace:
    """One case's folder: its store, outputs and the code under test."""

    def __init__(self, root: Path, code: Path) -> None:
        self.root = root
        self.code = code
        self.db = root / "mlflow.db"
        root.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(self.code),
            "TOXMOD_DATASETS": str(DATASETS),
            "TOXMOD_ROOT": str(self.code),
        }

    def store_overrides(self) -> list[str]:
        return [
            f"tracking.uri=sqlite:///{self.db}",
            f"tracking.artifact_root={self.root / 'artifacts'}",
            f"paths.output_dir={self.root / 'outputs'}",
            f"paths.multirun_dir={self.root / 'multirun'}",
        ]

    def run(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def toxmod(self, module: str, *overrides: str) -> subprocess.CompletedProcess[str]:
        return self.run(["-m", f"toxmod.{module}", *overrides])

    def evaluate(self, run_dir: Path) -> subprocess.CompletedProcess[str]:
        """``evaluate run=<run_dir>`` with no store, its output in this case's folder."""
        return self.toxmod(
            "evaluate", f"run={run_dir}", "tracking=none", f"paths.output_dir={self.root / 'out'}"
        )

    def _column(self, query: str) -> list[str]:
        """One column of the store's rows (none while the store or its tables do not exist)."""
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as db:
            try:
                return [row[0] for row in db.execute(query)]
            except sqlite3.OperationalError:
                return []

    def kinds(self) -> list[str]:
        """The ``toxmod.kind`` tags of the store's runs (``model``, ``export``)."""
        return self._column("select value from tags where key = 'toxmod.kind'")

    def statuses(self) -> list[str]:
        return self._column("select status from runs")


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1][:110] if lines else ""


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """``exit 2, one line: <msg>`` / ``exit 1, traceback (N lines): <last line>``."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning" not in line.lower()]
    if result.returncode == 0:
        return "exit 0 (accepted)"
    shape = "one line" if len(lines) == 1 else f"traceback ({len(lines)} lines)"
    if "Traceback" not in result.stderr and len(lines) > 1:
        shape = f"{len(lines)} lines"
    return f"exit {result.returncode}, {shape}: {last_line(result)}"


# -- kill -9 -----------------------------------------------------------------------------------


def kill_case(ws: Workspace, point: str) -> dict:
    run_dir = ws.root / "run"
    overrides = [*SLICE, *LOGREG, *ws.store_overrides(), f"hydra.run.dir={run_dir}"]
    result = ws.run([str(KILL_HOOK), *overrides], env={"FAULT_POINT": point})
    killed = result.returncode == -9

    def state() -> tuple[str, bool]:
        statuses = ws.statuses()
        return (statuses[0] if statuses else "no run"), (run_dir / "holdout_eval.json").is_file()

    status, marker = state()
    opened = ws.toxmod("evaluate", f"run={run_dir}", *ws.store_overrides()).returncode == 0
    outcome = f"MLflow {status}, marker {'present' if marker else 'absent'}"
    outcome += f", evaluate {'opens' if opened else 'refuses'}"
    consistent = marker == (status == "FINISHED") and opened == marker
    has_gc = (ws.code / "toxmod" / "runs" / "gc.py").is_file()
    if has_gc:
        ws.toxmod("runs", "gc", *ws.store_overrides())
        status, marker = state()
        opened = ws.toxmod("evaluate", f"run={run_dir}", *ws.store_overrides()).returncode == 0
        outcome += f"; after gc: {status}, marker {'present' if marker else 'absent'}"
        consistent = marker == (status == "FINISHED") and opened == marker and status != "RUNNING"
    elif status == "RUNNING":
        consistent = False  # nothing will ever settle it
    return {"outcome": outcome, "ok": killed and consistent, "killed": killed}


# -- concurrency -------------------------------------------------------------------------------


def concurrent_starts(ws: Workspace) -> dict:
    commands = [
        [sys.executable, "-m", "toxmod.train", *SLICE[:1], "data.max_rows=300", *LOGREG, f"seed={seed}"]
        + ws.store_overrides()
        for seed in range(3)
    ]
    processes = [
        subprocess.Popen(
            c, cwd=ws.root, env=ws.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for c in commands
    ]
    errors = [p.communicate(timeout=600)[1] for p in processes]
    finished = ws.statuses().count("FINISHED")
    failures = sorted({e.strip().splitlines()[-1][:80] for p, e in zip(processes, errors) if p.returncode})
    outcome = f"{finished}/3 FINISHED" + (f"; {'; '.join(failures)}" if failures else "")
    return {"outcome": outcome, "ok": finished == 3}


def same_second_sweeps(ws: Workspace) -> dict:
    sweep = ["-m", *SLICE[:1], "data.max_rows=300", *LOGREG, "model.C=1,2", "tracking=none"]
    places = [f"paths.output_dir={ws.root / 'outputs'}", f"paths.multirun_dir={ws.root / 'multirun'}"]
    codes = [ws.run([str(FROZEN_CLOCK), *sweep, *places]).returncode for _ in range(2)]
    folders = sorted((ws.root / "multirun" / "train").iterdir()) if (ws.root / "multirun").exists() else []
    outcome = f"exit codes {codes}; {len(folders)} sweep folder(s) for 2 sweeps"
    return {"outcome": outcome, "ok": codes == [0, 0] and len(folders) == 2}


# -- a finished run to damage --------------------------------------------------------------------


def finished_run(ws: Workspace, model: list[str]) -> Path:
    run_dir = ws.root / "finished"
    result = ws.toxmod("train", *SLICE, *model, "tracking=none", f"hydra.run.dir={run_dir}")
    if result.returncode:
        raise SystemExit(f"could not train the run to damage:\n{result.stderr[-2000:]}")
    return run_dir


def model_file(run_dir: Path) -> Path:
    model = run_dir / "model"
    legacy = model / "model.joblib"
    return legacy if legacy.exists() else model / "model.npz"


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def reseal(run_dir: Path) -> None:
    """Rewrite a run's ``manifest.json`` after a change, as an attacker editing the manifest would:
    the check behind it must hold on its own. (Harmless for checkouts that write no manifest.)"""
    import hashlib

    skip = {"manifest.json", "tracking.json", "checkpoints", "FAILED", ".pending", "members", ".hydra"}
    files = {
        path.relative_to(run_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.relative_to(run_dir).parts[0] not in skip
    }
    (run_dir / "manifest.json").write_text(json.dumps({"files": files}, indent=2) + "\n")


def thresholds_of(data: dict) -> dict:
    return data.get("thresholds", data)


DAMAGE: dict[str, Callable[[Path], object]] = {
    "model file truncated": lambda r: model_file(r).write_bytes(model_file(r).read_bytes()[:100]),
    "model file empty": lambda r: model_file(r).write_bytes(b""),
    "model file missing": lambda r: model_file(r).unlink(),
    "scorer.json bad JSON": lambda r: (r / "model" / "scorer.json").write_text("{not json"),
    "scorer.json unknown kind": lambda r: edit_json(
        r / "model" / "scorer.json", lambda d: d.update(kind="svm")
    ),
    "scorer.json unknown parameter": lambda r: edit_json(
        r / "model" / "scorer.json", lambda d: d["params"].update(gamma=1)
    ),
    "thresholds.json bad JSON": lambda r: (r / "thresholds.json").write_text("[1, 2"),
    "thresholds.json non-numeric": lambda r: edit_json(
        r / "thresholds.json", lambda d: thresholds_of(d).update(scam="high")
    ),
    "thresholds.json missing label": lambda r: edit_json(
        r / "thresholds.json", lambda d: thresholds_of(d).pop("topic_crypto")
    ),
    "thresholds.json extra label": lambda r: edit_json(
        r / "thresholds.json", lambda d: thresholds_of(d).update(spam=0.5)
    ),
    "holdout_eval.json bad JSON": lambda r: (r / "holdout_eval.json").write_text("{"),
    "config.yaml bad YAML": lambda r: (r / "config.yaml").write_text("data: [unclosed\n  - x: {"),
}


def damaged_case(ws: Workspace, source: Path, case: str) -> dict:
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    DAMAGE[case](run_dir)
    result = ws.evaluate(run_dir)
    outcome = one_line_error(result)
    return {"outcome": outcome, "ok": result.returncode == 2 and outcome.startswith("exit 2, one line")}


def reordered_thresholds(ws: Workspace, source: Path) -> dict:
    """Thresholds written in another order must still be applied to the decisions they name."""
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    path = run_dir / "thresholds.json"
    data = json.loads(path.read_text())
    written = thresholds_of(data)
    swapped = dict(reversed(list(written.items())))
    written.clear()
    written.update(swapped)
    path.write_text(json.dumps(data))
    reseal(run_dir)
    result = ws.run([str(PROGRAMS / "applied_thresholds.py"), str(run_dir)])
    if result.returncode:
        return {"outcome": one_line_error(result), "ok": False}
    applied = json.loads(result.stdout.strip().splitlines()[-1])
    right = all(abs(applied[name] - float(value)) < 1e-12 for name, value in swapped.items())
    outcome = "applied by name" if right else f"applied by position: {applied} vs file {swapped}"
    return {"outcome": outcome, "ok": right}


# -- malicious runs --------------------------------------------------------------------------


def malicious_pickle(ws: Workspace, source: Path) -> dict:
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    marker = ws.root / "pickle-ran"
    for name in ("model.npz", "model.json"):
        (run_dir / "model" / name).unlink(missing_ok=True)
    (run_dir / "model" / "model.joblib").write_bytes(pickle.dumps(Planted(marker)))
    reseal(run_dir)
    result = ws.evaluate(run_dir)
    return malicious_outcome(result, marker)


def malicious_level_rule(ws: Workspace) -> dict:
    marker = ws.root / "rule-ran"
    rule = f"@pd.io.common.os.makedirs('{marker}')"
    overrides = ["data=jigsaw_levels", "data.max_rows=400", f"data.level_rules.severe={json.dumps(rule)}"]
    result = ws.toxmod("train", *overrides, *LOGREG, "tracking=none", f"hydra.run.dir={ws.root / 'run'}")
    return malicious_outcome(result, marker)


def malicious_target(ws: Workspace, source: Path) -> dict:
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    marker = ws.root / "target-ran"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"]["_target_"] = "os.makedirs"
    config["data"]["_args_"] = [str(marker)]
    config["model"]["optimizer"] = {"_target_": "os.makedirs", "_args_": [str(marker)]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    reseal(run_dir)
    result = ws.evaluate(run_dir)
    return malicious_outcome(result, marker)


def malicious_outcome(result: subprocess.CompletedProcess[str], marker: Path) -> dict:
    ran = marker.exists()
    outcome = "CODE RAN; " if ran else "refused, nothing ran; " if result.returncode else "nothing ran; "
    return {"outcome": outcome + one_line_error(result), "ok": not ran and result.returncode == 2}


# -- degenerate data -------------------------------------------------------------------------


def janitr_csv(ws: Workspace, rows: int, edit: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f) -> Path:
    frame = pd.read_csv(DATASETS / "janitr_crypto_scam" / "janitr.csv.gz", dtype=str, keep_default_na=False)
    frame = edit(frame[frame.split != "none"].sample(n=rows, random_state=0).copy())
    path = ws.root / "slice.csv"
    frame.to_csv(path, index=False)
    return path


def no_holdout_scam(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~((frame.split == "holdout") & (frame.scam == "1"))]


def enrich_calib(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~((frame.split == "calib") & (frame.scam == "0") & (np.arange(len(frame)) % 5 != 0))]


DEGENERATE: dict[str, tuple[int, Callable[[pd.DataFrame], pd.DataFrame], bool, str]] = {
    # name: (rows, edit, use the upstream split column, what a good outcome says)
    "1 row": (1, lambda f: f, False, "refuse"),
    "4 rows": (4, lambda f: f, False, "refuse"),
    "10 rows": (10, lambda f: f, False, "undefined recall"),  # trains; its 2 holdout rows have no scam
    "scam all 0": (300, lambda f: f.assign(scam="0"), False, "refuse"),
    "topic_crypto all 1": (300, lambda f: f.assign(topic_crypto="1"), False, "refuse"),
    "no holdout positives of scam": (900, no_holdout_scam, True, "undefined recall"),
    "15 calib rows (coarse FPR)": (300, lambda f: f, False, "moves in steps of"),
    "calib 4x richer in scam": (1200, enrich_calib, True, "may not transfer"),
}


def degenerate_case(ws: Workspace, name: str) -> dict:
    rows, edit, upstream_split, goal = DEGENERATE[name]
    path = janitr_csv(ws, rows, edit)
    data = (
        ["data=janitr", f"data.path={path}"]
        if upstream_split
        else [*CSV, f"data.path={path}", "split=stratified"]
    )
    run_dir = ws.root / "run"
    result = ws.toxmod("train", *data, *LOGREG, "tracking=none", f"hydra.run.dir={run_dir}")
    if goal == "refuse":
        outcome = one_line_error(result)
        if result.returncode == 0:
            recall = json.loads((run_dir / "holdout_eval.json").read_text())["metrics"].get("scam/recall")
            outcome += f", holdout scam recall {recall}"
        return {"outcome": outcome, "ok": result.returncode == 2 and "one line" in outcome}
    if result.returncode:
        return {"outcome": one_line_error(result), "ok": False}
    metrics = json.loads((run_dir / "holdout_eval.json").read_text())["metrics"]
    warnings = [
        line.strip()[:100] for line in result.stdout.splitlines() if line.strip().startswith("warning")
    ]
    if goal == "undefined recall":
        recall = metrics.get("scam/recall")
        return {"outcome": f"finished; holdout scam recall = {recall}", "ok": recall is None}
    found = [w for w in warnings if goal in w]
    return {"outcome": f"finished; {found[0] if found else 'no warning'}", "ok": bool(found)}


# -- shared runs and careless input ------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records every request; answers 401 with the Authorization header in its text (a server that
    echoes the key back)."""

    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        _Recorder.seen.append(self.path)
        self.send_response(401)
        self.end_headers()
        self.wfile.write(f"invalid key {self.headers.get('Authorization')}".encode())

    def log_message(self, *args: object) -> None:
        return


def _server() -> tuple[http.server.ThreadingHTTPServer, str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def _plant_config(ws: Workspace, source: Path, extra: dict) -> tuple[Path, Path]:
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    marker = ws.root / "code-ran"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["model"]["extra"] = {**extra, "_args_": [str(marker)]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    reseal(run_dir)
    return run_dir, marker


def target_through_toxmod(ws: Workspace, source: Path) -> dict:
    run_dir, marker = _plant_config(ws, source, {"_target_": "toxmod.config.os.makedirs"})
    result = ws.toxmod("export", f"run={run_dir}", "tracking=none", f"paths.output_dir={ws.root / 'out'}")
    return malicious_outcome(result, marker)


def planted_module(ws: Workspace, source: Path) -> dict:
    run_dir, marker = _plant_config(ws, source, {"package": "planted_module"})
    (ws.root / "planted_module.py").write_text(f"import os; os.makedirs({str(marker)!r})\n")
    result = ws.run(
        ["-m", "toxmod.evaluate", f"run={run_dir}", "tracking=none", f"paths.output_dir={ws.root / 'out'}"],
        env={"PYTHONPATH": f"{ws.root}{os.pathsep}{ws.code}"},
    )
    return malicious_outcome(result, marker)


LLM_RUN = PROGRAMS / "llm_run.py"


def shared_llm_server(ws: Workspace, source: Path) -> dict:
    """A shared run whose model is an LLM scored through the sender's server with the victim's key."""
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    server, url = _server()
    cache = ws.root / "senders-cache"
    planted = ws.run([str(LLM_RUN), str(run_dir), url, str(cache)])
    if planted.returncode:
        return {"outcome": "could not plant: " + last_line(planted), "ok": False}
    reseal(run_dir)
    texts = ws.root / "texts.txt"
    texts.write_text("claim your airdrop\n")
    result = ws.run(
        ["-m", "toxmod.predict", f"run={run_dir}", f"input={texts}", "tracking=none"],
        env={"VICTIM_KEY": "sk-victim-0123456789"},
    )
    server.shutdown()
    sent = len(_Recorder.seen)
    outcome = f"{sent} request(s) sent, sender's cache {'written' if cache.exists() else 'absent'}; "
    return {"outcome": outcome + one_line_error(result), "ok": sent == 0 and not cache.exists()}


def echoed_key(ws: Workspace) -> dict:
    server, url = _server()
    key = "sk-echoed-secret-4242"
    overrides = ["model=llm/openai_compat", f"model.base_url={url}", "model.api_key_env=TOXMOD_KEY"]
    overrides += ["model.retries=0", *SLICE, "split.sample={calib: 20, holdout: 20}", *ws.store_overrides()]
    result = ws.run(["-m", "toxmod.train", *overrides], env={"TOXMOD_KEY": key})
    server.shutdown()
    failed = [p.read_text() for p in (ws.root / "outputs").glob("train/*/FAILED")]
    with sqlite3.connect(ws.db) as db:
        reasons = [row[0] for row in db.execute("select value from tags where key='failure_reason'")]
    places = {"console": result.stdout + result.stderr, "FAILED": "".join(failed), "MLflow": "".join(reasons)}
    leaked = [name for name, text in places.items() if key in text]
    outcome = f"key in: {', '.join(leaked)}" if leaked else "key in no output, file or record"
    return {"outcome": f"{outcome}; {one_line_error(result)}", "ok": not leaked and bool(failed)}


def _size_limit(limit: int) -> Callable[[], None]:
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def full_disk_store(ws: Workspace) -> dict:
    """The store's first creation stops part-way (a file-size limit); the next start must work."""
    uri = f"sqlite:///{ws.db}"
    args = [sys.executable, str(OPEN_STORE), uri]
    subprocess.run(args, cwd=ws.root, env=ws.env, capture_output=True, preexec_fn=_size_limit(60_000))
    again = ws.run([str(OPEN_STORE), uri])
    outcome = "next start works" if again.returncode == 0 else f"next start fails: {last_line(again)}"
    return {"outcome": outcome, "ok": again.returncode == 0}


def full_disk_run(ws: Workspace) -> dict:
    """A training run on a (size-limited) full disk: one line, and no run that looks finished."""
    setup = ws.run([str(OPEN_STORE), f"sqlite:///{ws.db}"])
    if setup.returncode:
        return {"outcome": "store setup failed", "ok": False}
    args = [sys.executable, "-m", "toxmod.train", *SLICE, *LOGREG, *ws.store_overrides()]
    result = subprocess.run(
        args, cwd=ws.root, env=ws.env, capture_output=True, text=True, preexec_fn=_size_limit(300_000)
    )
    finished = list((ws.root / "outputs").glob("train/*/holdout_eval.json"))
    outcome = one_line_error(result) + ("; a run looks finished" if finished else "")
    return {"outcome": outcome, "ok": "one line" in outcome and not finished and result.returncode != 0}


CACHE_PROBE = PROGRAMS / "cache_probe.py"


def cache_unlisted_file(ws: Workspace) -> dict:
    result = ws.run([str(CACHE_PROBE), str(ws.root / "entry")])
    out = result.stdout.strip() or last_line(result)
    return {"outcome": out, "ok": out.startswith("refused")}


def run_unlisted_file(ws: Workspace, source: Path) -> dict:
    run_dir = Path(shutil.copytree(source, ws.root / "copy"))
    (run_dir / "model" / "extra.json").write_text("{}")
    result = ws.evaluate(run_dir)
    outcome = one_line_error(result)
    return {"outcome": outcome, "ok": result.returncode == 2 and "not listed" in outcome}


def newline_in_ids(ws: Workspace) -> dict:
    path = janitr_csv(ws, 300)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[5, "id"] = "bad\nid"
    frame.to_csv(path, index=False)
    result = ws.toxmod(
        "train",
        *CSV,
        f"data.path={path}",
        "split=stratified",
        *LOGREG,
        "tracking=none",
        f"hydra.run.dir={ws.root / 'run'}",
    )
    outcome = one_line_error(result)
    return {"outcome": outcome, "ok": result.returncode == 2 and "one line" in outcome}


WRONG_ARGUMENTS = {
    "model.C=abc": ("train", ["model=tfidf_logreg"]),
    "seed=abc": ("train", []),
    "data.max_rows=-5": ("train", []),
    "trainer.max_steps=-3": ("train", []),
    "predict.batch_size=abc": ("predict", ["run=x", "input=-"]),
    "bootstrap=many": ("train", ["model=tfidf_logreg", *SLICE]),
}


def wrong_argument(ws: Workspace, argument: str) -> dict:
    module, extra = WRONG_ARGUMENTS[argument]
    start = time.perf_counter()
    result = ws.toxmod(module, *extra, argument, *ws.store_overrides())
    seconds = time.perf_counter() - start
    outcome = f"{one_line_error(result)} after {seconds:.1f} s"
    nothing = not (ws.root / "outputs").exists() and not ws.db.exists()
    return {"outcome": outcome, "ok": result.returncode == 2 and "one line" in outcome and nothing}


def invalid_utf8(ws: Workspace, source: Path, stdin: bool) -> dict:
    bad = b"fine text\n\xff\xfe broken\n"
    if stdin:
        args = [sys.executable, "-m", "toxmod.predict", f"run={source}", "input=-", "tracking=none"]
        raw = subprocess.run(args, input=bad, cwd=ws.root, env=ws.env, capture_output=True)
        result = subprocess.CompletedProcess(args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
    else:
        path = ws.root / "bad.txt"
        path.write_bytes(bad)
        result = ws.toxmod("predict", f"run={source}", f"input={path}", "tracking=none")
    outcome = one_line_error(result)
    return {"outcome": outcome, "ok": result.returncode == 2 and "byte 10" in outcome}


def closed_pipe(ws: Workspace, source: Path) -> dict:
    texts = ws.root / "many.txt"
    texts.write_text("\n".join(f"text {i}" for i in range(20_000)) + "\n")
    command = f"{sys.executable} -m toxmod.predict run={source} input={texts} tracking=none | head -1"
    result = subprocess.run(["bash", "-c", command], cwd=ws.root, env=ws.env, capture_output=True, text=True)
    quiet = not result.stderr.strip() or "Traceback" not in result.stderr and "Broken" not in result.stderr
    outcome = "quiet" if quiet else f"stderr: {last_line(result)}"
    return {"outcome": outcome, "ok": quiet and result.stdout.count("\n") == 1}


GC_PROBE = PROGRAMS / "gc_probe.py"


def gc_link_out(ws: Workspace) -> dict:
    outside = ws.root / "outside" / "written"
    setup = ws.run([str(GC_PROBE), str(ws.root / "run"), str(outside), f"sqlite:///{ws.db}"])
    if setup.returncode:
        return {"outcome": "setup failed: " + last_line(setup), "ok": False}
    result = ws.toxmod("runs", "gc", *ws.store_overrides())
    written = outside.parent.exists()
    outcome = (
        "WROTE OUTSIDE THE RUN; " if written else "nothing written outside; "
    ) + f"exit {result.returncode}"
    return {"outcome": outcome, "ok": not written and result.returncode == 0}


def failed_export(ws: Workspace) -> dict:
    """An export stopped by its parity gate leaves no temporary folder or .partial file."""
    temp = ws.root / "tmp"
    temp.mkdir()
    student = ["model=student", "student=tiny", "model.max_length=48", "model.max_epochs=1", *SLICE]
    trained = ws.toxmod("train", *student, "bootstrap=0", *ws.store_overrides())
    if trained.returncode:
        return {"outcome": "training failed: " + last_line(trained), "ok": False}
    source = next((ws.root / "outputs").glob("train/*/holdout_eval.json")).parent
    result = ws.run(
        ["-m", "toxmod.export", f"run={source}", "export.max_abs_diff_fp32=0", *ws.store_overrides()],
        env={"TMPDIR": str(temp)},
    )
    # toxmod's own leftovers (torch's compile caches in TMPDIR are torch's)
    left = [p.name for p in temp.glob("toxmod-*")] + [p.name for p in ws.root.rglob("*.partial")]
    outcome = f"exit {result.returncode}; left behind: {left or 'nothing'}"
    return {"outcome": outcome, "ok": result.returncode == 1 and not left}


PYFUNC_PROBE = PROGRAMS / "pyfunc_probe.py"


def pyfunc_load(ws: Workspace) -> dict:
    trained = ws.toxmod("train", *SLICE, *LOGREG, "log_pyfunc=true", *ws.store_overrides())
    if trained.returncode:
        return {"outcome": "training failed: " + last_line(trained), "ok": False}
    result = ws.run([str(PYFUNC_PROBE), f"sqlite:///{ws.db}"])
    out = result.stdout.strip() or last_line(result)
    return {"outcome": out, "ok": "code_model" in out and "pickles []" in out}


# -- a shared run can neither delete, redirect nor exhaust anything; what people read is inert --------


def _copy(ws: Workspace, source: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(source, ws.root / name))


def _edit_config(run_dir: Path, change: Callable[[dict], None]) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    change(config)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    reseal(run_dir)


def _refused(result: subprocess.CompletedProcess[str], code: int = 2, extra: bool = True) -> dict:
    outcome = one_line_error(result)
    return {"outcome": outcome, "ok": extra and result.returncode == code and "one line" in outcome}


def tag_redirect(ws: Workspace, source: Path) -> dict:
    """A shared run's ``tags.run_dir`` names a victim folder: exporting it is refused, the folder stays."""
    victim = ws.root / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("keep\n")
    run_dir = _copy(ws, source)
    _edit_config(run_dir, lambda c: c.update(tags={"run_dir": str(victim)}))
    result = ws.toxmod("export", f"run={run_dir}", *ws.store_overrides())
    gc = ws.toxmod("runs", "gc", "remove_failed=true", *ws.store_overrides())
    kept = (victim / "data.txt").is_file() and not (victim / "FAILED").exists()
    return _refused(result, extra=kept and gc.returncode == 0) | {
        "outcome": one_line_error(result) + ("; victim intact" if kept else "; VICTIM CHANGED")
    }


def _store_run(ws: Workspace, name: str) -> tuple[Path, str]:
    run_dir = ws.root / name
    result = ws.toxmod("train", *SLICE, *LOGREG, *ws.store_overrides(), f"hydra.run.dir={run_dir}")
    if result.returncode:
        raise SystemExit(f"could not train {name}:\n{result.stderr[-2000:]}")
    return run_dir, json.loads((run_dir / "tracking.json").read_text())["run_id"]


def _with_checkpoint(run_dir: Path) -> None:
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (run_dir / "holdout_eval.json").unlink()  # a run that stopped, to be continued


def _tags_of(ws: Workspace, run_id: str) -> dict[str, str]:
    with sqlite3.connect(ws.db) as db:
        return dict(db.execute("select key, value from tags where run_uuid = ?", (run_id,)).fetchall())


def tracking_redirect(ws: Workspace) -> dict:
    """``tracking.json`` edited to name another run (the config's tracking block dropped): the resume
    is refused and the other run keeps its tags and files."""
    champion, champion_id = _store_run(ws, "champion")
    attacker, _ = _store_run(ws, "attacker")
    _with_checkpoint(attacker)
    edit_json(attacker / "tracking.json", lambda d: d.update(run_id=champion_id))
    _edit_config(attacker, lambda c: c.pop("tracking", None))
    before = _tags_of(ws, champion_id)
    result = ws.toxmod("train", f"resume={attacker}", *ws.store_overrides())
    same = _tags_of(ws, champion_id) == before and (champion / "holdout_eval.json").is_file()
    return _refused(result, extra=same)


def copied_resume(ws: Workspace) -> dict:
    """A run folder copied and resumed: refused, the original run still points at its own folder."""
    original, run_id = _store_run(ws, "original")
    copy = _copy(ws, original, "copy")
    _with_checkpoint(copy)
    result = ws.toxmod("train", f"resume={copy}", *ws.store_overrides())
    same = _tags_of(ws, run_id)["run_dir"] == str(original.resolve())
    return _refused(result, extra=same)


GC_FOREIGN = PROGRAMS / "gc_foreign.py"


def gc_foreign_folders(ws: Workspace) -> dict:
    """A user's folder with a ``FAILED`` file, named by a FAILED run's ``run_dir`` and under outputs:
    ``runs gc remove_failed=true`` leaves both."""
    project = ws.root / "outputs" / "project"
    ci = ws.root / "outputs" / "ci-results"
    for folder in (project, ci):
        folder.mkdir(parents=True)
        (folder / "FAILED").write_text("the user's own file\n")
        (folder / "notes.txt").write_text("keep\n")
    setup = ws.run([str(GC_FOREIGN), str(project), f"sqlite:///{ws.db}"])
    if setup.returncode:
        return {"outcome": "setup failed: " + last_line(setup), "ok": False}
    result = ws.toxmod("runs", "gc", "remove_failed=true", *ws.store_overrides())
    kept = all((folder / "notes.txt").is_file() for folder in (project, ci))
    return {"outcome": f"exit {result.returncode}; " + ("both kept" if kept else "DELETED"), "ok": kept}


def train_into_foreign_folder(ws: Workspace) -> dict:
    """Training into a folder of the user's own files: refused, their config.yaml unchanged."""
    folder = ws.root / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("mine: true\n")
    result = ws.toxmod("train", *SLICE, *LOGREG, "tracking=none", f"hydra.run.dir={folder}")
    kept = (folder / "config.yaml").read_text() == "mine: true\n"
    return _refused(result, extra=kept)


def export_outside_data(ws: Workspace, source: Path) -> dict:
    """A shared run's ``data.path`` outside the opener's folders: export refuses before reading it."""
    outside = ws.root / "elsewhere" / "secret.csv"
    outside.parent.mkdir()
    outside.write_text("password_column,other\nhunter2,x\n")
    run_dir = _copy(ws, source)
    _edit_config(run_dir, lambda c: c["data"].update(path=str(outside)))
    env = {**ws.env, "TOXMOD_ROOT": str(ws.root / "root"), "TOXMOD_DATASETS": str(ws.root / "none")}
    result = ws.run(["-m", "toxmod.export", f"run={run_dir}", "tracking=none"], env=env)
    return _refused(result, extra="password_column" not in result.stderr)


def _vectorizer_case(ws: Workspace, source: Path, key: str, value: object) -> dict:
    run_dir = _copy(ws, source)

    def change(state: dict) -> None:
        state["featurizer"]["word"]["params"][key] = value

    edit_json(run_dir / "model" / "model.json", change)
    reseal(run_dir)
    start = time.perf_counter()
    result = ws.evaluate(run_dir)
    quick = time.perf_counter() - start < 60
    return _refused(result, extra=quick)


BIG_VOCAB = PROGRAMS / "big_vocab.py"


def _memory_cap(limit: int = 1 << 30) -> Callable[[], None]:
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def big_vocabulary(ws: Workspace) -> dict:
    result = subprocess.run(
        [sys.executable, str(BIG_VOCAB), str(ws.root / "model")],
        cwd=ws.root,
        env=ws.env,
        capture_output=True,
        text=True,
        preexec_fn=_memory_cap(),
    )
    out = result.stdout.strip() or last_line(result)
    return {"outcome": out, "ok": out.startswith("refused") and "vocab_size" in out}


def _predict_capped(ws: Workspace, source: Path, path: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "toxmod.predict", f"run={source}", f"input={path}", "tracking=none"]
    return subprocess.run(
        args, cwd=ws.root, env=ws.env, capture_output=True, text=True, preexec_fn=_memory_cap(), timeout=300
    )


def gzip_bomb(ws: Workspace, source: Path) -> dict:
    import gzip

    path = ws.root / "bomb.txt.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:  # 5 GiB of zeros, ~5 MB on disk
        for _ in range(320):
            handle.write(b"0" * (1 << 24))
    start = time.perf_counter()
    result = _predict_capped(ws, source, path)
    outcome = f"{one_line_error(result)} after {time.perf_counter() - start:.1f} s (1 GiB heap cap)"
    held = result.returncode == 1 and "one line" in outcome and "limits." in outcome
    return {"outcome": outcome, "ok": held}


def wide_csv(ws: Workspace, source: Path) -> dict:
    path = ws.root / "wide.csv"
    header = ",".join(["text", *(f"c{i}" for i in range(300_000))])
    path.write_text(header + "\nclaim your airdrop" + ",1" * 300_000 + "\n")
    start = time.perf_counter()
    result = _predict_capped(ws, source, path)
    outcome = f"{one_line_error(result)} after {time.perf_counter() - start:.1f} s (1 GiB heap cap)"
    return {"outcome": outcome, "ok": result.returncode == 1 and "limits.columns" in outcome}


def parquet_not_text(ws: Workspace, source: Path) -> dict:
    path = ws.root / "ints.parquet"
    pd.DataFrame({"text": [1, 2, 3]}).to_parquet(path)
    result = ws.toxmod("predict", f"run={source}", f"input={path}", "tracking=none")
    return _refused(result)


def markup_run_name(ws: Workspace) -> dict:
    """Runs named ``[/x]`` and ``=HYPERLINK(..)|<b>``: compare, select and report work, nothing renders."""
    for name in ("[/x]", '=HYPERLINK("http://x")|<b>bold</b>'):
        trained = ws.toxmod("train", *SLICE, *LOGREG, f"run_name='{name}'", *ws.store_overrides())
        if trained.returncode:
            return {"outcome": "training failed: " + last_line(trained), "ok": False}
    compare = ws.toxmod("compare", f"output={ws.root / 'runs.csv'}", *ws.store_overrides())
    shown = ws.toxmod("compare", *ws.store_overrides())
    select = ws.toxmod("select", *ws.store_overrides())
    report = ws.toxmod("report", *ws.store_overrides(), f"hydra.run.dir={ws.root / 'report'}")
    codes = [r.returncode for r in (compare, shown, select, report)]
    csv_text = (ws.root / "runs.csv").read_text() if (ws.root / "runs.csv").exists() else ""
    report_md = ws.root / "report" / "report.md"
    markdown = report_md.read_text() if report_md.exists() else ""
    inert = "'=HYPERLINK" in csv_text and "<b>" not in markdown and "[/x]" in shown.stdout
    formula = "neutralised" if "'=HYP" in csv_text else "RAW"
    outcome = f"exit codes {codes}; csv formula {formula}"
    outcome += f"; markdown html {'escaped' if '<b>' not in markdown else 'RAW'}"
    return {"outcome": outcome, "ok": codes == [0, 0, 0, 0] and inert}


def ansi_in_error(ws: Workspace, source: Path) -> dict:
    """An ANSI escape in a shared run's ``data.path`` reaches the error line escaped."""
    run_dir = _copy(ws, source)
    _edit_config(run_dir, lambda c: c["data"].update(path="/nowhere/\x1b[2J\x1b[32mALL CHECKS PASSED.csv"))
    result = ws.evaluate(run_dir)
    raw = "\x1b" in result.stderr + result.stdout
    return _refused(result, extra=not raw) | ({"outcome": "RAW ESCAPE in output"} if raw else {})


def _thresholds_case(ws: Workspace, source: Path, scam: str | None = None, whole: str | None = None) -> dict:
    """``thresholds.json`` with ``scam``'s value written as the JSON text ``scam``, or replaced by
    ``whole``; resealed, then evaluated: one line, exit 2."""
    run_dir = _copy(ws, source)
    path = run_dir / "thresholds.json"
    if whole is None:
        data = json.loads(path.read_text())
        data["thresholds"]["scam"] = "@@"
        whole = json.dumps(data).replace('"@@"', str(scam))
    path.write_text(whole)
    reseal(run_dir)
    return _refused(ws.evaluate(run_dir))


def missing_run_path(ws: Workspace) -> dict:
    outputs = ws.root / "outputs"
    result = ws.toxmod("evaluate", "run=outputs/train/missing", *ws.store_overrides())
    left = sorted(p.relative_to(ws.root).as_posix() for p in outputs.rglob("*")) if outputs.exists() else []
    outcome = one_line_error(result) + f"; left {left or 'nothing'}"
    return _refused(result, extra=not left) | {"outcome": outcome}


def control_character_label(ws: Workspace) -> dict:
    path = janitr_csv(ws, 300)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns={"scam": "sc\x07am"})
    frame.to_csv(path, index=False)
    conf = ws.root / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "bell.yaml").write_text(
        yaml.safe_dump(
            {
                "defaults": ["csv", "_self_"],
                "name": "bell",
                "path": str(path),
                "id_column": "id",
                "label_columns": ["sc\x07am", "topic_crypto"],
            }
        )
    )
    result = ws.toxmod("train", "data=bell", "split=stratified", *LOGREG, "tracking=none")
    return _refused(result, extra="\x07" not in result.stderr)


def _signal_predict(ws: Workspace, source: Path, number: int, output: str) -> dict:
    texts = ws.root / "many.txt"
    texts.write_text("".join(f"claim your free airdrop number {i}\n" for i in range(300_000)))
    target = ws.root / output
    process = subprocess.Popen(
        [sys.executable, "-m", "toxmod.predict", f"run={source}", f"input={texts}", f"output={target}"]
        + ["tracking=none"],
        cwd=ws.root,
        env=ws.env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not Path(f"{target}.partial").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    left = [p.name for p in ws.root.glob(f"{output}*")]
    last = lines[-1][:60] if lines else ""
    outcome = f"exit {process.returncode}, {len(lines)} line(s): {last}; left {left or 'nothing'}"
    return {"outcome": outcome, "ok": len(lines) == 1 and not left and process.returncode in (130, 143)}


def sigterm_export(ws: Workspace) -> dict:
    """SIGTERM during an export: the run ends FAILED (with ``FAILED``), never RUNNING."""
    student = ["model=student", "student=tiny", "model.max_length=48", "model.max_epochs=1", *SLICE]
    trained = ws.toxmod("train", *student, *ws.store_overrides())
    if trained.returncode:
        return {"outcome": "training failed: " + last_line(trained), "ok": False}
    source = next((ws.root / "outputs").glob("train/*/holdout_eval.json")).parent
    process = subprocess.Popen(
        [sys.executable, "-m", "toxmod.export", f"run={source}", *ws.store_overrides()],
        cwd=ws.root,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and "export" not in ws.kinds():
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    statuses = ws.statuses()
    failed = list((ws.root / "outputs").glob("export/*/FAILED"))
    marker = "present" if failed else "absent"
    outcome = f"exit {process.returncode}; store {sorted(statuses)}; FAILED file {marker}"
    held = "RUNNING" not in statuses and bool(failed) and process.returncode == 143
    return {"outcome": outcome, "ok": held}


def concurrent_register(ws: Workspace) -> dict:
    """Two ``select`` processes crowning the same run at once: both succeed, one model version."""
    _store_run(ws, "run")
    commands = [[sys.executable, "-m", "toxmod.select", *ws.store_overrides()] for _ in range(2)]
    processes = [
        subprocess.Popen(
            c, cwd=ws.root, env=ws.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for c in commands
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    with sqlite3.connect(ws.db) as db:
        versions = db.execute("select count(*) from model_versions").fetchone()[0]
    codes = [p.returncode for p in processes]
    tracebacks = sum("Traceback" in e for e in errors)
    outcome = f"exit codes {codes}; {versions} model version(s); tracebacks {tracebacks}"
    return {"outcome": outcome, "ok": codes == [0, 0] and versions == 1 and not tracebacks}


def user_code_arguments(ws: Workspace, source: Path) -> dict:
    """The opener's conf/ names a callable; a shared run's threshold node passes it ``_args_``: refused."""
    marker = ws.root / "code-ran"
    conf = ws.root / "conf" / "threshold"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("_target_: os.makedirs\nname: mine\nexist_ok: true\n")
    run_dir = _copy(ws, source)
    _edit_config(run_dir, lambda c: c.update(threshold={"_target_": "os.makedirs", "_args_": [str(marker)]}))
    result = ws.toxmod("export", f"run={run_dir}", "tracking=none", f"paths.output_dir={ws.root / 'out'}")
    return malicious_outcome(result, marker)


# -- driver ------------------------------------------------------------------------------------


def markdown_table(rows: list[dict]) -> str:
    """The cases as the table of docs/reliability.md (temporary folders shown as ``<case>``)."""
    import re

    lines = ["| group | fault | holds | outcome |", "|---|---|---|---|"]
    for row in rows:
        outcome = re.sub(r"/tmp/toxmod-faults-[^/\s]+/case\d+", "<case>", row["outcome"])
        outcome = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:<port>", outcome)
        outcome = re.sub(r"/tmp/\S*", "<case>...", outcome)  # a path the one-line summary cut short
        holds = "yes" if row["ok"] else "**no**"
        case = row["case"].replace("|", "/")
        lines.append(f"| {row['group']} | {case} | {holds} | {outcome.replace('|', '/')[:160]} |")
    held = sum(row["ok"] for row in rows)
    return "\n".join(lines) + f"\n\n{held} of {len(rows)} cases hold."


def main() -> None:
    parser = arguments(__doc__)  # the record is results/faults-<label>.json
    parser.add_argument("--code", type=Path, default=ROOT, help="the toxmod checkout to test")
    parser.add_argument("--label", default=None, help="name for the results file (default: git sha)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated groups: " + ",".join(GROUPS),
    )
    parser.add_argument("--markdown", type=Path, help="print a results file as the markdown table and stop")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.markdown.read_text())["cases"]))
        return
    code = args.code.resolve()
    label = (
        args.label
        or subprocess.run(
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    groups = set(filter(None, args.only.split(","))) or set(GROUPS)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="toxmod-faults-") as tmp:
        counter = iter(range(10_000))

        def case(group: str, name: str, action: Callable[[Workspace], dict]) -> None:
            ws = Workspace(Path(tmp) / f"case{next(counter)}", code)
            start = time.perf_counter()
            row = {
                "group": group,
                "case": name,
                **action(ws),
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(f"{group:<12} {name:<32} {'ok ' if row['ok'] else 'BAD'} {row['outcome']}", flush=True)

        if "kill" in groups:
            for point in KILL_POINTS:
                case("kill -9", f"at {point}", lambda ws, p=point: kill_case(ws, p))
        if "concurrency" in groups:
            case("concurrency", "3 first starts on a new store", concurrent_starts)
            case("concurrency", "2 sweeps in the same second", same_second_sweeps)
        sources = Workspace(Path(tmp) / "sources", code)
        if groups & {"damaged", "malicious"}:
            logreg = finished_run(Workspace(sources.root / "logreg", code), LOGREG)
        if "damaged" in groups:
            for name in DAMAGE:
                case("damaged", name, lambda ws, n=name: damaged_case(ws, logreg, n))
            case("damaged", "thresholds.json reordered", lambda ws: reordered_thresholds(ws, logreg))
        if "malicious" in groups:
            case("malicious", "pickle model file", lambda ws: malicious_pickle(ws, logreg))
            case("malicious", "level rule calling os", malicious_level_rule)
            case("malicious", "_target_ in run config", lambda ws: malicious_target(ws, logreg))
        if "degenerate" in groups:
            for name in DEGENERATE:
                case("degenerate", name, lambda ws, n=name: degenerate_case(ws, n))
        if "shared" in groups:
            if "logreg" not in locals():
                logreg = finished_run(Workspace(sources.root / "logreg", code), LOGREG)
            case("shared", "_target_ through toxmod's modules", lambda ws: target_through_toxmod(ws, logreg))
            case("shared", "a planted module named as a package", lambda ws: planted_module(ws, logreg))
            case("shared", "an LLM run's server and key variable", lambda ws: shared_llm_server(ws, logreg))
            case("shared", "a key echoed by the server", echoed_key)
            case("shared", "store created on a full disk", full_disk_store)
            case("shared", "a run on a full disk", full_disk_run)
            case("shared", "teacher cache: an unlisted file", cache_unlisted_file)
            case("shared", "run folder: an unlisted file", lambda ws: run_unlisted_file(ws, logreg))
            case("shared", "a newline in an ID", newline_in_ids)
            for argument in WRONG_ARGUMENTS:
                case("shared", f"argument {argument}", lambda ws, a=argument: wrong_argument(ws, a))
            case("shared", "predict: invalid UTF-8 file", lambda ws: invalid_utf8(ws, logreg, False))
            case("shared", "predict: invalid UTF-8 on stdin", lambda ws: invalid_utf8(ws, logreg, True))
            case("shared", "predict | head -1", lambda ws: closed_pipe(ws, logreg))
            case("shared", "gc: a FAILED link out of the run", gc_link_out)
            case("shared", "export stopped by its gate", failed_export)
            case("shared", "pyfunc model loaded", pyfunc_load)
        if "trust3" in groups:
            if "logreg" not in locals():
                logreg = finished_run(Workspace(sources.root / "logreg", code), LOGREG)

            def vectorizer(key: str, value: str) -> Callable[[Workspace], dict]:
                return lambda ws: _vectorizer_case(ws, logreg, key, value)

            def signalled(number: int, output: str) -> Callable[[Workspace], dict]:
                return lambda ws: _signal_predict(ws, logreg, number, output)

            trust = [
                ("tags", "a shared run's tags.run_dir", lambda ws: tag_redirect(ws, logreg)),
                ("tracking", "tracking.json names another run", tracking_redirect),
                ("tracking", "a copied run folder resumed", copied_resume),
                ("gc", "FAILED files in folders toxmod did not make", gc_foreign_folders),
                ("gc", "training into a folder of the user's files", train_into_foreign_folder),
                (
                    "paths",
                    "export: data outside the user's folders",
                    lambda ws: export_outside_data(ws, logreg),
                ),
                ("model", "vectorizer input=filename", vectorizer("input", "filename")),
                ("model", "vectorizer backtracking token_pattern", vectorizer("token_pattern", "(a+)+$")),
                ("model", "config.json vocab_size 1e8", big_vocabulary),
                ("input", "predict: 5 GiB one-line .txt.gz", lambda ws: gzip_bomb(ws, logreg)),
                ("input", "predict: CSV of 300,001 columns", lambda ws: wide_csv(ws, logreg)),
                ("input", "predict: Parquet text column of ints", lambda ws: parquet_not_text(ws, logreg)),
                ("display", "run names [/x] and =HYPERLINK(..)|<b>", markup_run_name),
                ("display", "ANSI escapes in a shared run's data.path", lambda ws: ansi_in_error(ws, logreg)),
                (
                    "numbers",
                    "threshold 10**400",
                    lambda ws: _thresholds_case(ws, logreg, scam="1" + "0" * 400),
                ),
                (
                    "numbers",
                    "threshold of 5,001 digits",
                    lambda ws: _thresholds_case(ws, logreg, scam="1" * 5001),
                ),
                (
                    "numbers",
                    "100k-deep JSON nesting",
                    lambda ws: _thresholds_case(ws, logreg, whole="[" * 100_000 + "]" * 100_000),
                ),
                ("numbers", "run=<missing path>", missing_run_path),
                ("numbers", "a label name with a control character", control_character_label),
                ("signals", "SIGTERM during predict", signalled(signal.SIGTERM, "o.jsonl")),
                ("signals", "SIGINT during predict to Parquet", signalled(signal.SIGINT, "o.parquet")),
                ("signals", "SIGTERM during an export", sigterm_export),
                ("signals", "two processes registering one model", concurrent_register),
                (
                    "conf",
                    "a shared run's _args_ to a conf/ callable",
                    lambda ws: user_code_arguments(ws, logreg),
                ),
            ]
            for area, name, action in trust:
                case("trust3", f"{area}: {name}", action)
    out = ROOT / "benchmarks" / "results" / f"faults-{label}.json"
    if args.only and out.exists():  # a partial re-run replaces its groups' rows, in place
        kept = json.loads(out.read_text())["cases"]
        fresh = {(row["group"], row["case"]): row for row in rows}
        rows = [fresh.pop((row["group"], row["case"]), row) for row in kept] + list(fresh.values())
    held = sum(row["ok"] for row in rows)
    print(f"\n{held}/{len(rows)} cases hold ({label})")
    write_results({**provenance("faults.py"), "code": label, "held": held, "cases": rows}, out)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
