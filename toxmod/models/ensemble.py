"""An ensemble of finished runs' models: each member temperature-calibrated on valid, then combined.

Members are any model kinds (they are read through the scoring interface), loaded from runs by the
train stage (``model.members=[<run dir | run id>, ...]``, all on this run's split) and saved inside
the ensemble's own model folder (``members/<i>/``), so the ensemble reloads without the member runs.

``combine=mean`` (default) averages the members' calibrated logits (log-odds per label, log
probabilities per level); ``combine=stack`` fits a logistic regression on valid over the members'
calibrated logits (per label, or one multinomial model over all levels' columns);
``combine=stack_oof`` fits that regression on the members' out-of-fold train scores (members trained
with ``crossfit.folds``), so valid is left to choose: the members (greedy forward selection) and the
regularization, both by the stacked model's log-loss on valid.

Members cross-fitted on the same folds make the ensemble cross-fitted too: its out-of-fold train
scores are its combination of theirs (``out_of_fold_scores``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.files import read_json, require_keys
from toxmod.models.base import FitContext, Scorer
from toxmod.models.capabilities import (
    BuiltFromRuns,
    LayerSource,
    OnDevice,
    OutOfFoldFromRuns,
    encoder_layers,
    place,
)
from toxmod.models.temperature import Temperatures, fit_temperatures, link_for

COMBINERS = ("mean", "stack", "stack_oof")
STACK_STRENGTHS = (0.01, 0.1, 1.0, 10.0)  # the regression's C, chosen on valid for combine=stack_oof
MEMBERS_DIR = "members"
STATE_FILE = "ensemble.json"
Stack = list[dict[str, list[Any]]]  # per stacked model: coef, intercept


class EnsembleScorer(Scorer, OnDevice, BuiltFromRuns, LayerSource, OutOfFoldFromRuns):
    """Calibrated members, combined by mean logits or a stacked logistic regression (fit on valid, or
    on the members' out-of-fold train scores)."""

    kind = "ensemble"
    opening_settings = None  # the models inside take the opener's settings

    def __init__(
        self,
        members: Sequence[str] = (),
        combine: str = "mean",
        calibrate: bool = True,
        select_members: bool = True,
    ) -> None:
        super().__init__()
        self.member_refs = [str(m) for m in members]
        self.combine = combine
        self.calibrate = calibrate
        self.select_members = select_members
        self.members: list[Scorer] = []
        self.temperatures: list[Temperatures] = []
        self.stack: Stack = []
        self.selected: list[int] = []  # the members combined (empty: all)
        self.selection: list[dict[str, Any]] = []  # combine=stack_oof: each step of the member choice
        self.member_out_of_fold: list[np.ndarray] = []

    def params(self) -> dict[str, Any]:
        return {
            "members": self.member_refs,
            "combine": self.combine,
            "calibrate": self.calibrate,
            "select_members": self.select_members,
        }

    def member_runs(self) -> list[str]:
        return list(self.member_refs)

    def attach_members(self, members: Sequence[Scorer]) -> None:
        self.members = list(members)

    def attach_out_of_fold(self, scores: Sequence[np.ndarray]) -> None:
        self.member_out_of_fold = [np.asarray(s, dtype=np.float64) for s in scores]

    def check_settings(self, scheme: LabelScheme, context: FitContext) -> None:
        if len(self.member_refs) < 2:
            raise ConfigError(
                f"model.members={self.member_refs}: an ensemble needs at least two finished runs "
                "(run directories or MLflow run ids)"
            )
        if self.combine not in COMBINERS:
            raise ConfigError(f"model.combine={self.combine}: expected one of {list(COMBINERS)}")

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> EnsembleScorer:
        """Calibrate and combine the attached members on valid; the train texts are not needed."""
        validation = context.validation if context else None
        if not self.members:
            raise ConfigError("model=ensemble: no members attached (the train stage loads model.members)")
        if validation is None or not len(validation.texts):
            raise ConfigError("model=ensemble calibrates and combines its members on valid; valid is empty")
        self.scheme = scheme
        valid_targets = np.asarray(validation.targets)
        scores = [member.predict_scores(list(validation.texts)) for member in self.members]
        self.temperatures = [
            fit_temperatures(scheme, s, valid_targets) if self.calibrate else Temperatures(["all"], [1.0])
            for s in scores
        ]
        calibrated = [self._calibrated(i, s) for i, s in enumerate(scores)]
        self.selected, self.selection, self.stack = [], [], []
        if self.combine == "stack":
            self.stack = self._fit_stack(calibrated, valid_targets, "valid")
        elif self.combine == "stack_oof":
            out_of_fold = self._calibrated_out_of_fold(len(texts))
            self._choose_stack(out_of_fold, np.asarray(targets), calibrated, valid_targets)
        return self

    def _calibrated_out_of_fold(self, rows: int) -> list[np.ndarray]:
        """Each member's out-of-fold train logits, calibrated by its temperatures from valid."""
        if len(self.member_out_of_fold) != len(self.members):
            raise ConfigError(
                "model.combine=stack_oof stacks the members' out-of-fold train scores: train every member "
                "with crossfit.folds=5 (all on the same folds), or use combine=stack"
            )
        if any(len(scores) != rows for scores in self.member_out_of_fold):
            raise ConfigError(
                f"model.combine=stack_oof: a member's out-of-fold scores do not cover the {rows} train rows"
            )
        return [self._calibrated(i, s) for i, s in enumerate(self.member_out_of_fold)]

    def _calibrated(self, member: int, scores: np.ndarray) -> np.ndarray:
        """A member's scores as logits divided by its temperatures from valid."""
        return self.temperatures[member].apply_to_logits(link_for(self.label_scheme).to_logits(scores))

    def _choose_stack(
        self,
        out_of_fold: list[np.ndarray],
        targets: np.ndarray,
        valid: list[np.ndarray],
        valid_targets: np.ndarray,
    ) -> None:
        """Fit the regression on out-of-fold logits; choose members (greedily, when ``select_members``)
        and its strength on valid by the stacked model's log-loss there."""
        everyone = list(range(len(self.members)))
        chosen: list[int] = [] if self.select_members else everyone
        best_loss, best_stack, best_strength = np.inf, self.stack, STACK_STRENGTHS[0]
        while True:
            options = [i for i in everyone if i not in chosen] if self.select_members else [None]
            tried = []
            for member in options:
                # in member order: the stack's columns follow it
                members = sorted(chosen + ([] if member is None else [member]))
                for strength in STACK_STRENGTHS:
                    stack = self._fit_stack([out_of_fold[i] for i in members], targets, "train", strength)
                    loss = self._valid_loss(stack, [valid[i] for i in members], valid_targets)
                    tried.append((loss, members, strength, stack))
            if not tried:
                break
            loss, members, strength, stack = min(tried, key=lambda entry: entry[0])
            if loss >= best_loss - 1e-6:
                break
            best_loss, best_stack, best_strength, chosen = loss, stack, strength, members
            names = [self.member_refs[i] for i in members]
            self.selection.append({"members": names, "C": strength, "valid_log_loss": loss})
            if not self.select_members:
                break
        self.selected, self.stack = chosen, best_stack
        self.fit_report.metrics.update(
            {
                "ensemble/members_selected": float(len(self.selected)),
                "ensemble/stack_c": best_strength,
                "ensemble/valid_log_loss": float(best_loss),
            }
        )

    def _valid_loss(self, stack: Stack, calibrated: list[np.ndarray], targets: np.ndarray) -> float:
        link = link_for(self.label_scheme)
        logits = self._stacked_logits(stack, calibrated)
        if link.per_column:
            return float(np.mean([link.nll(logits[:, j], targets[:, j]) for j in range(logits.shape[1])]))
        return link.nll(logits, targets)

    def _fit_stack(
        self, calibrated: list[np.ndarray], targets: np.ndarray, split: str, strength: float = 1.0
    ) -> Stack:
        models = []
        for features, labels in self._stack_problems(calibrated, targets):
            assert labels is not None  # fitting: targets are given
            if len(np.unique(labels)) < max(
                2, 0 if link_for(self.label_scheme).per_column else calibrated[0].shape[1]
            ):
                raise ConfigError(
                    f"model.combine={self.combine} needs every label value in {split}; use combine=mean"
                )
            model = LogisticRegression(C=strength, max_iter=1000).fit(features, labels)
            models.append({"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()})
        return models

    def _stack_problems(
        self, calibrated: list[np.ndarray], targets: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(features, targets) of each stacked model: one per label, or one over all levels."""
        if link_for(self.label_scheme).per_column:
            return [
                (np.column_stack([z[:, j] for z in calibrated]), None if targets is None else targets[:, j])
                for j in range(calibrated[0].shape[1])
            ]
        return [(np.hstack(calibrated), targets)]

    @property
    def _combined(self) -> list[int]:
        return self.selected or list(range(len(self.members)))

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        calibrated = [
            self._calibrated(i, self.members[i].predict_scores(list(texts))) for i in self._combined
        ]
        return link_for(self.label_scheme).to_scores(self._stacked_logits(self.stack, calibrated))

    def out_of_fold_scores(self) -> np.ndarray | None:
        """The combination of the members' out-of-fold scores (None unless every member has them)."""
        if not self.member_out_of_fold or len(self.member_out_of_fold) != len(self.members):
            return None
        calibrated = [self._calibrated(i, self.member_out_of_fold[i]) for i in self._combined]
        return link_for(self.label_scheme).to_scores(self._stacked_logits(self.stack, calibrated))

    def _stacked_logits(self, stack: Stack, calibrated: list[np.ndarray]) -> np.ndarray:
        """The members' calibrated logits combined: their mean, or the stacked regression's logits."""
        if not stack:
            return np.asarray(np.mean(calibrated, axis=0))
        problems = self._stack_problems(calibrated, None)
        z = np.hstack(
            [x @ np.asarray(m["coef"]).T + np.asarray(m["intercept"]) for m, (x, _) in zip(stack, problems)]
        )
        if not link_for(self.label_scheme).per_column and z.shape[1] == 1:  # two levels: one log-odds column
            z = np.column_stack([np.zeros(len(z)), z[:, 0]])
        return z

    @property
    def parameter_count(self) -> int | None:
        counts = [m.parameter_count for m in self.members]
        known = [c for c in counts if c is not None]
        return int(sum(known)) if len(known) == len(counts) else None

    @property
    def neural_models(self) -> int:
        return sum(member.neural_models for member in self.members)

    @property
    def encoder_layers(self) -> int:
        return encoder_layers(self._encoder_member)

    def layer_representations(self, texts: Sequence[str], layers: Sequence[int]) -> np.ndarray:
        """The first member with encoder layers speaks for the ensemble's representations."""
        member = self._encoder_member
        if not isinstance(member, LayerSource):
            raise NotImplementedError("an ensemble without a transformer member has no encoder layers")
        return member.layer_representations(texts, layers)

    @property
    def _encoder_member(self) -> Scorer | None:
        return next((m for m in self.members if encoder_layers(m)), None)

    def place_on(self, hardware: Any) -> None:
        for member in self.members:
            place(member, hardware)

    def _save_weights(self, directory: Path) -> None:
        for i, member in enumerate(self.members):
            member.save(directory / MEMBERS_DIR / str(i))
        state = {
            "temperatures": [t.to_json() for t in self.temperatures],
            "stack": self.stack,
            "selected": self.selected,
            "selection": self.selection,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        from toxmod.models import load_scorer  # the registry imports this module

        path = directory / STATE_FILE
        state = read_json(path)
        require_keys(path, state, ("temperatures", "stack"))
        folders = [directory / MEMBERS_DIR / str(i) for i in range(len(self.member_refs))]
        self.members = [load_scorer(folder, allow_pickle) for folder in folders]
        if not isinstance(state["temperatures"], list):
            raise DamagedFileError(f"{path}: temperatures must be a list, one entry per member")
        self.temperatures = [Temperatures.from_json(entry, path) for entry in state["temperatures"]]
        if len(self.temperatures) != len(self.members):
            counts = f"{len(self.temperatures)} temperatures for {len(self.members)} members"
            raise DamagedFileError(f"{path}: {counts}")
        self.stack = list(state["stack"])
        selected = state.get("selected") or []  # older ensembles combine every member
        if not isinstance(selected, list) or not all(
            isinstance(i, int) and 0 <= i < len(self.members) for i in selected
        ):
            raise DamagedFileError(f"{path}: selected must list member indices, got {selected}")
        self.selected, self.selection = selected, list(state.get("selection") or [])
