"""Optuna searches: the space and its checks, the study's bookkeeping, a search end to end in MLflow,
continuing a killed search, two workers on one study, pruning a neural trial; and kept checkpoints
opened by ``checkpoint=``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.helpers import (
    JANITR_SLICE,
    RECORD_EXTRAS_OFF,
    TINY_STUDENT,
    compose_train,
    run_entry,
    stored_runs,
    tracking_overrides,
)
from toxmod.errors import ConfigError
from toxmod.paths import project_root
from toxmod.runs.budget import excesses
from toxmod.stages.search.space import OPERATING_POINT, overrides_for, parse_objectives, parse_params, sample
from toxmod.stages.search.study import INTERRUPTED, StudyRef, ask, counts, mark_interrupted, open_study
from toxmod.stages.search.summary import best_trials

# A small classical space: tfidf_logreg's C on 300 janitr rows (about a second a trial).
CLASSICAL = [
    "search=janitr_classical",
    "search.params.model.choices=[tfidf_logreg]",
    "data=janitr",
    "data.max_rows=300",
    "model.max_features=2000",
    "bootstrap=0",
]


def _places(tmp_path: Path, store: dict[str, str]) -> list[str]:
    return [
        *tracking_overrides(store),
        f"paths.multirun_dir={tmp_path / 'multirun'}",
        f"paths.searches_dir={tmp_path / 'searches'}",
    ]


def _study(tmp_path: Path) -> optuna.Study:
    """The search's study, opened under its lock (a search starting beside it may be creating it)."""
    [db] = (tmp_path / "searches").glob("*.db")
    ref = StudyRef(db.stem, f"sqlite:///{db}")
    with ref.lock():
        return optuna.load_study(study_name=ref.name, storage=ref.storage)


# -- the space -----------------------------------------------------------------------------------


@pytest.mark.data_free
def test_entries_nested_or_dotted_with_conditions() -> None:
    params = parse_params(
        {
            "model": {
                "choices": ["tfidf_logreg", "tfidf_xgboost"],
                "C": {"low": 0.1, "high": 10, "log": True, "when": {"model": "tfidf_logreg"}},
                "max_depth": {"type": "int", "low": 2, "high": 6, "when": {"model": ["tfidf_xgboost"]}},
            },
            "distill.alpha": {"low": 0.1, "high": 0.9, "step": 0.1},
        }
    )
    assert [(p.key, p.kind) for p in params] == [
        ("model", "categorical"),
        ("model.C", "float"),
        ("model.max_depth", "int"),
        ("distill.alpha", "float"),
    ]
    logreg = sample(
        params, optuna.trial.FixedTrial({"model": "tfidf_logreg", "model.C": 2.5, "distill.alpha": 0.3})
    )
    assert logreg == {"model": "tfidf_logreg", "model.C": 2.5, "distill.alpha": 0.3}  # no max_depth
    trees = sample(
        params,
        optuna.trial.FixedTrial({"model": "tfidf_xgboost", "model.max_depth": 4, "distill.alpha": 0.5}),
    )
    assert overrides_for(params, trees) == ["model=tfidf_xgboost", "model.max_depth=4", "distill.alpha=0.5"]
    assert [(o.metric, o.direction) for o in parse_objectives(None)] == [(OPERATING_POINT, "maximize")]


