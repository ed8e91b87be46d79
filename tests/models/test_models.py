"""Every model kind behind the scoring interface: trains on real slices, scores, round-trips bit-exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.helpers import LEARNING_TINY_STUDENT, TINY_XGBOOST, compose_train, janitr_frame
from toxmod.config import instantiate_component, spec_of
from toxmod.data import build_dataset
from toxmod.errors import ToxmodError
from toxmod.models import SCORER_REGISTRY, load_scorer
from toxmod.spec import DataSpec
from toxmod.stages.train import train

MODELS = {
    "tfidf_xgboost": TINY_XGBOOST,
    "tfidf_logreg": ["model=tfidf_logreg", "model.max_features=20000"],
    "fasttext": ["model=fasttext", "model.epoch=15", "model.dim=32", "model.quantize.cutoff=5000"],
    "transformer": LEARNING_TINY_STUDENT,
}


def train_and_score(model: str, data: str, *data_overrides: str):  # noqa: ANN201
    cfg = compose_train([f"data={data}", *data_overrides, *MODELS[model]])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(dataset))
    train, test = dataset.subset(order[:900]), dataset.subset(order[900:1300])
    scorer = instantiate_component(cfg.model, "model")
    scorer.fit(list(train.texts), train.targets, dataset.scheme)
    return scorer, test, scorer.predict_scores(list(test.texts))


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_multilabel_models_learn_janitr_and_round_trip(model: str, tmp_path: Path) -> None:
    scorer, test, scores = train_and_score(model, "janitr")
    assert scores.shape == (len(test), 2) and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(test.targets[:, 1], scores[:, 1]) > 0.8  # topic_crypto is easy to rank
    reloaded = load_scorer(scorer.save(tmp_path / model))
    assert np.array_equal(reloaded.predict_scores(list(test.texts)), scores)
    assert reloaded.scheme.describe() == scorer.scheme.describe()
    if model == "fasttext":  # what is scored and saved is the quantized .ftz export
        assert scorer.quantized_size_bytes < scorer.full_size_bytes


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_levels_models_output_level_probabilities(model: str, tmp_path: Path) -> None:
    scorer, test, scores = train_and_score(model, "davidson")
    assert scores.shape == (len(test), 3)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    neither = test.targets == 0
    assert roc_auc_score(neither, scores[:, 0]) > 0.75
    reloaded = load_scorer(scorer.save(tmp_path / model))
    assert np.array_equal(reloaded.predict_scores(list(test.texts)), scores)


def test_every_registered_kind_is_trained_here_and_unknown_dirs_are_refused(tmp_path: Path) -> None:
    # the tests above cover every kind; ensembles (built from finished runs) and temperature-scaled
    # runs (calibration=temperature) in tests/test_ensemble.py, ONNX exports in tests/test_export.py,
    # causal LMs (zero/few-shot, servers) in tests/llm/
    assert set(MODELS) | {"ensemble", "temperature_scaled", "onnx", "llm"} == set(SCORER_REGISTRY)
    with pytest.raises(ToxmodError, match="is not a saved toxmod model"):
        load_scorer(tmp_path)


def ham_spam_csv(tmp_path: Path) -> Path:
    """A binary task with a string label column: janitr's scam bucket as ham / spam."""
    frame = janitr_frame()
    frame = frame[frame.split != "none"].sample(n=900, random_state=0)
    frame["label"] = np.where(frame.scam == "1", "spam", "ham")
    path = tmp_path / "ham_spam.csv"
    frame[["id", "text", "label", "scam"]].to_csv(path, index=False)
    return path


BINARY_SCHEMES = {
    "two_levels": ["data.scheme=levels", "data.label_column=label", "data.levels=[ham,spam]"],
    "one_label": ["data.scheme=multilabel", "data.label_columns=[scam]"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "scheme"),
    [("tfidf_xgboost", "two_levels"), ("tfidf_logreg", "two_levels"), ("fasttext", "two_levels")]
    + [("tfidf_logreg", "one_label")],
)
def test_a_binary_task_works_as_two_levels_and_as_one_label(tmp_path: Path, model: str, scheme: str) -> None:
    overrides = ["data=csv", f"data.path={ham_spam_csv(tmp_path)}", "data.id_column=id"]
    overrides += [*BINARY_SCHEMES[scheme], "split=stratified", *MODELS[model], "tracking=none", "bootstrap=0"]
    result = train(compose_train(overrides), tmp_path / "run")
    scores = load_scorer(tmp_path / "run" / "model").predict_scores(["free airdrop, claim now", "nice day"])
    if scheme == "two_levels":  # one probability per level, and one threshold: P(level >= spam)
        assert scores.shape == (2, 2) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
        assert "holdout/at_least_spam/recall" in result.metrics and "holdout/accuracy" in result.metrics
        assert result.metrics["calib/at_least_spam/fpr"] <= 0.02
    else:
        assert scores.shape == (2, 1)
        assert result.metrics["calib/scam/fpr"] <= 0.02 and "holdout/exact_match" in result.metrics
    assert result.metrics["holdout/mean_roc_auc"] > 0.75
