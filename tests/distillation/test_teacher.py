"""Students learning from a finished run: the teacher's outputs calibrated, cached once, checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import JANITR_SLICE, TINY_STUDENT, compose_train, tracking_overrides
from toxmod.config import compose_config, spec_of
from toxmod.data import build_dataset
from toxmod.distillation.teacher import check_seeds
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.spec import DataSpec, SplitSpec
from toxmod.splits import prepare_split
from toxmod.stages.train import TrainResult, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A TF-IDF teacher: any model kind teaches through the scoring interface."""
    root = tmp_path_factory.mktemp("teacher")
    overrides = [
        *JANITR_SLICE,
        "model=tfidf_logreg",
        "model.max_features=5000",
        "tracking=none",
        "bootstrap=0",
    ]
    return train(compose_train(overrides), root / "run")


def student(teacher_run: TrainResult, tmp_path: Path, *extra: str) -> list[str]:
    return [
        *JANITR_SLICE,
        *TINY_STUDENT,
        "trainer.max_epochs=1",
        "distill=kd",
        f"teacher.run={teacher_run.run_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


def test_a_student_learns_from_a_cached_calibrated_teacher(
    teacher: TrainResult, tmp_path: Path, store: dict[str, str]
) -> None:
    first = train(compose_train(student(teacher, tmp_path, *tracking_overrides(store))), tmp_path / "a")
    assert first.metrics["teacher/cache_built"] == 1.0
    before, after = (first.metrics[f"teacher/valid_ece_{w}_calibration"] for w in ("before", "after"))
    assert after < before  # temperature scaling fitted on valid lowers the teacher's valid ECE
    [entry] = [p for p in (tmp_path / "cache" / "teacher").iterdir() if p.is_dir()]
    manifest = json.loads((entry / "manifest.json").read_text())
    assert (
        manifest["shape"] == [377, 2]
        and manifest["inputs"]["split_sha256"]
        == json.loads((teacher.run_dir / "holdout_eval.json").read_text())["split_sha256"]
    )
    calibration = json.loads((entry / "calibration.json").read_text())
    assert set(calibration["temperatures"]) == {"scam", "topic_crypto"}
    run = MlflowClient(store["uri"]).get_run(first.run_id)
    assert run.data.tags["distill.cache_key"] == manifest["key"]
    kd_curve = MlflowClient(store["uri"]).get_metric_history(first.run_id, "train/loss/kd")
    assert kd_curve and all(point.value >= 0 for point in kd_curve)

    # Another point of a sweep reads the cache: the teacher does not run again.
    second = train(
        compose_train(student(teacher, tmp_path, "distill.alpha=0.2", "tracking=none")), tmp_path / "b"
    )
    assert second.metrics["teacher/cache_built"] == 0.0
    assert second.metrics["holdout/mean_roc_auc"] != first.metrics["holdout/mean_roc_auc"]  # alpha matters

    # A cache file changed after it was written is refused, never used.
    logits = np.load(entry / "logits.npy")
    np.save(entry / "logits.npy", logits + 1)
    with pytest.raises(
        DamagedFileError, match=r"logits.npy: changed since it was written \(SHA-256 in .*manifest.json\)"
    ):
        train(compose_train(student(teacher, tmp_path, "tracking=none")), tmp_path / "c")


def test_a_teacher_on_another_split_is_refused(teacher: TrainResult, tmp_path: Path) -> None:
    overrides = student(teacher, tmp_path, "data.max_rows=500", "tracking=none")
    expected = r"teacher.run=.*: that run was trained on split \w{12}, this run uses split \w{12}"
    with pytest.raises(ConfigError, match=expected):
        train(compose_train(overrides), tmp_path / "run")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=tfidf_logreg", "a tfidf_logreg model cannot learn from a teacher"),
        ("distill.alpha=1.5", r"distill.alpha=1.5: expected a weight in \[0, 1\]"),
        ("distill.temperature=0", "distill.temperature=0.0: expected a temperature > 0"),
    ],
)
def test_distillation_settings_are_checked_before_any_data(
    tmp_path: Path, override: str, message: str
) -> None:
    overrides = ["data=csv", f"data.path={tmp_path / 'never-read.csv'}", "data.label_columns=[scam]"]
    model = [override] if override.startswith("model=") else [*TINY_STUDENT, override]
    overrides += [*model, "distill=kd", f"teacher.run={tmp_path}", "tracking=none"]
    with pytest.raises(ConfigError, match=message):
        train(compose_train(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_single_seed_neural_teacher_on_small_data_is_refused(tiny_student_run, tmp_path: Path) -> None:  # noqa: ANN001
    overrides = student(tiny_student_run.result, tmp_path, "tracking=none")
    expected = r"a neural teacher from 1 seed\(s\) on 377 train rows \(<= 5,000\) varies too much"
    with pytest.raises(ConfigError, match=expected):
        train(compose_train(overrides), tmp_path / "run")
    check_seeds("t", networks=1, train_rows=377, allowed=True)  # distill.allow_single_seed=true
    check_seeds("t", networks=3, train_rows=377, allowed=False)  # an ensemble of three seeds
    check_seeds("t", networks=1, train_rows=50_000, allowed=False)  # plenty of data


@pytest.mark.parametrize(("layers", "hidden"), [(3, 48), (1, 16)], ids=["deeper", "shallower"])
def test_hidden_state_distillation_maps_any_student_depth(
    tiny_student_run,  # noqa: ANN001
    tmp_path: Path,
    store: dict[str, str],
    layers: int,
    hidden: int,
) -> None:
    """A student deeper and one shallower (and wider / narrower) than the 2-layer, width-32 teacher,
    learning also from unlabeled transfer texts, of which the evaluation texts are dropped."""
    teacher_run = tiny_student_run.result
    corpus = tmp_path / "unlabeled.txt"
    cfg = compose_config("train", list(JANITR_SLICE))
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    evaluation = [str(t) for t in split.part(dataset, "holdout").texts[:3]]
    fresh = [f"free crypto giveaway number {i}, click the link" for i in range(20)]
    corpus.write_text("\n".join([*fresh, *evaluation]) + "\n")
    overrides = student(
        teacher_run,
        tmp_path,
        "distill=kd_hidden",
        "distill.allow_single_seed=true",
        f"distill.transfer=[train,{corpus}]",
        f"student.layers={layers}",
        f"student.hidden={hidden}",
        *tracking_overrides(store),
    )
    result = train(compose_train(overrides), tmp_path / "run")
    assert result.metrics["teacher/transfer_texts"] == 377 + 20
    assert result.metrics["teacher/transfer_removed_evaluation_texts"] == 3
    assert result.metrics["train/unlabelled_transfer_texts"] == 20
    assert result.metrics["train/rows_used"] == 377
    [entry] = [p for p in (tmp_path / "cache" / "teacher").iterdir() if p.is_dir()]
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["inputs"]["hidden_layers"] == [1, 2] and "hidden.npy" in manifest["files"]
    assert np.load(entry / "hidden.npy").shape == (397, 2, 32)
    assert np.isfinite(result.metrics["holdout/mean_roc_auc"])
    curve = MlflowClient(store["uri"]).get_metric_history(result.run_id, "train/loss/hidden")
    assert curve and all(point.value > 0 for point in curve)


def _build_cache(teacher_dir: str, cache_dir: str, barrier, results) -> None:  # noqa: ANN001
    """One sweep job's view: wait for the other job, then ask for the teacher's outputs."""
    from omegaconf import OmegaConf

    from toxmod.distillation import teacher_targets
    from toxmod.runs.store import NoStore

    try:
        cfg = compose_config("train", list(JANITR_SLICE))
        dataset = build_dataset(spec_of(DataSpec, cfg.data))
        split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
        split_sha256 = json.loads((Path(teacher_dir) / "holdout_eval.json").read_text())["split_sha256"]
        settings = OmegaConf.create({"temperature": 2.0, "alpha": 0.5})
        texts = list(split.part(dataset, "train").texts)
        barrier.wait(timeout=120)
        targets, entry = teacher_targets(
            settings, teacher_dir, texts, split_sha256, NoStore(), Path(cache_dir)
        )
        results.put((entry.built, float(targets.logits.sum())))
    except Exception as error:  # reported to the test instead of a silent child death
        results.put((repr(error), None))


def test_two_processes_build_one_cache_once(teacher: TrainResult, tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    args = (str(teacher.run_dir), str(tmp_path / "cache"), barrier, results)
    jobs = [context.Process(target=_build_cache, args=args) for _ in range(2)]
    for job in jobs:
        job.start()
    outcomes = [results.get(timeout=180) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
    assert all(value is not None for _, value in outcomes), outcomes
    assert sorted(built for built, _ in outcomes) == [False, True]  # one built it, the other waited
    assert outcomes[0][1] == outcomes[1][1]  # and read the same logits
    assert [p.name for p in (tmp_path / "cache" / "teacher").iterdir() if p.is_dir()] != []


def test_hidden_state_distillation_needs_a_transformer_teacher(teacher: TrainResult, tmp_path: Path) -> None:
    overrides = student(teacher, tmp_path, "distill=kd_hidden", "tracking=none")
    with pytest.raises(
        ConfigError, match=r"distill=kd_hidden: the teacher .* \(a tfidf_logreg model\) has no"
    ):
        train(compose_train(overrides), tmp_path / "run")
    overrides = student(teacher, tmp_path, "distill.transfer=[ruddit]", "tracking=none")
    with pytest.raises(ConfigError, match=r"distill.transfer=\['ruddit'\]: starts with train"):
        train(compose_train(overrides), tmp_path / "run2")
