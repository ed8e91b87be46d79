"""A model kind of the user's own, written from docs/new_model_kind.md alone: one Python file and one
YAML in the user's folder, no change to toxmod, through train -> load -> predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import toxmod
from tests.helpers import JANITR_SLICE
from toxmod.config import compose_config
from toxmod.errors import DamagedFileError
from toxmod.models import load_scorer
from toxmod.stages.train import train

KEYWORD_MODEL = Path(__file__).with_name("keyword_model.py")


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's working directory: the model's file and ``conf/model/keyword_count.yaml``."""
    (tmp_path / "keyword_model.py").write_text(KEYWORD_MODEL.read_text())
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "keyword_count.yaml").write_text(
        "_target_: keyword_model.KeywordCountScorer\nname: keyword_count\nkeywords_per_label: 40\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("TOXMOD_CONF", raising=False)
    return tmp_path


def test_a_new_model_kind_trains_thresholds_loads_and_predicts(user_folder: Path) -> None:
    assert len(KEYWORD_MODEL.read_text().splitlines()) < 80
    overrides = [*JANITR_SLICE, "model=keyword_count", "tracking=none", "bootstrap=0", "plots=false"]
    result = train(compose_config("train", overrides), user_folder / "run")
    assert result.metrics["holdout/scam/recall"] > 0.2  # its keywords find scams: it learned something
    assert result.metrics["holdout/mean_roc_auc"] > 0.7
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())["thresholds"]
    assert set(thresholds) == {"scam", "topic_crypto"}
    description = json.loads((result.run_dir / "model" / "scorer.json").read_text())
    assert description["kind"] == "keyword_count"
    assert description["class"] == "keyword_model.KeywordCountScorer"

    predictor = toxmod.load(result.run_dir)
    texts = ["free crypto giveaway, send btc to claim your airdrop now", "lunch was nice today"]
    records = predictor.predict(texts)
    scores = predictor.scorer.predict_scores(texts)
    for record, row in zip(records, scores):
        assert record["scores"]["scam"] == pytest.approx(float(row[0]))
        assert record["decisions"]["scam"] == bool(row[0] >= thresholds["scam"])
    assert scores[0, 0] > scores[1, 0]
    reloaded = load_scorer(result.run_dir / "model").predict_scores(texts)
    np.testing.assert_array_equal(reloaded, scores)


def test_a_kind_the_openers_conf_does_not_name_is_not_imported(
    user_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [*JANITR_SLICE, "model=keyword_count", "tracking=none", "bootstrap=0", "plots=false"]
    result = train(compose_config("train", overrides), user_folder / "run")
    monkeypatch.chdir(user_folder / "run")  # an opener whose folder has no conf/ naming the class
    with pytest.raises(DamagedFileError, match="unknown model kind 'keyword_count'.*conf/ folder"):
        load_scorer(result.run_dir / "model")
