"""Every model kind behind the scoring interface: trains on real slices, scores, round-trips bit-exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.helpers import TINY_XGBOOST, compose_train
from toxmod.config import instantiate_component
from toxmod.data import build_dataset
from toxmod.errors import ToxmodError
from toxmod.models import SCORER_REGISTRY, load_scorer

MODELS = {
    "tfidf_xgboost": TINY_XGBOOST,
    "tfidf_logreg": ["model=tfidf_logreg", "model.max_features=20000"],
    "fasttext": ["model=fasttext", "model.epoch=15", "model.dim=32", "model.quantize.cutoff=5000"],
    "transformer": [
        "model=student",
        "student=tiny",
        "student.hidden=64",
        "student.intermediate=128",
        "model.max_epochs=6",
        "model.optimizer.lr=1e-3",
        "model.max_length=64",
    ],
}


def train_and_score(model: str, data: str, *data_overrides: str):  # noqa: ANN201
    cfg = compose_train([f"data={data}", *data_overrides, *MODELS[model]])
    dataset = build_dataset(cfg.data)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(dataset))
    train, test = dataset.subset(order[:900]), dataset.subset(order[900:1300])
    scorer = instantiate_component(cfg.model, "model")
    scorer.fit(list(train.texts), train.targets, dataset.scheme)
    return scorer, test, scorer.predict_scores(list(test.texts))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_multilabel_models_learn_janitr_and_round_trip(model: str, tmp_path: Path) -> None:
    scorer, test, scores = train_and_score(model, "janitr")
    assert scores.shape == (len(test), 2) and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(test.targets[:, 1], scores[:, 1]) > 0.8  # topic_crypto is easy to rank
    reloaded = load_scorer(scorer.save(tmp_path / model))
    assert np.array_equal(reloaded.predict_scores(list(test.texts)), scores)
    assert reloaded.scheme.describe() == scorer.scheme.describe()


@pytest.mark.parametrize("model", sorted(MODELS))
def test_levels_models_output_level_probabilities(model: str, tmp_path: Path) -> None:
    scorer, test, scores = train_and_score(model, "davidson")
    assert scores.shape == (len(test), 3)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    neither = test.targets == 0
    assert roc_auc_score(neither, scores[:, 0]) > 0.75
    reloaded = load_scorer(scorer.save(tmp_path / model))
    assert np.array_equal(reloaded.predict_scores(list(test.texts)), scores)


def test_fasttext_quantized_export_is_smaller() -> None:
    scorer, _, _ = train_and_score("fasttext", "janitr")
    assert scorer.quantized_size_bytes < scorer.full_size_bytes


def test_registry_names_every_model_config_and_rejects_unknown_dirs(tmp_path: Path) -> None:
    assert set(MODELS) == set(SCORER_REGISTRY)
    with pytest.raises(ToxmodError, match="is not a saved toxmod model"):
        load_scorer(tmp_path)
