"""The kept checkpoint follows the threshold mode, and a monitor that never moves says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import JANITR_SLICE, LEARNING_TINY_STUDENT, compose_train, stored_runs, tracking_overrides
from toxmod.stages.train import train

pytestmark = pytest.mark.slow

STUDENT = [*JANITR_SLICE, *LEARNING_TINY_STUDENT, "model.max_epochs=2", "hardware.threads=1", "bootstrap=0"]


@pytest.mark.parametrize(
    ("threshold", "monitor"),
    [
        (["threshold=max_f1"], "valid/tuned_macro_f1"),
        (["threshold=optuna", "threshold.n_trials=5"], "valid/tuned_macro_f1"),
        (["threshold=target_fpr"], "valid/scam/recall_at_fpr"),
    ],
)
def test_the_kept_checkpoint_is_chosen_by_the_metric_of_the_threshold_mode(
    tmp_path: Path, store: dict[str, str], threshold: list[str], monitor: str, capsys: pytest.CaptureFixture
) -> None:
    result = train(compose_train([*STUDENT, *threshold, *tracking_overrides(store)]), tmp_path / "run")
    (run,) = stored_runs(store)
    assert (
        run.data.tags["checkpoint.monitor"] == monitor
        and run.data.params["checkpoint.monitor_used"] == monitor
    )
    assert f"({monitor}=" in capsys.readouterr().out  # the "kept best-step=N (<monitor>=...)" line
    assert result.metrics["valid/best_monitored"] == pytest.approx(
        max(m.value for m in _history(store, run.info.run_id, monitor))
    )


def _history(store: dict[str, str], run_id: str, name: str) -> list:
    from mlflow.tracking import MlflowClient

    return MlflowClient(store["uri"]).get_metric_history(run_id, name)


def test_a_monitor_with_the_same_value_at_every_validation_warns(
    tmp_path: Path, store: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    # a 99.9% FPR budget flags everything: recall at that FPR is 1.0 whatever the model learned
    cfg = compose_train([*STUDENT, "threshold.target_fpr=0.999", *tracking_overrides(store)])
    train(cfg, tmp_path / "run")
    out = capsys.readouterr().out
    assert "warning: checkpoint monitor valid/scam/recall_at_fpr was 1 at all 2 validations" in out
    # only metrics that did move are named: with everything flagged, topic_crypto's recall at a 99.9%
    # FPR and macro F1 stayed the same too; the ranking metric moved
    moving = out.split("monitors that move: ")[1].split(" (checkpoint.monitor=...)")[0].split(", ")
    assert moving == ["valid/mean_roc_auc"]
    (run,) = stored_runs(store)
    assert run.data.tags["checkpoint.monitor_degenerate"] == "true"
