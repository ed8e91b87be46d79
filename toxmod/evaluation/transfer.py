"""Scoring a run on labelled data it was not trained on: which of the run's decisions answers which of
the data's labels (``label_map``), and the view of scores and targets the metrics then read.

A run decides its thresholded decisions (multi-label: its labels; levels: ``at_least_<level>``); the
data has its own. With the same label scheme the run is scored as on its own data (every metric); else
each mapped pair is one binary label of a multi-label view: the run's decision score and threshold
against the data's decision target. A level name stands for its ``at_least_`` decision on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from toxmod.data.schemes import LabelScheme, MultiLabelScheme
from toxmod.errors import ConfigError


@dataclass(frozen=True)
class LabelMapping:
    """``pairs``: (run decision, data decision) scored against each other, the data's order."""

    pairs: tuple[tuple[str, str], ...]
    same_scheme: bool

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)


def decision_of(scheme: LabelScheme, name: str) -> str | None:
    if name in scheme.decision_names:
        return name
    return scheme.decision_for(name)


def _same_name(run: LabelScheme, data: LabelScheme, decision: str) -> str | None:
    """The run decision named like a data decision: the same name, or the level it is ``at_least_``
    (a binary ``toxic`` label answers ``at_least_toxic`` and the other way round)."""
    names = [decision] + [level for level in data.report_names if data.decision_for(level) == decision]
    return next((found for name in names if (found := decision_of(run, name)) is not None), None)


def label_mapping(run: LabelScheme, data: LabelScheme, given: Mapping[str, str] | None) -> LabelMapping:
    """The pairs to score: ``given`` (run decision -> data label), else every data decision the run
    also decides by name. An unknown name, or nothing to score, is one line naming both label sets."""
    both = f"the run decides {run.decision_names}; the data's labels are {data.decision_names}"
    if not given:
        if run.describe() == data.describe():
            return LabelMapping(tuple((d, d) for d in run.decision_names), True)
        shared = [(r, d) for d in data.decision_names if (r := _same_name(run, data, d)) is not None]
        if not shared:
            raise ConfigError(
                f"label_map is not set and no label is shared: {both}; "
                "pass label_map={<run decision>: <data label>, ...}"
            )
        return LabelMapping(tuple(shared), False)
    pairs = []
    for run_name, data_name in given.items():
        run_decision, data_decision = decision_of(run, str(run_name)), decision_of(data, str(data_name))
        if run_decision is None:
            raise ConfigError(f"label_map: {run_name!r} is not a decision of the run; {both}")
        if data_decision is None:
            raise ConfigError(
                f"label_map: {data_name!r} (for {run_name!r}) is not a label of the data; {both}"
            )
        pairs.append((run_decision, data_decision))
    data_names = [d for _, d in pairs]
    if len(set(data_names)) < len(data_names):
        raise ConfigError(f"label_map: a data label is mapped twice ({data_names}); {both}")
    order = {name: i for i, name in enumerate(data.decision_names)}
    pairs.sort(key=lambda pair: order[pair[1]])
    same = (
        run.describe() == data.describe()
        and all(r == d for r, d in pairs)
        and len(pairs) == len(run.decision_names)
    )
    return LabelMapping(tuple(pairs), same)


@dataclass(frozen=True)
class MappedView:
    """What the metrics read: a scheme, the run's scores in it, the data's targets, the thresholds."""

    scheme: LabelScheme
    scores: np.ndarray
    targets: np.ndarray
    thresholds: np.ndarray


def mapped_view(
    mapping: LabelMapping,
    run: LabelScheme,
    data: LabelScheme,
    scores: np.ndarray,
    targets: np.ndarray,
    thresholds: Mapping[str, float],
) -> MappedView:
    """The run's scores against the data's targets: the run's own scheme when both agree, else one
    binary label per mapped pair (named after the data's label, primary first when mapped)."""
    if mapping.same_scheme:
        order = np.array([thresholds[name] for name in run.decision_names])
        return MappedView(run, scores, targets, order)
    run_index = {name: j for j, name in enumerate(run.decision_names)}
    data_index = {name: j for j, name in enumerate(data.decision_names)}
    run_scores, data_targets = run.decision_scores(scores), data.decision_targets(targets)
    names = [d for _, d in mapping.pairs]
    primary = data.primary_decision if data.primary_decision in names else names[0]
    view = MultiLabelScheme(labels=names, primary_label=primary)
    return MappedView(
        view,
        np.stack([run_scores[:, run_index[r]] for r, _ in mapping.pairs], axis=1),
        np.stack([data_targets[:, data_index[d]] for _, d in mapping.pairs], axis=1).astype(np.int64),
        np.array([thresholds[r] for r, _ in mapping.pairs], dtype=np.float64),
    )
