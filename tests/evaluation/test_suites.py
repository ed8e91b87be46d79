"""Functional test suites: any column names and label values, pass rates per functionality and
group, the balanced pass rate, failing examples, and one-line errors naming the file and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toxmod.errors import ConfigError, DataError
from toxmod.evaluation.suites import SuiteFormat, check_format, read_suite, score_suite
from toxmod.paths import project_root

pytestmark = pytest.mark.data_free

EXAMPLE = project_root() / "docs" / "examples" / "toxicity_suite.csv"


def _suite(tmp_path: Path, text: str, **form: object) -> tuple:  # noqa: ANN001
    path = tmp_path / "suite.tsv"
    path.write_text(text)
    settings = SuiteFormat(**form)  # type: ignore[arg-type]
    return read_suite(path, settings, "abc"), settings


def test_pass_rates_by_hand(tmp_path: Path) -> None:
    suite, _ = _suite(
        tmp_path,
        "case\tgold\tskill\twho\n"
        "you idiot\thateful\tinsult\t\n"
        "you fool\thateful\tinsult\t\n"
        "you are not an idiot\tnon-hateful\tnegation\t\n"
        "I love muslims\tnon-hateful\tidentity\tmuslims\n"
        "muslims are vermin\thateful\tidentity\tmuslims\n",
        text_column="case",
        label_column="gold",
        functionality_column="skill",
        group_column="who",
        positive=("hateful",),
        negative=("non-hateful",),
    )
    assert suite.expected.tolist() == [True, True, False, False, True]
    # a model that flags everything: passes the 3 expected flags, fails the 2 expected passes
    result = score_suite(suite, "toxic", np.ones(5, dtype=bool), examples=1)
    assert result.pass_rate == 3 / 5
    assert result.by_label == {"flag": 1.0, "pass": 0.0}
    assert result.balanced_pass_rate == 0.5  # the label mix does not flatter always-flag
    rates = {r.name: r.rate for r in result.functionalities}
    assert rates == {"negation": 0.0, "identity": 0.5, "insult": 1.0}
    assert [r.name for r in result.functionalities][0] == "negation"  # worst first
    assert {r.name: r.rate for r in result.groups} == {"muslims": 0.5}
    assert result.failures["negation"] == [{"text": "you are not an idiot", "expected": "pass", "row": 4}]
    assert result.metrics()["suite/functionality/identity/pass_rate"] == 0.5


def test_the_example_suite_reads_with_the_defaults() -> None:
    suite = read_suite(EXAMPLE, SuiteFormat(group_column="target"), "x")
    assert len(suite.texts) >= 40 and len(set(suite.functionalities.tolist())) >= 8
    assert 0 < suite.expected.mean() < 1 and suite.groups is not None


def test_bad_suites_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"suite .*suite.tsv: column 'label' \(suite_format.label_column\) not found"
    ):
        _suite(tmp_path, "text\tfunctionality\nhi\tx\n")
    with pytest.raises(DataError, match=r"column 'label' holds \['maybe'\], neither suite_format.positive"):
        _suite(tmp_path, "text\tlabel\tfunctionality\nhi\tmaybe\tx\n")
    with pytest.raises(DataError, match=r"column 'functionality' is empty in row 2"):
        _suite(tmp_path, "text\tlabel\tfunctionality\nhi\t1\t\n")
    with pytest.raises(ConfigError, match=r"share \['1'\]"):
        check_format(SuiteFormat(positive=("1",), negative=("1",)))