@pytest.mark.data_free
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "search.params is empty"),
        ({"model.C": {"low": 5, "high": 1}}, "search.params.model.C: empty range low=5 >= high=1"),
        ({"model.C": {"low": 0, "high": 1, "log": True}}, "a log range needs low > 0"),
        ({"model.depth": {"type": "int", "low": 0.5, "high": 3}}, "an int range needs whole low and high"),
        ({"model.C": {"low": 1, "hihg": 2}}, "search.params.model.C.hihg: unknown setting hihg"),
        ({"model": {"choices": []}}, "search.params.model.choices is empty"),
        (
            {"model.C": {"low": 1, "high": 2, "when": {"model": "x"}}},
            "model is not an entry declared before it",
        ),
        ({"model.C": {"type": "complex", "low": 1, "high": 2}}, "search.params.model.C.type=complex"),
    ],
)
def test_a_bad_entry_is_one_line_naming_it(params: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_params(params)


@pytest.mark.data_free
def test_objectives_never_on_the_holdout() -> None:
    with pytest.raises(ConfigError, match="holdout/scam/recall is a holdout metric"):
        parse_objectives({"holdout/scam/recall": "maximize"})
    with pytest.raises(ConfigError, match="expected maximize or minimize"):
        parse_objectives({"valid/scam/recall": "up"})
    two = parse_objectives({"valid/scam/recall": "maximize", "latency/batch1_ms_per_text": "minimize"})
    assert [o.direction for o in two] == ["maximize", "minimize"]


# -- the study's bookkeeping ------------------------------------------------------------------------


@pytest.mark.data_free
def test_a_trial_of_a_dead_sweep_is_interrupted_and_does_not_count(tmp_path: Path) -> None:
    ref = StudyRef("s", f"sqlite:///{tmp_path / 's.db'}")
    objectives = parse_objectives(None)
    study = open_study(ref, objectives, {"name": "random", "seed": 0})
    space = parse_params({"x": {"low": 0, "high": 1}})
    done = ask(study, {"name": "random", "seed": 0})
    sample(space, done)
    study.tell(done.number, 0.5)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = {"process.host": os.uname().nodename, "process.pid": dead.stdout.strip(), "process.start": "1"}
    orphan = ask(study, {"name": "random", "seed": 0}, owner=gone)
    sample(space, orphan)
    mine = ask(study, {"name": "random", "seed": 0})  # this process is alive: left running
    assert counts(study)["running"] == 2
    assert mark_interrupted(study) == 1
    found = counts(study)
    assert (found["finished"], found["interrupted"], found["running"]) == (1, 1, 1)
    assert study.trials[orphan.number].user_attrs[INTERRUPTED] is True
    assert mine.number == 2
    # the same base seed never repeats a suggestion: the sampler is seeded with seed + trials so far
    values = {t.params["x"] for t in study.trials if t.params}
    assert len(values) == len([t for t in study.trials if t.params])


# -- a search end to end ----------------------------------------------------------------------------


def test_a_classical_search_records_a_study_and_continues_it(tmp_path: Path, store: dict[str, str]) -> None:
    from mlflow.tracking import MlflowClient

    places = [*_places(tmp_path, store), "log_pyfunc=true"]  # select registers the crowned trial's model
    first = run_entry("train", "-m", *CLASSICAL, "search.n_trials=3", *places)
    assert first.returncode == 0, first.stderr[-3000:]
    study = _study(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    runs = stored_runs(store, sweep_parents=True)
    [parent] = [r for r in runs if r.data.tags.get("toxmod.kind") == "study"]
    trials = [r for r in runs if r is not parent]
    assert parent.data.tags["toxmod.study"] == study.study_name and parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    by_number = {int(r.data.tags["toxmod.trial"]): r for r in trials}
    for trial in study.trials:  # the study's value is the run's valid recall of its primary decision
        run = by_number[trial.number]
        assert trial.values == [run.data.metrics["valid/scam/recall"]]
        assert trial.user_attrs["toxmod.run_id"] == run.info.run_id
        assert float(run.data.params["model.C"]) == pytest.approx(trial.params["model.C"])
        # the constraint select applies: the worst decision's valid FPR over its budget (feasible <= 0)
        over = [e for _, e in excesses(run.data.metrics).values()]
        assert trial.constraints == {"valid_fpr_over_budget": pytest.approx(max(over))}
    client = MlflowClient(store["uri"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    assert {"search/trials.csv", "search/history.png", "search/param_importances.png"} <= artifacts
    best = best_trials(study)  # the best of the trials within budget (none: no tag)
    assert parent.data.tags.get("best_trial") == (str(best[0].number) if best else None)
    assert parent.data.tags["study_storage"].endswith(f"{study.study_name}.db")
    first_params = [t.params for t in study.trials]

    # The same command asking for 5 continues the study: 2 more trials, the first 3 kept as they were.
    again = run_entry("train", "-m", *CLASSICAL, "search.n_trials=5", *places)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3/5 trials finished" in again.stdout
    continued = _study(tmp_path)
    assert [t.state.name for t in continued.trials] == ["COMPLETE"] * 5
    assert [t.params for t in continued.trials[:3]] == first_params
    assert len({t.params["model.C"] for t in continued.trials}) == 5  # no suggestion made twice
    assert (
        len([r for r in stored_runs(store, sweep_parents=True) if r.data.tags.get("toxmod.kind") == "study"])
        == 1
    )

    # select ranks the trials of this study only (a run outside it is not a candidate)
    from toxmod.config import compose_config
    from toxmod.stages.select import select

    outside = run_entry("train", *CLASSICAL[2:], "model=tfidf_logreg", *tracking_overrides(store))
    assert outside.returncode == 0, outside.stderr[-2000:]
    chosen = select(
        compose_config(
            "select",
            [
                *tracking_overrides(store),
                f"study={continued.study_name}",
                "f1_floor=0",
                "allow_over_budget=true",
            ],
        )
    )
    assert sorted(r.tags["toxmod.trial"] for r in chosen.ranked) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("+search.params.model.nope={low: 1, high: 2}", "search.params.model.nope: not a key of this config"),
        ("search.params.model.C.low=80", "search.params.model.C: empty range low=80 >= high=50"),
        ("+search.objectives={holdout/scam/recall: maximize}", "holdout/scam/recall is a holdout metric"),
        ("+search.params.student={choices: [tiny, h999]}", "h999 is not an option of config group student"),
    ],
)
def test_a_bad_search_is_refused_before_any_trial(
    tmp_path: Path, store: dict[str, str], override: str, says: str
) -> None:
    refused = run_entry("train", "-m", *CLASSICAL, override, *_places(tmp_path, store))
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], refused.stderr
    assert not (tmp_path / "searches").exists() and stored_runs(store, sweep_parents=True) == []


def test_a_crashed_trial_is_recorded_failed_and_the_search_goes_on(
    tmp_path: Path, store: dict[str, str]
) -> None:
    crashing = [
        "search.params.model.C.low=-2",
        "search.params.model.C.high=-1",
        "search.params.model.C.log=false",
    ]
    searched = run_entry("train", "-m", *CLASSICAL, "search.n_trials=2", *crashing, *_places(tmp_path, store))
    assert searched.returncode == 1, searched.stderr[-2000:]
    assert [t.state.name for t in _study(tmp_path).trials] == [
        "FAIL",
        "FAIL",
    ]  # both ran: the first did not stop it
    assert "2 trial(s) failed; the study records them and a re-run continues it" in searched.stdout
    assert sorted(r.info.status for r in stored_runs(store)) == ["FAILED", "FAILED"]


@pytest.mark.slow
def test_joblib_runs_trials_side_by_side(tmp_path: Path, store: dict[str, str]) -> None:
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    searched = run_entry("train", "-m", *CLASSICAL, "search.n_trials=2", *parallel, *_places(tmp_path, store))
    assert searched.returncode == 0, searched.stderr[-2000:]
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"] and _overlapped(trials)
    runs = stored_runs(store)
    share = str(max(len(os.sched_getaffinity(0)) // 2, 1))  # each trial's thread share, recorded
    assert [r.data.params["hardware.resolved.threads"] for r in runs] == [share, share]
    assert len({r.data.tags["process.pid"] for r in runs}) == 2  # two worker processes


@pytest.mark.slow
def test_a_local_ray_instance_runs_trials_side_by_side(tmp_path: Path, store: dict[str, str]) -> None:
    from tests.helpers import run_cli

    ray = ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2"]
    searched = run_cli("train", "-m", *ray, *CLASSICAL, "search.n_trials=2", *_places(tmp_path, store))
    assert searched.returncode == 0, searched.stderr[-2000:]
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert _overlapped(trials)  # launched at once: one per Ray CPU
    assert {r.data.params["hardware.resolved.threads"] for r in stored_runs(store)} == {"1"}


def test_a_search_without_multirun_is_one_line(tmp_path: Path) -> None:
    refused = run_entry("train", *CLASSICAL, f"paths.searches_dir={tmp_path}", "tracking=none")
    assert refused.returncode == 2 and "a search is a multirun; run it with -m" in refused.stderr


# -- processes: a killed search, two workers ------------------------------------------------------


def _search_process(tmp_path: Path, store: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "toxmod.train",
        "-m",
        *RECORD_EXTRAS_OFF,
        *CLASSICAL,
        *_places(tmp_path, store),
    ]
    return subprocess.Popen(
        [*command, f"paths.output_dir={tmp_path / 'outputs'}", *extra],
        cwd=project_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )


def _overlapped(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Every trial started before any finished: they ran side by side."""
    return max(t.datetime_start for t in trials) < min(t.datetime_complete for t in trials)


def _complete(tmp_path: Path) -> int:
    if not list((tmp_path / "searches").glob("*.db")):
        return 0
    return len([t for t in _study(tmp_path).trials if t.state.name == "COMPLETE"])


@pytest.mark.slow
def test_a_killed_search_continues_where_it_stopped(tmp_path: Path, store: dict[str, str]) -> None:
    search = _search_process(tmp_path, store, "search.n_trials=8")  # killed after 2: 6 still to run
    deadline = time.monotonic() + 240
    while _complete(tmp_path) < 2 and time.monotonic() < deadline and search.poll() is None:
        time.sleep(0.2)
    os.killpg(search.pid, signal.SIGKILL)
    search.wait()
    before = _study(tmp_path).trials
    kept = [t.params for t in before if t.state.name == "COMPLETE"]
    assert 2 <= len(kept) < 8, f"killed after {len(kept)} complete trials"

    again = _search_process(tmp_path, store, "search.n_trials=8")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output[-3000:]
    after = _study(tmp_path).trials
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 8  # the total asked for, over both starts
    assert [t.params for t in complete[: len(kept)]] == kept  # finished trials kept, never re-run
    interrupted = [t for t in after if t.user_attrs.get(INTERRUPTED)]
    assert all(t.state.name == "FAIL" for t in interrupted)
    assert len(after) == 8 + len(interrupted)


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path, store: dict[str, str]) -> None:
    workers = [_search_process(tmp_path, store, "search.n_trials=4") for _ in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # 4 in total, not 4 each
    assert {t.user_attrs["process.pid"] for t in trials} == {str(w.pid) for w in workers}
    parents = [r for r in stored_runs(store, sweep_parents=True) if r.data.tags.get("toxmod.kind") == "study"]
    assert len(parents) == 1


# -- pruning a neural trial ---------------------------------------------------------------------------


@pytest.mark.slow
def test_an_aggressive_pruner_prunes_a_tiny_neural_trial(tmp_path: Path, store: dict[str, str]) -> None:
    """Two commands on one named study: two trials that learn (lr about 2e-3), then one that cannot (lr
    about 1e-7), which the median pruner stops at its first validation."""
    student = [o for o in TINY_STUDENT if not o.startswith("bootstrap")]
    common = [
        "search=neural_lr",
        "search.study_name=pruning",
        "search.pruner.n_startup_trials=1",
        *JANITR_SLICE,
    ]
    common += [*student, "model.max_epochs=3", "bootstrap=0", *_places(tmp_path, store)]
    lr = "search.params.model.optimizer.lr"
    learning = run_entry("train", "-m", *common, "search.n_trials=2", f"{lr}.low=2e-3", f"{lr}.high=3e-3")
    assert learning.returncode == 0, learning.stderr[-3000:]
    stuck = run_entry("train", "-m", *common, "search.n_trials=3", f"{lr}.low=1e-7", f"{lr}.high=2e-7")
    assert stuck.returncode == 0, stuck.stderr[-3000:]
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"], stuck.stdout[-3000:]
    assert "sweep: 0 done, 0 skipped, 1 pruned, 0 failed" in stuck.stdout
    pruned = trials[2]
    assert list(pruned.intermediate_values) == [min(trials[0].intermediate_values)]  # its first validation
    [run] = [r for r in stored_runs(store) if r.data.tags.get("toxmod.trial") == "2"]
    assert run.info.status == "KILLED" and run.data.tags["toxmod.trial_state"] == "pruned"
    assert "valid/scam/recall_at_fpr" in run.data.metrics  # its curve up to the pruning is kept


# -- kept checkpoints ----------------------------------------------------------------------------------


def test_a_kept_checkpoint_opens_exports_and_predicts(tmp_path: Path, store: dict[str, str]) -> None:
    from mlflow.tracking import MlflowClient

    import toxmod
    from toxmod.stages.train import train

    overrides = [*JANITR_SLICE, *TINY_STUDENT, "model.max_epochs=3", "checkpoint.top_k=2", "log_pyfunc=true"]
    result = train(compose_train([*overrides, *tracking_overrides(store)]), tmp_path / "run")
    index = json.loads((result.run_dir / "checkpoint_models" / "index.json").read_text())
    assert index["steps"] and index["best_step"] not in index["steps"]
    other = index["steps"][0]
    folder = result.run_dir / "checkpoint_models" / f"step-{other}"
    assert {"model", "thresholds.json", "checkpoint.json"} <= {p.name for p in folder.iterdir()}
    record = json.loads((folder / "checkpoint.json").read_text())
    assert record["step"] == other and "valid/scam/recall" in record["metrics"]

    # the Models view lists the run's checkpoints beside its model, each with its step and valid metrics
    client = MlflowClient(store["uri"])
    models = client.search_logged_models([e.experiment_id for e in client.search_experiments()])
    by_name = {m.name: m for m in models}
    kept = by_name[f"student-janitr-step-{other}"]
    assert kept.params["step"] == str(other) and kept.source_run_id == result.run_id
    linked = {m.key: m.value for m in kept.metrics if m.dataset_name == "janitr.valid"}
    assert linked["valid/scam/recall"] == pytest.approx(record["metrics"]["valid/scam/recall"])
    run = client.get_run(result.run_id)
    assert run.data.tags["pyfunc_model_uri"] == f"models:/{by_name['student-janitr'].model_id}"

    # open it: its own weights and thresholds, not the best's
    best, at_step = toxmod.load(result.run_dir), toxmod.load(result.run_dir, checkpoint=other)
    text = "claim your free airdrop now, connect wallet"
    assert at_step.predict(text)["scores"] != best.predict(text)["scores"]
    from toxmod.thresholds import Thresholds

    assert at_step.thresholds.as_dict() == Thresholds.load(folder / "thresholds.json", best.scheme).as_dict()
    assert (result.run_dir / "thresholds.json").read_text() != (folder / "thresholds.json").read_text()

    exported = run_entry(
        "export",
        f"run={result.run_dir}",
        f"checkpoint={other}",
        *tracking_overrides(store),
        "export.quantize=false",
        "export.score_with=fp32",
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    export_run = next(
        r for r in stored_runs(store) if r.data.tags.get("source_checkpoint") == f"step-{other}"
    )
    onnx = toxmod.load(export_run.data.tags["run_dir"])
    assert onnx.predict(text)["scores"]["scam"] == pytest.approx(
        at_step.predict(text)["scores"]["scam"], abs=1e-4
    )

    missing = run_entry("evaluate", f"run={result.run_dir}", "checkpoint=99999", "tracking=none")
    assert missing.returncode == 2 and "kept no such checkpoint" in missing.stderr
