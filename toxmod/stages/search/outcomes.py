"""How a search trial can end besides completing or failing: pruned (a run stopped on purpose)."""

from __future__ import annotations

from toxmod.errors import StoppedEarly

STATE_TAG = "toxmod.trial_state"  # pruned on a pruned trial's run


class TrialPruned(StoppedEarly):
    """The pruner stopped this trial at ``step`` (its monitored value ``value``)."""

    tags = {STATE_TAG: "pruned"}

    def __init__(self, step: int, metric: str, value: float) -> None:
        super().__init__(f"pruned by the search at step {step} ({metric}={value:.4g})")
        self.step, self.metric, self.value = step, metric, value
