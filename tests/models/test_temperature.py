"""Temperature scaling: golden values for both schemes, and a file that round-trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.errors import DamagedFileError
from toxmod.evaluation.metrics import expected_calibration_error
from toxmod.models.temperature import Temperatures, fit_temperatures

pytestmark = pytest.mark.data_free

# Every row has logit 2 and 3 of 4 rows are positive: NLL is smallest where sigmoid(2 / T) = 0.75,
# i.e. 2 / T = ln 3, T = 2 / ln 3.
GOLDEN_T = 2 / math.log(3)


def test_a_multilabel_scheme_gets_one_temperature_per_label() -> None:
    scheme = MultiLabelScheme(["a", "b"])
    scores = np.column_stack([np.full(8, 1 / (1 + math.exp(-2))), np.full(8, 0.5 + 1e-3)])
    targets = np.column_stack([[1, 1, 1, 0] * 2, [1, 0] * 4])
    fitted = fit_temperatures(scheme, scores, targets)
    assert fitted.names == ["a", "b"]
    assert fitted.values[0] == pytest.approx(GOLDEN_T, rel=1e-4)
    calibrated = fitted.apply(scheme, scores)
    assert calibrated[:, 0] == pytest.approx(np.full(8, 0.75), abs=1e-5)
    ece = [expected_calibration_error(*scheme.calibration_pairs(s, targets)) for s in (calibrated, scores)]
    assert ece[0] < ece[1]


def test_a_levels_scheme_gets_one_temperature_for_all_levels() -> None:
    scheme = LevelsScheme(["low", "high"])
    scores = np.tile(np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum(), (8, 1))  # softmax of [0, 2]
    targets = np.array([1, 1, 1, 0] * 2)
    fitted = fit_temperatures(scheme, scores, targets)
    assert fitted.names == ["all"] and fitted.values[0] == pytest.approx(GOLDEN_T, rel=1e-4)
    calibrated = fitted.apply(scheme, scores)
    assert calibrated[:, 1] == pytest.approx(np.full(8, 0.75), abs=1e-5)
    assert calibrated.sum(axis=1) == pytest.approx(np.ones(8))


def test_temperatures_round_trip_and_a_bad_file_is_one_line(tmp_path: Path) -> None:
    fitted = Temperatures(["a", "b"], [1.5, 0.8])
    path = fitted.save(tmp_path / "calibration.json")
    assert Temperatures.load(path) == fitted
    path.write_text('{"temperatures": {"a": -1}}')
    with pytest.raises(DamagedFileError, match="calibration.json: temperatures must be positive numbers"):
        Temperatures.load(path)
