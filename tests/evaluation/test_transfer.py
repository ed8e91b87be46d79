"""Label mapping between a run's decisions and other data's labels."""

from __future__ import annotations

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.evaluation.transfer import label_mapping, mapped_view

pytestmark = pytest.mark.data_free

DAVIDSON = LevelsScheme(["neither", "offensive", "hate"], "hate")
JIGSAW = MultiLabelScheme(["toxic", "insult", "identity_hate"], None, "toxic")
MADLIBS = LevelsScheme(["nontoxic", "toxic"], "toxic")


def test_a_given_map_and_its_view() -> None:
    mapping = label_mapping(DAVIDSON, JIGSAW, {"at_least_offensive": "toxic", "hate": "identity_hate"})
    assert mapping.pairs == (("at_least_offensive", "toxic"), ("at_least_hate", "identity_hate"))
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # P(neither, offensive, hate)
    targets = np.array([[0, 0, 0], [1, 1, 1]])
    view = mapped_view(
        mapping, DAVIDSON, JIGSAW, scores, targets, {"at_least_offensive": 0.5, "at_least_hate": 0.4}
    )
    assert view.scheme.decision_names == ["toxic", "identity_hate"] and view.scheme.primary_label == "toxic"
    np.testing.assert_allclose(view.scores, [[0.3, 0.1], [0.9, 0.6]])
    assert view.targets.tolist() == [[0, 0], [1, 1]] and view.thresholds.tolist() == [0.5, 0.4]


def test_default_map_by_name_and_by_level() -> None:
    assert label_mapping(JIGSAW, MADLIBS, None).pairs == (("toxic", "at_least_toxic"),)
    same = label_mapping(JIGSAW, JIGSAW, None)
    assert same.same_scheme and len(same.pairs) == 3


def test_unmappable_labels_name_both_sets() -> None:
    both = r"the run decides \['at_least_offensive', 'at_least_hate'\]; "
    both += r"the data's labels are \['toxic', 'insult'"
    with pytest.raises(ConfigError, match=r"label_map is not set and no label is shared: " + both):
        label_mapping(DAVIDSON, JIGSAW, None)
    with pytest.raises(ConfigError, match=r"label_map: 'spam' is not a decision of the run; " + both):
        label_mapping(DAVIDSON, JIGSAW, {"spam": "toxic"})
    with pytest.raises(ConfigError, match=r"label_map: 'threat' \(for 'hate'\) is not a label of the data"):
        label_mapping(DAVIDSON, JIGSAW, {"hate": "threat"})
    with pytest.raises(ConfigError, match=r"mapped twice"):
        label_mapping(DAVIDSON, JIGSAW, {"hate": "toxic", "offensive": "toxic"})
