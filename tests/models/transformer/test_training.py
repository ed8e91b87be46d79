"""Tiny transformers (2 layers, hidden 32) trained for a few steps on real data slices."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from safetensors.numpy import load_file

from tests.conftest import SharedRun
from tests.helpers import (
    JANITR_SLICE,
    TINY_STUDENT,
    compose_train,
    davidson_slice,
    janitr_frame,
    run_cli,
    run_entry,
    stored_runs,
    tracking_overrides,
)
from toxmod.errors import ConfigError, TrainingError
from toxmod.models import load_scorer
from toxmod.models.capabilities import place
from toxmod.models.transformer.lightning_parts import read_checkpoint
from toxmod.models.transformer.tokenization import train_wordpiece_tokenizer
from toxmod.models.transformer.train_rows import train_subsample
from toxmod.models.transformer.training import default_monitor
from toxmod.runs import load_run
from toxmod.stages.evaluate import evaluate_run
from toxmod.stages.train import TrainResult, train


@pytest.mark.slow
def test_multilabel_student_run_is_recorded_and_reproduced(
    tmp_path: Path, tiny_student_run: SharedRun
) -> None:
    result, store = tiny_student_run.result, tiny_student_run.store
    run = MlflowClient(store["uri"]).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in ("holdout/scam/recall", "holdout/macro_f1", "calib/scam/fpr", "valid/scam/recall_at_fpr"):
        assert name in metrics, name
    assert metrics["calib/scam/fpr"] <= 0.02
    # Epoch curves: one validation point per epoch, at increasing steps.
    history = MlflowClient(store["uri"]).get_metric_history(result.run_id, "valid/scam/recall_at_fpr")
    steps = sorted(point.step for point in history)
    assert len(steps) == 2 and 0 < steps[0] < steps[1]  # one point per validation epoch
    model_dir = result.run_dir / "model"
    assert {"scorer.json", "config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in model_dir.iterdir()
    }
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "scam", "1": "topic_crypto"} and config["num_hidden_layers"] == 2
    checkpoints = {p.name for p in (result.run_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("best-step=") for name in checkpoints)
    # The kept checkpoint's step is a step the valid curve has a point at, with the kept score.
    [best] = [int(name[len("best-step=") : -len(".ckpt")]) for name in checkpoints if name.startswith("best")]
    at_step = {point.step: point.value for point in history}
    assert best in at_step and at_step[best] == pytest.approx(metrics["valid/best_monitored"])

    artifacts = {a.path for a in MlflowClient(store["uri"]).list_artifacts(result.run_id, "checkpoints")}
    assert any(path.startswith("checkpoints/best-step=") for path in artifacts)

    evaluation = evaluate_run(result.run_dir)
    assert evaluation.reproduced and evaluation.max_difference == 0.0
    by_run_id = run_entry(
        "evaluate", f"run={result.run_id}", *tracking_overrides(store), f"paths.output_dir={tmp_path}"
    )
    assert by_run_id.returncode == 0 and "reproduced: max |difference|" in by_run_id.stdout
    assert "Downloading artifacts" not in by_run_id.stdout + by_run_id.stderr


@pytest.mark.slow
def test_checkpoint_monitor_keeps_the_validation_it_names(tmp_path: Path, store: dict[str, str]) -> None:
    epochs = 3
    cfg = compose_train(
        [
            *JANITR_SLICE,
            *TINY_STUDENT,
            f"trainer.max_epochs={epochs}",
            "checkpoint.monitor=valid/mean_roc_auc",
            *tracking_overrides(store),
        ]
    )
    result = train(cfg, tmp_path / "run")
    history = MlflowClient(store["uri"]).get_metric_history(result.run_id, "valid/mean_roc_auc")
    # In logging order: each epoch's validation, then the final evaluation (at the last step too).
    points = [(p.step, p.value) for p in sorted(history, key=lambda p: (p.timestamp, p.step))]
    per_epoch, after_fit = points[:epochs], points[epochs:]
    assert [step for step, _ in per_epoch] == [24 * (epoch + 1) for epoch in range(epochs)]
    best_step, best_value = max(per_epoch, key=lambda point: point[1])  # the first of equal bests
    assert result.metrics["valid/best_monitored"] == pytest.approx(best_value)
    checkpoints = {p.name for p in (result.run_dir / "checkpoints").iterdir()}
    assert f"best-step={best_step}.ckpt" in checkpoints  # named after the step its valid point is at
    # The saved model is that validation's weights: re-scored on valid, the same mean ROC-AUC.
    assert len(after_fit) == 1 and after_fit[0][1] == pytest.approx(best_value, abs=1e-6)


@pytest.mark.slow
def test_early_stopping_stops_patience_validations_after_the_best(
    tmp_path: Path, store: dict[str, str]
) -> None:
    patience, max_epochs = 2, 10
    cfg = compose_train(
        [
            *JANITR_SLICE,
            *TINY_STUDENT,
            f"trainer.max_epochs={max_epochs}",
            "early_stopping.enabled=true",
            f"early_stopping.patience={patience}",
            "checkpoint.every_n_steps=30",  # first periodic save after epoch 1's save (step 24)
            *tracking_overrides(store),
        ]
    )
    result = train(cfg, tmp_path / "run")
    # One last.ckpt, kept current by every writer (no "last-v1.ckpt" beside a stale one).
    files = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert len(files) == 2 and files[0].startswith("best-step=") and files[1] == "last.ckpt"
    assert _last_checkpoint(result.run_dir)["global_step"] == result.metrics["train/global_steps"]
    history = MlflowClient(store["uri"]).get_metric_history(result.run_id, "valid/scam/recall_at_fpr")
    # Epoch-end validations only (24 batches per epoch: steps 24, 48, ...).
    values = [p.value for p in sorted(history, key=lambda p: p.step) if p.step % 24 == 0]
    best = values.index(max(values)) + 1  # 1-based epoch of the first best (ties do not improve)
    assert len(values) == best + patience < max_epochs
    assert result.metrics["train/global_steps"] == 24 * len(values)  # 24 batches per epoch


@pytest.mark.slow
def test_auxiliary_tags_train_extra_heads_that_are_cut_before_saving(tmp_path: Path) -> None:
    tags = "data.auxiliary.min_train_count=5"  # janitr.yaml trains heads on the raw tags
    short = [*JANITR_SLICE, *TINY_STUDENT, "trainer.max_steps=8", "tracking=none"]
    with_tags = train(compose_train([*short, tags]), tmp_path / "with")
    without = train(compose_train([*short, tags, "model.auxiliary_weight=0"]), tmp_path / "without")

    run = load_run(with_tags.run_dir)
    expected = run.part("train").auxiliary.supported(5).names
    assert len(expected) >= 5 and with_tags.metrics["train/auxiliary_targets"] == len(expected)
    assert without.metrics["train/auxiliary_targets"] == 0
    config = json.loads((with_tags.run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "scam", "1": "topic_crypto"}
    holdout = list(run.part("holdout").texts[:64])
    scores = run.scorer.predict_scores(holdout)
    assert scores.shape == (64, 2)
    # The heads shared the encoder's gradient: same seed and data, different weights.
    assert not np.allclose(scores, load_run(without.run_dir).scorer.predict_scores(holdout))
    assert evaluate_run(with_tags.run_dir).max_difference == 0.0


@pytest.mark.slow
def test_student_tokenizer_is_trained_on_the_train_split_only(tiny_student_run: SharedRun) -> None:
    run = load_run(tiny_student_run.result.run_dir)
    saved = run.scorer.tokenizer.get_vocab()
    settings = {"vocab_size": 2000, "min_frequency": 2, "lowercase": True}
    train_texts = list(run.part("train").texts)
    assert saved == train_wordpiece_tokenizer(train_texts, **settings).get_vocab()
    with_holdout = train_wordpiece_tokenizer(train_texts + list(run.part("holdout").texts), **settings)
    assert saved != with_holdout.get_vocab()


@pytest.mark.slow
def test_levels_student_run(tmp_path: Path) -> None:
    data_path = davidson_slice(tmp_path, n=900)
    cfg = compose_train(
        [
            "data=davidson",
            f"data.path={data_path}",
            "split=stratified",
            *TINY_STUDENT,
            "trainer.max_epochs=2",
            "tracking=none",
        ]
    )
    result = train(cfg, tmp_path / "run")
    scores = load_scorer(result.run_dir / "model").predict_scores(["you are great", "i hate you"])
    assert scores.shape == (2, 3) and np.allclose(scores.sum(axis=1), 1.0)
    assert "holdout/accuracy" in result.metrics and 0.0 <= result.metrics["valid/best_monitored"] <= 1.0
    # The monitored operating point of a levels scheme is its top level's cumulative decision.
    scheme = load_scorer(result.run_dir / "model").scheme
    assert default_monitor(scheme) == "valid/at_least_hate/recall_at_fpr"


@pytest.mark.slow
def test_levels_run_with_auxiliary_columns(tmp_path: Path) -> None:
    # Auxiliary 0/1 columns beside ordinal levels: "at least one annotator voted hate / offensive".
    frame = pd.read_csv(davidson_slice(tmp_path, n=600), dtype=str, keep_default_na=False)
    frame["any_hate_vote"] = (frame.hate_speech.astype(int) > 0).astype(int)
    frame["any_offensive_vote"] = (frame.offensive_language.astype(int) > 0).astype(int)
    frame.to_csv(tmp_path / "votes.csv", index=False)
    auxiliary = "data.auxiliary={columns: [any_hate_vote, any_offensive_vote]}"
    overrides = ["data=davidson", f"data.path={tmp_path / 'votes.csv'}", "split=stratified", *TINY_STUDENT]
    cfg = compose_train([*overrides, auxiliary, "trainer.max_steps=6", "tracking=none"])
    result = train(cfg, tmp_path / "run")
    assert result.metrics["train/auxiliary_targets"] == 2
    scorer = load_scorer(result.run_dir / "model")
    scores = scorer.predict_scores(["you are great", "i hate you"])
    assert scores.shape == (2, 3) and np.allclose(scores.sum(axis=1), 1.0)  # levels only, heads cut


@pytest.mark.slow
def test_resume_is_refused_when_the_data_file_changed(tmp_path: Path) -> None:
    data_path = davidson_slice(tmp_path, n=600)
    overrides = ["data=davidson", f"data.path={data_path}", "split=stratified", *TINY_STUDENT]
    overrides.append("tracking=none")
    first = train(compose_train([*overrides, "trainer.max_steps=4"]), tmp_path / "run")
    frame = pd.read_csv(data_path, dtype=str, keep_default_na=False)
    frame.iloc[:550].to_csv(data_path, index=False)  # 50 rows gone: another split
    with pytest.raises(ConfigError, match="resume: the split changed"):
        train(compose_train([*overrides, "trainer.max_steps=8", f"resume={first.run_dir}"]), tmp_path / "x")
    assert json.loads((first.run_dir / "metrics.json").read_text())["train/global_steps"] == 4


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _last_checkpoint(run_dir: Path) -> dict:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # plain data: weights_only loads it


# The reference for exact resumption: 40 steps in one go, crossing the end of epoch 1 (24 batches of
# 16 per epoch). Every chunked or interrupted run of the same settings must end with the same numbers.
# fp32 whatever the CPU: the interrupted chunk runs through the CLI, where hardware=auto would train in
# bf16-mixed on a CPU with bf16 instructions, and the reference in-process with hardware=cpu
REFERENCE = [*JANITR_SLICE, *TINY_STUDENT, "trainer.max_epochs=5", "hardware.precision=32-true"]
REFERENCE_STEPS = 40


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    cfg = compose_train([*REFERENCE, f"trainer.max_steps={REFERENCE_STEPS}", "tracking=none"])
    return train(cfg, tmp_path_factory.mktemp("uninterrupted") / "run")


def assert_same_run(resumed: TrainResult, whole: TrainResult) -> None:
    """The same metrics on every split (to 1e-5), and the same final and kept weights."""
    assert resumed.metrics["train/global_steps"] == whole.metrics["train/global_steps"]
    for name, value in whole.metrics.items():
        if name.startswith(("holdout/", "valid/", "calib/", "threshold/")):
            assert resumed.metrics[name] == pytest.approx(value, abs=1e-5), name
    final, single = (
        _last_checkpoint(resumed.run_dir)["state_dict"],
        _last_checkpoint(whole.run_dir)["state_dict"],
    )
    assert max(float((final[k] - single[k]).abs().max()) for k in single) < 1e-5
    kept, kept_whole = _weights(resumed.run_dir), _weights(whole.run_dir)
    assert max(float(np.abs(kept[k] - kept_whole[k]).max()) for k in kept_whole) < 1e-5


@pytest.mark.slow
def test_two_chunks_equal_one_run(
    tmp_path: Path, store: dict[str, str], uninterrupted_run: TrainResult
) -> None:
    base = [*REFERENCE, *tracking_overrides(store)]
    first = train(
        compose_train([*base, "trainer.max_steps=20", "checkpoint.every_n_steps=7"]), tmp_path / "a"
    )
    assert first.metrics["train/global_steps"] == 20  # stops mid-epoch
    second = train(
        compose_train([*base, f"trainer.max_steps={REFERENCE_STEPS}", f"resume={first.run_dir}"]),
        tmp_path / "unused",
    )
    assert second.run_id == first.run_id and second.run_dir == first.run_dir
    assert_same_run(second, uninterrupted_run)
    assert MlflowClient(store["uri"]).get_run(first.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_resume_last_finds_the_latest_checkpointed_run(tmp_path: Path, store: dict[str, str]) -> None:
    outputs = tmp_path / "outputs"
    common = [*JANITR_SLICE, *TINY_STUDENT, *tracking_overrides(store), f"paths.output_dir={outputs}"]
    first = run_entry("train", *common, "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-2000:]
    # A 4-step chunk of a 24-step epoch: no validation ran, and the output says so and how to go on.
    assert "no validation ran (it runs at the end of each 24-step epoch)" in first.stdout
    chunk_end = "this chunk stopped at step 4 of 240 (trainer.max_steps); go on with: python -m toxmod.train"
    assert f"{chunk_end} resume=" in first.stdout
    assert "could not find the monitored key" not in first.stdout + first.stderr
    second = run_entry("train", *common, "trainer.max_steps=8", "resume=last")
    assert second.returncode == 0, second.stderr[-2000:]
    run_dirs = [p.parent.parent for p in outputs.glob("train/*/checkpoints/last.ckpt")]
    assert len(run_dirs) == 1  # the second chunk wrote into the first run's directory
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["train/global_steps"] == 8
    runs = stored_runs(store)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    minilm = [o for o in common if o != "student=tiny"]  # minilm has no student architecture
    missing = run_entry("train", *minilm, "data.max_rows=500", "model=minilm", "resume=last")
    assert missing.returncode == 2 and "resume=last: no run of model=minilm" in missing.stderr

    # resume=<run dir> continues the run with its own settings: no need to repeat its overrides, but
    # where it is recorded is the user's to say (a run never chooses its tracking store)
    elsewhere = run_entry("train", f"resume={run_dirs[0]}", "trainer.max_steps=12")
    assert (
        elsewhere.returncode == 2 and f"pass tracking.uri={store['uri']} to continue it" in elsewhere.stderr
    )
    third = run_entry(
        "train", f"resume={run_dirs[0]}", "trainer.max_steps=12", f"tracking.uri={store['uri']}"
    )
    assert third.returncode == 0, third.stderr[-2000:]
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["train/global_steps"] == 12 and metrics["train/rows_used"] == 377  # the 600-row slice
    assert json.loads((run_dirs[0] / "holdout_eval.json").read_text())["model"] == "student"
    assert len(stored_runs(store)) == 1  # the run's own tracking store and MLflow run

    # An override that would change the run is refused before the finished chunk is touched.
    manifest = (run_dirs[0] / "split" / "MANIFEST.json").read_bytes()
    other_split = run_entry("train", *common, "data.max_rows=500", f"resume={run_dirs[0]}")
    assert other_split.returncode == 2
    assert "resume: a resumed run keeps its own settings, and data.max_rows=500 (the run: 600)" in (
        other_split.stderr
    )
    other_heads = run_entry("train", "data.auxiliary.min_train_count=3", f"resume={run_dirs[0]}")
    assert other_heads.returncode == 2
    assert "data.auxiliary.min_train_count=3 (the run: 20)" in other_heads.stderr
    assert (run_dirs[0] / "split" / "MANIFEST.json").read_bytes() == manifest
    assert (run_dirs[0] / "holdout_eval.json").is_file() and stored_runs(store)[0].info.status == "FINISHED"


@pytest.mark.slow
def test_resume_in_a_sweep_finds_each_jobs_own_run(tmp_path: Path, store: dict[str, str]) -> None:
    common = [
        "-m",
        *JANITR_SLICE,
        *TINY_STUDENT,
        *tracking_overrides(store),
        f"paths.output_dir={tmp_path / 'outputs'}",
        f"paths.multirun_dir={tmp_path / 'multirun'}",
    ]
    first = run_entry("train", *common, "seed=0,1", "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-2000:]
    started = {r.data.params["seed"]: r.info.run_id for r in stored_runs(store)}
    assert set(started) == {"0", "1"}

    # The interrupted sweep again, one job more: seeds 0 and 1 continue their own runs, 2 starts.
    again = run_entry("train", *common, "seed=0,1,2", "trainer.max_steps=8", "resume=auto")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resume=auto: no checkpointed run of this job" in again.stdout  # seed 2
    runs = stored_runs(store)
    assert {r.data.params["seed"]: r.info.run_id for r in runs if r.data.params["seed"] != "2"} == started
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.metrics["train/global_steps"] for r in runs} == {8.0}

    # The same sweep once more: every job already finished what it asks for, so nothing runs.
    records = sorted((tmp_path / "multirun").glob("train/*/*/holdout_eval.json"))
    before = [path.stat().st_mtime_ns for path in records]
    done = run_entry("train", *common, "seed=0,1,2", "trainer.max_steps=8", "resume=auto")
    assert done.returncode == 0 and done.stdout.count("this job already finished") == 3
    assert [path.stat().st_mtime_ns for path in records] == before and len(stored_runs(store)) == 3

    other = run_entry("train", *common[1:], "seed=5", "resume=last")
    assert other.returncode == 2
    assert "resume=last: no checkpointed run of this job" in other.stderr
    assert "seed=5 (the run: " in other.stderr


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_and_exact_resume(tmp_path: Path, store: dict[str, str]) -> None:
    common = [
        *JANITR_SLICE,
        *TINY_STUDENT,
        "hardware=ddp",
        "hardware.accelerator=cpu",
        "trainer.max_epochs=2",
        *tracking_overrides(store),
    ]
    result = run_entry("train", *common, f"paths.output_dir={tmp_path / 'whole'}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "whole").glob("train/*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # 24 batches of 16 per epoch, sharded over 2 processes: 12 optimizer steps per epoch.
    assert metrics["train/global_steps"] == 24
    assert json.loads((run_dir / "holdout_eval.json").read_text())["model"] == "student"
    # The spawned rank-0 worker logged the epoch curve into the parent's MLflow run.
    run_id = json.loads((run_dir / "tracking.json").read_text())["run_id"]
    history = MlflowClient(store["uri"]).get_metric_history(run_id, "valid/scam/recall_at_fpr")
    assert len(history) == 2 and MlflowClient(store["uri"]).get_run(run_id).info.status == "FINISHED"

    # Chunked: 8 steps, then resumed to the end. Each rank's RNG state rides in the checkpoint
    # (the ranks draw different dropout masks), so the result equals the run in one go. The chunks
    # use ddp_fork: the same launcher as ddp_spawn with forked workers, which start in a second
    # instead of re-importing torch, Lightning and transformers.
    chunked = [*common, "hardware.strategy=ddp_fork", f"paths.output_dir={tmp_path / 'chunked'}"]
    assert run_entry("train", *chunked, "trainer.max_steps=8").returncode == 0
    resumed = run_entry("train", *chunked, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    chunked_dir = next((tmp_path / "chunked").glob("train/*/checkpoints")).parent
    chunked_metrics = json.loads((chunked_dir / "metrics.json").read_text())
    assert chunked_metrics["train/global_steps"] == 24
    for name, value in metrics.items():
        if name.startswith(("holdout/", "valid/", "calib/", "threshold/")):
            assert chunked_metrics[name] == pytest.approx(value, abs=1e-5), name
    final, single = _last_checkpoint(chunked_dir)["state_dict"], _last_checkpoint(run_dir)["state_dict"]
    assert max(float((final[k] - single[k]).abs().max()) for k in single) < 1e-5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.max_length=0", "model.max_length=0: expected a positive integer"),
        ("model.max_length=4", "model.max_length=4: at least 8 tokens"),
        ("model.batch_size=0", "model.batch_size=0: expected a positive integer"),
        ("model.max_train_rows=-3", "model.max_train_rows=-3: expected a positive integer"),
        ("trainer.max_steps=abc", "trainer.max_steps='abc': expected an integer"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: expected a positive"),
        ("trainer.max_epochs=-1", "trainer.max_epochs and trainer.max_steps are both open: set one"),
        ("early_stopping.monitor=valid/f1", "early_stopping.monitor=valid/f1 is not a validation metric"),
        ("model.init_from=/nonexistent", "model.init_from=/nonexistent: no such directory"),
        ("model.optimizer.lr=-1", "model.optimizer: Invalid learning rate: -1"),
        ("model.scheduler.warmup_ratio=2", "model.scheduler.warmup_ratio=2: expected 0 <= ratio <= 1"),
        ("student.layers=0", "student.layers=0: expected a positive integer"),
        ("hardware.devices=0", "hardware.devices=0: expected a count >= 1, -1 (all) or auto"),
        ("threshold.target_fpr=2", "threshold.target_fpr must be in [0, 1), got 2"),
    ],
)
def test_bad_neural_settings_fail_before_training(tmp_path: Path, override: str, message: str) -> None:
    cfg = compose_train([*JANITR_SLICE, *TINY_STUDENT, "tracking=none", override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_max_length_beyond_the_pretrained_positions_is_refused(tmp_path: Path) -> None:
    cfg = compose_train([*JANITR_SLICE, "model=minilm", "model.max_length=1024", "tracking=none"])
    with pytest.raises(ConfigError, match=r"model.max_length=1024: .* takes at most 512 tokens"):
        train(cfg, tmp_path / "run")


def test_the_progress_bar_shows_a_short_run_id() -> None:
    """Lightning shows the logger's version as ``v_num`` on every progress line: a whole 32-character
    MLflow run id pushed the line past 120 columns."""
    from toxmod.models.transformer.callbacks import TrackerLogger
    from toxmod.runs import NullTracker

    tracker = NullTracker()
    tracker.run_id = "0123456789abcdef0123456789abcdef"
    assert TrackerLogger(tracker).version == "01234567"


def test_train_subsample_is_seeded_and_keeps_rows_aligned() -> None:
    texts = [f"text {i}" for i in range(100)]
    targets = np.arange(100)[:, None]
    picked, picked_targets, picked_auxiliary = train_subsample(texts, targets, 30, 1, targets * 2)
    assert len(picked) == 30 and [f"text {t}" for t in picked_targets[:, 0]] == picked
    assert np.array_equal(picked_auxiliary, picked_targets * 2)
    assert (
        train_subsample(texts, targets, 30, seed=1)[0] == picked != train_subsample(texts, targets, 30, 2)[0]
    )
    assert train_subsample(texts, targets, None, seed=1)[0] is texts


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_last(tmp_path: Path, store: dict[str, str]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    outputs = tmp_path / "outputs"
    common = [
        *JANITR_SLICE,
        *TINY_STUDENT,
        "trainer.max_epochs=50",
        "checkpoint.every_n_steps=5",
        *tracking_overrides(store),
        f"paths.output_dir={outputs}",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "toxmod.train", *common],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    deadline = time.time() + 300
    while not list(outputs.glob("train/*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # killed mid-training, after the first periodic checkpoint
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = next(outputs.glob("train/*/checkpoints/last.ckpt"))
    saved_step = read_checkpoint(last)["global_step"]
    assert saved_step >= 5 and (saved_step % 5 == 0 or saved_step % 24 == 0)  # periodic or epoch end
    target = saved_step + 7
    resumed = run_entry("train", *common, f"trainer.max_steps={target}", "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((last.parent.parent / "metrics.json").read_text())
    assert metrics["train/global_steps"] == target
    runs = stored_runs(store)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("interrupt_after", "presses", "saved_step", "run"),
    [
        (24, 1, 24, run_entry),  # the last batch of epoch 1: saved at the epoch end, after its validation
        (30, 1, 30, run_cli),  # mid-epoch, in a real process (a terminal's Ctrl-C)
        (30, 2, 24, run_entry),  # a second Ctrl-C stops at once: back to the epoch-end checkpoint
    ],
    ids=["epoch-end", "mid-epoch-process", "twice"],
)
def test_ctrl_c_saves_the_running_step_and_resume_equals_an_uninterrupted_run(
    tmp_path: Path,
    store: dict[str, str],
    sigint_restored: None,
    uninterrupted_run: TrainResult,
    interrupt_after: int,
    presses: int,
    saved_step: int,
    run,  # noqa: ANN001 - run_entry (this process) or run_cli (a new one)
) -> None:
    outputs = tmp_path / "outputs"
    common = [
        *REFERENCE,
        "checkpoint.every_n_steps=1000",  # no periodic checkpoint: 24 batches per epoch
        *tracking_overrides(store),
        f"paths.output_dir={outputs}",
        f"paths.multirun_dir={tmp_path / 'multirun'}",
    ]
    interrupted = run(
        "train",
        *common,
        "+callbacks.ctrl_c._target_=tests.callbacks.CtrlCAtStep",
        f"+callbacks.ctrl_c.step={interrupt_after}",
        f"+callbacks.ctrl_c.presses={presses}",
    )
    assert interrupted.returncode != 0 and "Ctrl-C: finishing this step" in interrupted.stderr
    run_dir = next(outputs.glob("train/*/checkpoints/last.ckpt")).parent.parent
    assert not (run_dir / "holdout_eval.json").exists()
    failed = (run_dir / "FAILED").read_text().strip()
    assert failed == f"interrupted (Ctrl-C); continue it with resume={run_dir}"
    assert _last_checkpoint(run_dir)["global_step"] == saved_step
    assert [r.info.status for r in stored_runs(store)] == ["KILLED"]

    target = [f"trainer.max_steps={REFERENCE_STEPS}"]
    resumed = train(compose_train([*common, *target, "resume=last"]), tmp_path / "unused")
    assert resumed.run_dir == run_dir
    assert_same_run(resumed, uninterrupted_run)
    assert [r.info.status for r in stored_runs(store)] == ["FINISHED"]


@pytest.mark.slow
def test_ctrl_c_stays_ignored_when_the_run_started_with_it_ignored(tmp_path: Path) -> None:
    """A background job starts with SIGINT ignored; training must not start reacting to it."""
    press = ["+callbacks.ctrl_c._target_=tests.callbacks.CtrlCAtStep", "+callbacks.ctrl_c.step=3"]
    cfg = compose_train([*JANITR_SLICE, *TINY_STUDENT, "tracking=none", "trainer.max_steps=6", *press])
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = train(cfg, tmp_path / "run")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.metrics["train/global_steps"] == 6 and not (tmp_path / "run" / "FAILED").exists()


@pytest.mark.slow
def test_scoring_stays_on_the_cpu_when_hardware_says_cpu(
    tiny_student_run: SharedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from toxmod.hardware import CPU

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    scorer = load_scorer(tiny_student_run.result.run_dir / "model")
    place(scorer, CPU)  # what hardware=cpu resolves to
    scores = scorer.predict_scores(["claim your airdrop now", "good morning"])
    assert scores.shape == (2, 2) and next(scorer.model.parameters()).device.type == "cpu"


@pytest.mark.slow
def test_a_diverging_run_stops_with_the_reason(tmp_path: Path, store: dict[str, str]) -> None:
    no_clipping = ["model.optimizer.lr=1e4", "trainer.gradient_clip_val=null", "trainer.max_epochs=1"]
    cfg = compose_train([*JANITR_SLICE, *TINY_STUDENT, *no_clipping, *tracking_overrides(store)])
    with pytest.raises(TrainingError, match=r"training diverged: train/loss is nan at step \d+"):
        train(cfg, tmp_path / "run")
    assert [r.info.status for r in stored_runs(store)] == ["FAILED"]
    assert "training diverged" in (tmp_path / "run" / "FAILED").read_text()


@pytest.mark.slow
def test_an_undefined_monitored_metric_stops_the_run(tmp_path: Path) -> None:
    # A valid split without a single scam post: recall at the FPR budget is undefined (it was 0.0,
    # and the checkpoint monitor then compared zeros).
    frame = janitr_frame()
    frame = frame[frame.split != "none"].sample(n=600, random_state=0)
    frame = frame[~((frame.split == "valid") & (frame.scam == "1"))]
    frame.to_csv(tmp_path / "no_valid_scam.csv", index=False)
    data = ["data=janitr", f"data.path={tmp_path / 'no_valid_scam.csv'}"]
    cfg = compose_train([*data, *TINY_STUDENT, "trainer.max_epochs=1", "tracking=none"])
    with pytest.raises(TrainingError, match="valid/scam/recall_at_fpr is NaN at step 2"):
        train(cfg, tmp_path / "run")


@pytest.mark.slow
def test_checkpoint_selection_uses_the_threshold_configs_fpr_budget(tmp_path: Path) -> None:
    from toxmod.thresholds import threshold_at_fpr

    budget = ["threshold=target_fpr", "threshold.per_label={scam: 0.2}"]  # topic_crypto keeps 0.02
    cfg = compose_train([*JANITR_SLICE, *TINY_STUDENT, "trainer.max_epochs=1", *budget, "tracking=none"])
    result = train(cfg, tmp_path / "run")
    run = load_run(result.run_dir)
    valid = run.part("valid")
    scores = run.scorer.predict_scores(list(valid.texts))  # the one validation's weights

    def recall_at(column: int, fpr: float) -> float:
        return threshold_at_fpr(scores[:, column], valid.targets[:, column].astype(bool), fpr)[1][
            "fit_recall"
        ]

    assert recall_at(0, 0.2) != recall_at(0, 0.02)
    # Lightning keeps the monitored value as float32.
    assert result.metrics["valid/best_monitored"] == pytest.approx(recall_at(0, 0.2), abs=1e-6)


def test_weight_averaging_follows_the_weights_until_it_starts(tmp_path: Path, store: dict[str, str]) -> None:
    """``model.weight_averaging``: validations before ``averaging_start`` score the current weights
    (the same curve as without averaging); after it, the averaged network -- which is what is kept."""

    def curve(*overrides: str) -> tuple[list[float], TrainResult]:
        settings = [
            *JANITR_SLICE,
            *TINY_STUDENT,
            "trainer.max_epochs=4",
            "checkpoint.monitor=valid/mean_roc_auc",
        ]
        cfg = compose_train([*settings, *overrides, *tracking_overrides(store)])
        result = train(cfg, tmp_path / "-".join(overrides or ("plain",)))
        history = MlflowClient(store["uri"]).get_metric_history(result.run_id, "valid/mean_roc_auc")
        return [p.value for p in sorted(history, key=lambda p: (p.timestamp, p.step))], result

    plain, _ = curve()
    averaged, result = curve("model.weight_averaging=swa", "model.averaging_start=0.5")
    per_epoch, after_fit = averaged[:4], averaged[4:]
    assert per_epoch[:2] == pytest.approx(plain[:2], abs=1e-9)  # steps 24, 48: before the start
    assert per_epoch[2:] != pytest.approx(plain[2:4], abs=1e-6)  # steps 72, 96: the average is scored
    # the kept model is the checkpoint of the best validation, averaged weights included: re-scored on
    # valid after the fit, the same value
    assert result.metrics["valid/best_monitored"] == pytest.approx(max(per_epoch))
    assert after_fit[0] == pytest.approx(max(per_epoch), abs=1e-6)
    with pytest.raises(ConfigError, match="model.weight_averaging=mean; expected one of none, ema, swa"):
        train(compose_train([*JANITR_SLICE, *TINY_STUDENT, "model.weight_averaging=mean"]), tmp_path / "bad")
