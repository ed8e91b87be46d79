"""The read side of the tracking store: lookups, searches, and errors that keep their cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import DatabaseError

from tests.helpers import compose_train
from toxmod.errors import ConfigError, ToxmodError
from toxmod.runs import MlflowTracker, NoStore, NullTracker, RunStore
from toxmod.runs.jobs import resolve_resume

pytestmark = pytest.mark.data_free


def test_runs_are_found_by_id_status_and_tags(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = MlflowTracker(uri, str(tmp_path / "artifacts"), experiment="janitr")
    with tracker.run(run_name="a", tags={"split_sha256": "s1"}):
        tracker.log_metrics({"holdout/macro_f1": 0.8})
    finished = tracker.run_id
    with pytest.raises(RuntimeError), tracker.run(run_name="b", tags={"split_sha256": "s1"}):
        raise RuntimeError("the body failed")
    store = tracker.store()
    assert store.get(finished).metrics == {"holdout/macro_f1": 0.8} and store.get(finished).finished
    assert [r.run_id for r in store.search(tags={"split_sha256": "s1"})] == [finished]  # FINISHED only
    assert {r.status for r in store.search(status=None)} == {"FINISHED", "FAILED"}
    [failed] = store.search(status="FAILED")
    assert failed.name == "FAILED b" and failed.tags["failure_reason"] == "RuntimeError: the body failed"
    assert store.get(finished).name == "a"
    assert store.search(tags={"split_sha256": "other"}) == []
    with pytest.raises(ToxmodError, match="run='0123456789abcdef': no such run in sqlite:///"):
        store.get("0123456789abcdef")


def test_a_broken_store_is_not_reported_as_an_unknown_run(tmp_path: Path) -> None:
    database = tmp_path / "mlruns.db"
    database.write_bytes(b"not a database " * 100)
    cfg = compose_train(["model=tfidf_logreg", "tracking.uri=sqlite:///" + str(database)])
    with pytest.raises(DatabaseError, match="file is not a database"):
        resolve_resume("0123456789abcdef", cfg, RunStore(cfg.tracking.uri))


def test_without_tracking_lookups_say_why() -> None:
    store = NullTracker().store()
    assert isinstance(store, NoStore) and not store.has_run("0123456789abcdef")
    with pytest.raises(ConfigError, match="tracking=none keeps no run store"):
        store.search()
