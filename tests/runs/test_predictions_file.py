"""The holdout predictions file: what ``write_predictions`` writes, ``read_predictions`` reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toxmod.errors import DamagedFileError
from toxmod.runs.record import RunDir, read_predictions, write_predictions

pytestmark = pytest.mark.data_free


@pytest.mark.parametrize(
    "targets",
    [np.array([[1, 0], [0, 1], [1, 1]]), np.array([2, 0, 1])],
    ids=["one-column-per-label", "a-level-per-row"],
)
def test_predictions_round_trip(tmp_path: Path, targets: np.ndarray) -> None:
    run = RunDir(tmp_path)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7]])
    path = write_predictions(run, "holdout", [7, 8, 9], targets, scores, ["a", "b"])
    ids, read_targets, read_scores = read_predictions(path, ["a", "b"])
    assert ids.tolist() == ["7", "8", "9"]
    np.testing.assert_array_equal(read_targets, targets)
    np.testing.assert_array_equal(read_scores, scores)


def test_a_missing_score_column_is_one_line(tmp_path: Path) -> None:
    path = write_predictions(
        RunDir(tmp_path), "holdout", [1], np.array([[1, 0]]), np.array([[0.5, 0.5]]), ["a", "b"]
    )
    pd.read_parquet(path).drop(columns=["score/b"]).to_parquet(path, index=False)
    with pytest.raises(DamagedFileError, match="column .*score/b.* is missing") as error:
        read_predictions(path, ["a", "b"])
    assert str(path) in str(error.value) and "\n" not in str(error.value)
