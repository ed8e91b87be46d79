"""``toxmod.export``: a transformer run as ONNX fp32 + int8, a parity gate, and a new run scored by
ONNX Runtime that ``evaluate`` and ``predict`` treat like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import JANITR_SLICE, LEARNING_TINY_STUDENT, compose_train, run_entry, tracking_overrides
from toxmod.config import compose_config
from toxmod.errors import ConfigError
from toxmod.hardware import resolve_hardware
from toxmod.models import FitContext, ValidationData, load_scorer
from toxmod.models.calibrated import TemperatureScaled
from toxmod.models.onnx_export import count_ops
from toxmod.models.onnx_model import FORMATS, OnnxScorer
from toxmod.models.temperature import Temperatures
from toxmod.runs.opening import load_run
from toxmod.spec import HardwareSpec
from toxmod.stages.evaluate import evaluate_run
from toxmod.stages.export import export
from toxmod.stages.predict import Predictor
from toxmod.stages.train import TrainResult, train

pytestmark = pytest.mark.slow

# A tiny student that learns something (scores spread out, so int8 rounding moves few of them
# across a threshold).
LEARNING_STUDENT = [
    "data=janitr",
    "data.max_rows=900",
    *LEARNING_TINY_STUDENT,
    "hardware.num_workers=0",
    "bootstrap=0",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, dict[str, str]]:
    root = tmp_path_factory.mktemp("export-source")
    store = {"uri": f"sqlite:///{root / 'mlruns.db'}", "artifact_root": str(root / "mlartifacts")}
    result = train(compose_train([*LEARNING_STUDENT, *tracking_overrides(store)]), root / "run")
    return result, store


def _export_config(run: Path, store: dict[str, str] | None, tmp_path: Path, *overrides: str):  # noqa: ANN202
    tracking = tracking_overrides(store) if store else ["tracking=none"]
    return compose_config("export", [f"run={run}", *tracking, f"paths.output_dir={tmp_path}", *overrides])


def test_export_passes_parity_quantizes_and_records_a_new_run(source, tmp_path: Path) -> None:  # noqa: ANN001
    result, store = source
    # A tiny model's scores sit close together (within a few 0.01 of 0.5), so int8 rounding moves a
    # few valid texts across a threshold: the flip limit is looser here than the default 1%.
    config = _export_config(result.run_dir, store, tmp_path, "export.max_flip_rate_int8=0.1")
    exported = export(config, tmp_path / "export")
    metrics = exported.metrics

    assert metrics["export/fp32_max_abs_diff"] <= 1e-4
    assert metrics["export/int8_max_abs_diff"] <= 1e-2
    assert metrics["export/int8_flip_rate"] <= 0.1
    model_dir = exported.run_dir / "model"
    fp32, int8 = model_dir / FORMATS["fp32"], model_dir / FORMATS["int8"]
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size
    # dynamic quantization turns the weight MatMuls (q, k, v, output, two feed-forward per layer of the
    # 2-layer student) into integer MatMuls; the fp32 graph has none
    assert count_ops(int8).get("MatMulInteger", 0) >= 12
    assert "MatMulInteger" not in count_ops(fp32)
    # what the run scores with is the int8 graph and the tokenizer, not the fp32 file beside it
    assert metrics["model_size_bytes"] < int8.stat().st_size + 200_000

    source_record = json.loads((result.run_dir / "holdout_eval.json").read_text())
    export_record = json.loads((exported.run_dir / "holdout_eval.json").read_text())
    assert export_record["split_sha256"] == source_record["split_sha256"]
    run = MlflowClient(store["uri"]).get_run(exported.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["source_run_id"] == result.run_id
    assert run.data.tags["split_sha256"] == source_record["split_sha256"]
    assert "export/int8_max_abs_diff" in run.data.metrics

    # the int8 thresholds are its own, fitted on calib
    thresholds = json.loads((exported.run_dir / "thresholds.json").read_text())
    assert thresholds["fit_split"] == "calib" and set(thresholds["thresholds"]) == {"scam", "topic_crypto"}

    # an ONNX run is a run: evaluate reproduces it, predict scores with it
    evaluation = evaluate_run(exported.run_dir, bootstrap=0)
    assert evaluation.reproduced
    loaded = load_run(exported.run_dir)
    assert isinstance(loaded.scorer, OnnxScorer) and loaded.scorer.score_with == "int8"
    texts = ["free airdrop, connect your wallet to claim", "see you at lunch"]
    records = Predictor.open(exported.run_dir).predict(texts)
    torch_scores = load_scorer(result.run_dir / "model").predict_scores(texts)
    onnx_scores = np.array([[r["scores"]["scam"], r["scores"]["topic_crypto"]] for r in records])
    assert np.abs(onnx_scores - torch_scores).max() < 0.02
    # token-budget batches (sorted by length, at most export.batch_tokens padded tokens) score the fp32
    # graph as one padded batch per call does, and the transformers-free tokenizer gives the same ids
    fp32_scorer = load_scorer(exported.run_dir / "model")
    fp32_scorer.score_with = "fp32"
    valid = list(loaded.part("valid").texts)[:64]
    budgeted = fp32_scorer.predict_scores(valid)
    fp32_scorer.batch_tokens = 0
    assert np.abs(fp32_scorer.predict_scores(valid) - budgeted).max() < 1e-6
    # threads: with 2, a call's batches run side by side on one thread each and a call of one long
    # batch runs on both threads, with the same scores bit for bit as on 1 thread
    int8_scorer = load_scorer(exported.run_dir / "model")
    scores = {}
    for threads in (1, 2):
        int8_scorer.place_on(resolve_hardware(HardwareSpec.of({"accelerator": "cpu", "threads": threads})))
        int8_scorer.batch_tokens = 256  # several batches
        several = int8_scorer.predict_scores(valid)
        int8_scorer.batch_tokens = 100_000  # one batch of 64 texts
        scores[threads] = (several, int8_scorer.predict_scores(valid))
    assert all(np.array_equal(a, b) for a, b in zip(scores[1], scores[2]))
    from transformers import PreTrainedTokenizerFast

    reference = PreTrainedTokenizerFast.from_pretrained(str(exported.run_dir / "model"))
    ids = reference(valid, truncation=True, max_length=48)["input_ids"]
    assert fp32_scorer.tokenizer(valid, truncation=True, max_length=48)["input_ids"] == ids


def test_a_failed_parity_check_exits_1_with_the_numbers_and_a_failed_run(
    tiny_student_run,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    # The 2-epoch tiny student scores every text within ~1e-4 of 0.5, where its thresholds also sit:
    # int8 rounding moves most scores across them, which is exactly what the gate is for.
    import tempfile

    store = tiny_student_run.store
    run_dir = tmp_path / "failed-export"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    previous, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        outcome = run_entry(
            "export",
            f"run={tiny_student_run.result.run_dir}",
            *tracking_overrides(store),
            f"hydra.run.dir={run_dir}",
        )
    finally:
        tempfile.tempdir = previous
    assert outcome.returncode == 1, outcome.stderr
    # nothing half-made is left: no export folder in the temporary directory, no model folder
    assert list(scratch.glob("toxmod-*")) == [] and not (run_dir / "model").exists()
    assert not list(tmp_path.rglob("*.partial"))
    message = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "int8 flips the decisions of" in message[0]
    assert "export.max_flip_rate_int8=0.01" in message[0] and "max |score difference|" in message[0]
    assert (run_dir / "FAILED").is_file() and not (run_dir / "holdout_eval.json").exists()
    tracking = json.loads((run_dir / "tracking.json").read_text())
    assert MlflowClient(store["uri"]).get_run(tracking["run_id"]).info.status == "FAILED"

    # allow_parity_failure=true records it anyway, with the numbers
    kept = run_entry(
        "export",
        f"run={tiny_student_run.result.run_dir}",
        *tracking_overrides(store),
        f"hydra.run.dir={tmp_path / 'kept'}",
        "export.allow_parity_failure=true",
    )
    assert kept.returncode == 0, kept.stderr
    metrics = json.loads((tmp_path / "kept" / "metrics.json").read_text())
    assert metrics["export/int8_flip_rate"] > 0.01

    # shipping fp32: the int8 gate does not apply (its numbers are still recorded)
    fp32 = run_entry(
        "export",
        f"run={tiny_student_run.result.run_dir}",
        *tracking_overrides(store),
        f"hydra.run.dir={tmp_path / 'fp32'}",
        "export.score_with=fp32",
    )
    assert fp32.returncode == 0, fp32.stderr
    assert json.loads((tmp_path / "fp32" / "metrics.json").read_text())["export/int8_flip_rate"] > 0.01

    # on request, gc deletes the failed run's folder (its MLflow record stays)
    gc = run_entry("runs", "gc", "remove_failed=true", *tracking_overrides(store))
    assert gc.returncode == 0 and f"removed the folder of a failed run: {run_dir}" in gc.stdout
    assert not run_dir.exists() and (tmp_path / "kept" / "holdout_eval.json").is_file()


def test_a_calibrated_source_keeps_its_temperatures(source) -> None:  # noqa: ANN001
    result, _ = source
    loaded = load_run(result.run_dir)
    valid = loaded.part("valid")
    temperatures = Temperatures(["scam", "topic_crypto"], [2.0, 0.5])
    calibrated = TemperatureScaled(loaded.scorer, temperatures)
    exporter = OnnxScorer(source="calibrated", score_with="fp32")
    exporter.attach_members([calibrated])
    context = FitContext(validation=ValidationData(list(valid.texts), valid.targets))
    exporter.fit([], np.zeros((0, 2)), loaded.dataset.scheme, context)
    texts = list(valid.texts)[:50]
    assert np.abs(exporter.predict_scores(texts) - calibrated.predict_scores(texts)).max() < 1e-5
    assert exporter.fit_report.metrics["export/fp32_max_abs_diff"] < 1e-5


def test_only_transformer_runs_are_exported(tmp_path: Path) -> None:
    classical = train(
        compose_train([*JANITR_SLICE, "model=tfidf_logreg", "tracking=none", "bootstrap=0"]), tmp_path / "lr"
    )
    with pytest.raises(ConfigError, match="a tfidf_logreg model; ONNX export covers transformer runs"):
        export(_export_config(classical.run_dir, None, tmp_path), tmp_path / "e")
