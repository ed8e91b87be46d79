"""An ensemble of finished runs' models: each member temperature-calibrated on valid, then combined.

Members are any model kinds (they are read through the scoring interface), loaded from runs by the
train stage (``model.members=[<run dir | run id>, ...]``, all on this run's split) and saved inside
the ensemble's own model folder (``members/<i>/``), so the ensemble reloads without the member runs.

``combine=mean`` (default) averages the members' calibrated logits (log-odds per label, log
probabilities per level); ``combine=stack`` fits a logistic regression on valid over the members'
calibrated logits (per label, or one multinomial model over all levels' columns).
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
from toxmod.models.capabilities import BuiltFromRuns, LayerSource, OnDevice, encoder_layers, place
from toxmod.models.temperature import Temperatures, fit_temperatures, link_for

COMBINERS = ("mean", "stack")
MEMBERS_DIR = "members"
STATE_FILE = "ensemble.json"


class EnsembleScorer(Scorer, OnDevice, BuiltFromRuns, LayerSource):
    """Calibrated members, combined by mean logits or a stacked logistic regression (fit on valid)."""

    kind = "ensemble"
    opening_settings = None  # the models inside take the opener's settings

    def __init__(self, members: Sequence[str] = (), combine: str = "mean", calibrate: bool = True) -> None:
        super().__init__()
        self.member_refs = [str(m) for m in members]
        self.combine = combine
        self.calibrate = calibrate
        self.members: list[Scorer] = []
        self.temperatures: list[Temperatures] = []
        self.stack: list[dict[str, list[Any]]] = []  # per stacked model: coef, intercept

    def params(self) -> dict[str, Any]:
        return {"members": self.member_refs, "combine": self.combine, "calibrate": self.calibrate}

    def member_runs(self) -> list[str]:
        return list(self.member_refs)

    def attach_members(self, members: Sequence[Scorer]) -> None:
        self.members = list(members)

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
        link = link_for(scheme)
        calibrated = [t.apply_to_logits(link.to_logits(s)) for t, s in zip(self.temperatures, scores)]
        self.stack = self._fit_stack(calibrated, valid_targets) if self.combine == "stack" else []
        return self

    def _member_logits(self, member: Scorer, texts: Sequence[str]) -> np.ndarray:
        return link_for(self.label_scheme).to_logits(member.predict_scores(list(texts)))

    def _fit_stack(self, calibrated: list[np.ndarray], targets: np.ndarray) -> list[dict[str, list[Any]]]:
        models = []
        for features, labels in self._stack_problems(calibrated, targets):
            assert labels is not None  # fitting: targets are given
            if len(np.unique(labels)) < max(
                2, 0 if link_for(self.label_scheme).per_column else calibrated[0].shape[1]
            ):
                raise ConfigError("model.combine=stack needs every label value in valid; use combine=mean")
            model = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels)
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

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        link = link_for(self.label_scheme)
        calibrated = [
            t.apply_to_logits(self._member_logits(m, texts)) for t, m in zip(self.temperatures, self.members)
        ]
        if not self.stack:
            return link.to_scores(np.mean(calibrated, axis=0))
        problems = self._stack_problems(calibrated, None)
        z = np.hstack(
            [
                x @ np.asarray(m["coef"]).T + np.asarray(m["intercept"])
                for m, (x, _) in zip(self.stack, problems)
            ]
        )
        if not link.per_column and z.shape[1] == 1:  # two levels: sklearn keeps one log-odds column
            z = np.column_stack([np.zeros(len(z)), z[:, 0]])
        return link.to_scores(z)

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
        state = {"temperatures": [t.to_json() for t in self.temperatures], "stack": self.stack}
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
