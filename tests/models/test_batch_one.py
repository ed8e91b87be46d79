"""Scoring one text at a time: the classical models' lean path gives the batch path's scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from tests.helpers import TINY_XGBOOST, compose_train
from toxmod.config import instantiate_component, spec_of
from toxmod.data import build_dataset
from toxmod.models.text_features import FittedTfidf, text_statistics
from toxmod.models.trees import TreeEnsemble
from toxmod.spec import DataSpec


def _sparse_with_missing(rng: np.random.Generator, rows: int, columns: int) -> sparse.csr_matrix:
    """Random features where most entries are absent (missing to XGBoost), some stored as 0."""
    dense = rng.normal(size=(rows, columns)).astype(np.float32)
    dense[rng.random((rows, columns)) < 0.6] = 0.0
    matrix = sparse.csr_matrix(dense)
    explicit_zero = rng.random(matrix.nnz) < 0.05
    matrix.data[explicit_zero] = 0.0  # stored zeros are values, not missing
    return matrix


@pytest.mark.data_free
@pytest.mark.parametrize("classes", [2, 3])
def test_the_numpy_tree_walk_gives_xgboosts_probabilities(classes: int) -> None:
    from xgboost import XGBClassifier

    rng = np.random.default_rng(0)
    train = _sparse_with_missing(rng, 400, 30)
    signal = np.asarray(train[:, :3].sum(axis=1)).ravel()
    targets = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    model = XGBClassifier(n_estimators=40, max_depth=5, learning_rate=0.3, n_jobs=1, random_state=0)
    model.fit(train, targets)
    test = _sparse_with_missing(rng, 200, 30)
    trees = TreeEnsemble.from_booster(model.get_booster())
    assert trees is not None and trees.depth == 5

    expected = model.get_booster().inplace_predict(test)
    walked = trees.predict(test)
    assert walked.shape == expected.shape
    assert np.abs(walked - expected).max() <= 1e-6
    # one row at a time too (the serving case)
    one_by_one = np.concatenate([trees.predict(test[i]) for i in range(20)])
    assert np.abs(one_by_one - expected[:20]).max() <= 1e-6


@pytest.mark.data_free
def test_the_lean_tfidf_transform_is_scikit_learns() -> None:
    texts = [
        "Free $BTC giveaway!! send 0.1 ETH to claim",
        "ok   see you at 5",
        "Ünïcode çafé naïve — déjà vu",
        "",
        "a",
        "gm gm gm wagmi to the moon 🚀🚀",
    ]
    for analyzer, ngrams in (("word", (1, 3)), ("char_wb", (2, 5)), ("char", (1, 3))):
        vectorizer = TfidfVectorizer(
            analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, dtype=np.float32
        ).fit(texts * 2 + ["more words to see", "gm"])
        assert FittedTfidf.covers(vectorizer)
        lean = FittedTfidf(vectorizer).transform(texts)
        reference = vectorizer.transform(texts)
        assert np.array_equal(lean.indptr, reference.indptr), analyzer
        assert np.array_equal(lean.indices, reference.indices), analyzer
        assert np.array_equal(lean.data, reference.data), analyzer  # bit-identical values
        assert lean.dtype == reference.dtype


def _reference_features(featurizer, texts: list[str]) -> sparse.csr_matrix:  # noqa: ANN001
    """The features as scikit-learn's own transforms and ``sparse.hstack`` build them."""
    parts = [featurizer.word.transform(texts)]
    if featurizer.char is not None:
        parts.append(featurizer.char.transform(texts))
    parts.append(sparse.csr_matrix(text_statistics(texts).astype(np.float32)))
    return sparse.hstack(parts, format="csr")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "model"),
    [
        ("janitr", TINY_XGBOOST),
        ("davidson", TINY_XGBOOST),
        ("janitr", ["model=tfidf_logreg", "model.max_features=20000"]),
        ("davidson", ["model=tfidf_logreg", "model.max_features=20000"]),
    ],
    ids=["xgboost-multilabel", "xgboost-levels", "logreg-multilabel", "logreg-levels"],
)
def test_one_text_at_a_time_scores_as_the_batch_and_as_scikit_learn_xgboost(
    data: str, model: list[str]
) -> None:
    cfg = compose_train([f"data={data}", *model])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    order = np.random.default_rng(0).permutation(len(dataset))
    train, test = dataset.subset(order[:900]), dataset.subset(order[900:1060])
    scorer = instantiate_component(cfg.model, "model")
    scorer.fit(list(train.texts), train.targets, dataset.scheme)
    texts = list(test.texts)

    features = scorer.featurizer.transform(texts)
    reference = _reference_features(scorer.featurizer, texts)
    assert (features != reference).nnz == 0 and np.array_equal(features.indices, reference.indices)

    # scikit-learn's and XGBoost's own predict_proba on those features: the scores before this path
    reference_scores = np.concatenate(
        [
            (
                estimator.booster.predict_proba(
                    estimator.tree_features(reference, estimator.linear.decision_function(reference))
                )
                if hasattr(estimator, "booster")
                else estimator.predict_proba(reference)
            )[:, slice(1, 2) if columns == 1 else slice(None)]
            for estimator, columns in zip(scorer.estimators, scorer.task_columns)
        ],
        axis=1,
    )
    batch = scorer.predict_scores(texts)
    one_at_a_time = np.concatenate([scorer.predict_scores([text]) for text in texts])
    assert np.array_equal(batch, reference_scores)  # the batch path is bit-identical
    assert np.abs(one_at_a_time - batch).max() <= 1e-6  # the tree walk: float32 rounding at most


@pytest.mark.data_free
def test_token_budget_batches_cover_every_row_within_the_budget() -> None:
    from toxmod.models.token_batches import token_budget_batches

    lengths = np.array([5, 60, 7, 128, 30, 31, 8, 9, 100, 6])
    batches = token_budget_batches(lengths, batch_size=4, max_tokens=120)
    assert sorted(row for batch in batches for row in batch) == list(range(len(lengths)))
    for batch in batches:
        widths = lengths[batch]
        assert list(widths) == sorted(widths) and len(batch) <= 4
        assert len(batch) * widths.max() <= 120 or len(batch) == 1  # a text over the budget goes alone
    assert [list(lengths[b]) for b in batches][0] == [5, 6, 7, 8]
