"""A run folder recorded by an earlier version of toxmod still opens, scores as it did, and verifies.

``tests/files/saved_runs/tfidf_logreg-0.1.0`` was trained by toxmod 0.1.0 before the config groups
became typed specifications (``python -m toxmod.train model=tfidf_logreg data=csv
data.path=posts.csv data.id_column=id data.label_columns=[scam] split=stratified tracking=none
bootstrap=0 plots=false``) on ``posts.csv``, 300 synthetic posts written for this test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from toxmod.errors import ConfigError
from toxmod.runs.opening import load_run, open_model
from toxmod.runs.record import RunDir, read_predictions
from toxmod.stages.predict import Predictor

pytestmark = pytest.mark.data_free

SAVED = Path(__file__).resolve().parents[1] / "files" / "saved_runs"


@pytest.fixture()
def saved_run(tmp_path: Path) -> Path:
    """A copy (opening may write beside a run; the fixture stays as it was recorded)."""
    return Path(shutil.copytree(SAVED / "tfidf_logreg-0.1.0", tmp_path / "run"))


def test_a_saved_run_scores_its_holdout_as_it_recorded(saved_run: Path) -> None:
    loaded = load_run(saved_run, data_path=SAVED / "posts.csv")  # its split's hashes verified
    holdout = loaded.split.part(loaded.dataset, "holdout")
    ids, targets, recorded = read_predictions(
        RunDir(saved_run).path / "predictions" / "holdout.parquet", loaded.dataset.scheme.output_names
    )
    assert list(ids) == list(holdout.ids) and len(ids) == 75
    scores = loaded.scorer.predict_scores(list(holdout.texts))
    np.testing.assert_allclose(scores, recorded, rtol=1e-6, atol=1e-9)
    assert (targets.ravel() == holdout.targets.ravel()).all()


def test_a_saved_run_predicts_and_its_scheme_is_read(saved_run: Path) -> None:
    opened = open_model(saved_run)
    assert opened.scheme.output_names == ["scam"]
    predictor = Predictor.open(saved_run)
    scam, clean = predictor.predict(
        ["free crypto giveaway send 1 eth get 2 back", "the weather is lovely today"]
    )
    assert scam["scores"]["scam"] > clean["scores"]["scam"]
    assert scam["decisions"]["scam"] and not clean["decisions"]["scam"]
    assert predictor.thresholds.as_array().shape == (1,)


def test_a_saved_run_reads_only_the_data_the_opener_names(saved_run: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.path=/tmp/oldrun/posts.csv lies outside this run"):
        load_run(saved_run)  # the path it recorded is not the opener's to read


def test_a_saved_config_reads_as_hydra_wrote_it(tmp_path: Path) -> None:
    """``files.read_config_yaml`` (plain dicts, no code) reads what OmegaConf reads: numbers without a
    dot are numbers, dates stay text; a key given twice is a one-line error."""
    from omegaconf import OmegaConf

    from toxmod.errors import DamagedFileError
    from toxmod.files import read_config_yaml

    written = tmp_path / "config.yaml"
    written.write_text("lr: 1e-05\nday: 2026-01-01\nsteps: 1_000\nratio: -2.5e3\nname: '1e3'\nnan: .nan\n")
    for path in (written, SAVED / "tfidf_logreg-0.1.0" / "config.yaml"):
        assert repr(read_config_yaml(path)) == repr(OmegaConf.to_container(OmegaConf.load(path)))
    assert read_config_yaml(written)["lr"] == 1e-05 and read_config_yaml(written)["day"] == "2026-01-01"
    written.write_text("model:\n  name: a\n  name: b\n")
    with pytest.raises(DamagedFileError, match=r"config.yaml: not a readable config \(duplicate key"):
        read_config_yaml(written)
