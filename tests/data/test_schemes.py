"""Label schemes: decisions, predictions and report views (golden values worked by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme, scheme_from_description

pytestmark = pytest.mark.data_free


def test_multilabel_predicts_per_label_and_derives_the_none_label() -> None:
    scheme = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.2]])
    predictions = scheme.predict(scores, np.array([0.5, 0.5]))
    assert predictions.tolist() == [[1, 0], [0, 1], [0, 0]]
    view = scheme.report_view(scores, np.array([[1, 0], [0, 0], [0, 0]]), predictions)
    assert view.names == ["scam", "topic_crypto", "clean"]
    assert view.predictions[:, 2].tolist() == [False, False, True]
    assert view.targets[:, 2].tolist() == [False, True, True]
    # The derived label's score is 1 - the highest label score.
    assert view.scores[:, 2] == pytest.approx([0.1, 0.2, 0.8])
    assert scheme.primary_label == "scam"


def test_levels_thresholds_act_on_cumulative_scores() -> None:
    scheme = LevelsScheme(["safe", "mild", "severe"])
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.7, 0.25, 0.05]])
    # P(level >= mild), P(level >= severe)
    assert scheme.decision_scores(scores) == pytest.approx(np.array([[0.5, 0.2], [0.9, 0.8], [0.3, 0.05]]))
    assert scheme.decision_names == ["at_least_mild", "at_least_severe"]
    # Highest passed cut wins: row 0 passes mild only, row 1 both, row 2 none.
    assert scheme.predict(scores, np.array([0.4, 0.5])).tolist() == [1, 2, 0]
    assert scheme.decision_targets(np.array([0, 1, 2])).tolist() == [
        [False, False],
        [True, False],
        [True, True],
    ]
    assert scheme.headline(np.array([1, 2, 1]), np.array([1, 2, 0])) == {"accuracy": pytest.approx(2 / 3)}


def test_schemes_round_trip_through_their_description() -> None:
    for scheme in (MultiLabelScheme(["a", "b"], "none", "b"), LevelsScheme(["x", "y", "z"])):
        rebuilt = scheme_from_description(scheme.describe())
        assert rebuilt.describe() == scheme.describe()
    with pytest.raises(ValueError, match="unknown label scheme"):
        scheme_from_description({"kind": "regression"})


def test_training_tasks_follow_the_scheme() -> None:
    multi = MultiLabelScheme(["a", "b"]).training_tasks(np.array([[1, 0], [0, 1]]))
    assert [(t.name, t.n_classes) for t in multi] == [("a", 2), ("b", 2)]
    levels = LevelsScheme(["x", "y", "z"]).training_tasks(np.array([0, 2, 1]))
    assert [(t.name, t.n_classes) for t in levels] == [("level", 3)]


def test_reported_labels_know_their_thresholded_decision() -> None:
    levels = LevelsScheme(["safe", "mild", "severe"])
    assert [levels.decision_for(n) for n in levels.report_names] == [None, "at_least_mild", "at_least_severe"]
    multi = MultiLabelScheme(["scam"], none_label="clean")
    assert [multi.decision_for(n) for n in multi.report_names] == ["scam", None]
