"""What a new user trips on: MLflow's own tracking-URI conventions, reading never creating an empty
store, a resume leaving no empty run folder, out-of-range report settings and split-hash prefixes as
tables show them."""

from __future__ import annotations

from pathlib import Path

import pytest

import toxmod
from tests.helpers import compose_train, run_entry, tracking_overrides
from toxmod.errors import ConfigError, ToxmodError
from toxmod.stages.train import train

TINY = ["data=janitr", "data.max_rows=300", "model=tfidf_logreg", "bootstrap=0"]


@pytest.fixture
def tiny_run(tmp_path: Path, store: dict[str, str]) -> tuple[Path, str]:
    result = train(compose_train([*TINY, *tracking_overrides(store)]), tmp_path / "run")
    assert result.run_id is not None
    return result.run_dir, result.run_id


def test_load_finds_a_run_id_through_mlflow_tracking_uri(
    tiny_run, store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    _, run_id = tiny_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    model = toxmod.load(run_id, cache_dir=Path(store["artifact_root"]).parent / "cache")
    assert set(model.predict("free airdrop, connect your wallet")["decisions"]) == {"scam", "topic_crypto"}


def test_reading_never_creates_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "elsewhere" / "mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with pytest.raises(ConfigError, match=r"run=abc123: there is no MLflow store at sqlite:///.*elsewhere"):
        toxmod.load("abc123")
    done = run_entry("compare", f"tracking.uri=sqlite:///{missing}")
    assert done.returncode == 2 and "compare: there is no MLflow store" in done.stderr
    assert not missing.exists() and not missing.parent.exists()


def test_the_tracking_config_follows_mlflow_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert compose_train([]).tracking.uri == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert compose_train([]).tracking.uri.startswith("sqlite:///") and compose_train(
        []
    ).tracking.uri.endswith("/mlruns.db")


def test_a_refused_resume_leaves_no_empty_run_folder(tiny_run, tmp_path: Path, store: dict[str, str]) -> None:  # noqa: ANN001
    run_dir, _ = tiny_run  # a classical run: nothing to resume, one line
    unused = tmp_path / "outputs" / "train" / "new"
    resume = [f"resume={run_dir}", f"hydra.run.dir={unused}"]
    done = run_entry("train", *TINY, *tracking_overrides(store), *resume)
    assert done.returncode == 2 and "nothing to resume" in done.stderr and done.stderr.count("\n") == 1
    assert not unused.exists()


def test_report_resamples_out_of_range_is_one_line(tmp_path: Path) -> None:
    done = run_entry("report", "resamples=-10", f"output={tmp_path / 'report'}")
    assert done.returncode == 2 and done.stderr.strip() == "error: resamples=-10: expected a positive integer"
    assert not (tmp_path / "report").exists()


def test_a_split_hash_prefix_as_tables_show_it(tiny_run, store: dict[str, str]) -> None:  # noqa: ANN001
    run_dir, _ = tiny_run
    import json

    split = json.loads((run_dir / "holdout_eval.json").read_text())["split_sha256"]
    shown = run_entry("compare", *tracking_overrides(store), f"split_sha256={split[:12]}", "format=csv")
    assert shown.returncode == 0 and shown.stdout.count("\n") == 2, shown.stderr
    with pytest.raises(ToxmodError, match="no FINISHED runs have split_sha256=ffff"):
        from toxmod.config import compose_config
        from toxmod.stages.compare import compare

        compare(compose_config("compare", [*tracking_overrides(store), "split_sha256=ffff"]))
