"""A search space declared in YAML (``search.params``), checked before any trial runs.

Each entry is one override a trial sets, nested by its key's path (so ``search.params.model.C.low=1``
edits it from the command line) or written with its dotted key::

    model:
      choices: [tfidf_logreg, tfidf_xgboost]        # a config group choice
      C: {type: float, low: 0.01, high: 100, log: true, when: {model: tfidf_logreg}}
      max_depth: {type: int, low: 2, high: 8, when: {model: tfidf_xgboost}}
    distill.temperature: {low: 1, high: 8}

``type`` is ``float`` (the default with ``low``/``high``), ``int`` or ``categorical`` (implied by
``choices``); ``log`` samples on a log scale, ``step`` discretizes. ``when`` makes an entry conditional
on the value an earlier entry took (one value or a list), so a choice can have keys of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toxmod.errors import ConfigError

KINDS = ("float", "int", "categorical")
DIRECTIONS = ("maximize", "minimize")
OPERATING_POINT = "operating_point"  # the run's own monitor: the primary decision's recall at its FPR budget
_ENTRY_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}


@dataclass(frozen=True)
class Param:
    """One searched override: its key, how it is sampled and when it applies."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def applies(self, chosen: Mapping[str, Any]) -> bool:
        """Whether this entry is sampled, given the values earlier entries took."""
        return all(key in chosen and chosen[key] in values for key, values in self.when.items())

    def suggest(self, trial: Any) -> Any:
        """The value Optuna's ``trial`` suggests for this entry."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.key, int(self.low or 0), int(self.high or 0), step=step, log=self.log
            )
        return trial.suggest_float(
            self.key, float(self.low or 0), float(self.high or 0), step=self.step, log=self.log
        )

    def override(self, value: Any) -> str:
        """``key=value`` as Hydra reads it (floats in full precision)."""
        shown = (
            repr(value)
            if isinstance(value, float)
            else str(value).lower()
            if isinstance(value, bool)
            else value
        )
        return f"{self.key}={shown}"


@dataclass(frozen=True)
class Objective:
    """A recorded metric a search optimizes and which way; ``operating_point`` is resolved by each run."""

    metric: str
    direction: str


def parse_params(params: Mapping[str, Any] | None) -> list[Param]:
    """The declared entries, in order; an empty, unknown or contradictory entry is one line naming it."""
    if not params:
        raise ConfigError("search.params is empty: declare at least one key to search")
    parsed: list[Param] = []
    for key, entry in _entries(params, ""):
        name = f"search.params.{key}"
        kind = str(entry.get("type") or ("categorical" if "choices" in entry else "float"))
        if kind not in KINDS:
            raise ConfigError(f"{name}.type={kind}: expected one of {', '.join(KINDS)}")
        when = _conditions(name, entry.get("when"), parsed)
        if kind == "categorical":
            choices = tuple(entry.get("choices") or ())
            if not choices:
                raise ConfigError(f"{name}.choices is empty: list at least one value")
            parsed.append(Param(str(key), kind, choices=choices, when=when))
            continue
        low, high = entry.get("low"), entry.get("high")
        if low is None or high is None:
            raise ConfigError(f"{name}: a {kind} range needs low and high")
        if not float(low) < float(high):
            raise ConfigError(f"{name}: empty range low={low} >= high={high}")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(f"{name}: an int range needs whole low and high (low={low}, high={high})")
        log = bool(entry.get("log", False))
        if log and float(low) <= 0:
            raise ConfigError(f"{name}: a log range needs low > 0 (low={low})")
        step = entry.get("step")
        if step is not None and (float(step) <= 0 or log):
            raise ConfigError(f"{name}.step={step}: a step is positive and not combined with log")
        parsed.append(
            Param(
                str(key), kind, float(low), float(high), log, None if step is None else float(step), when=when
            )
        )
    return parsed


def _entries(node: Mapping[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """``(dotted key, settings)`` of every entry below ``node``, depth first: a mapping's own settings
    (``low``, ``choices``, ...) make it an entry, its other keys are entries below it."""
    found: list[tuple[str, dict[str, Any]]] = []
    own = {k: v for k, v in node.items() if k in _ENTRY_KEYS}
    if own and prefix:
        found.append((prefix, own))
    for key, child in node.items():
        if key in _ENTRY_KEYS:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(child, Mapping):
            settings = ", ".join(sorted(_ENTRY_KEYS))
            raise ConfigError(
                f"search.params.{path}: unknown setting {key} (an entry's settings: {settings})"
            )
        below = _entries(child, path)
        if not below:
            raise ConfigError(f"search.params.{path}: empty; give it low/high or choices")
        found.extend(below)
    return found


def _conditions(name: str, when: Any, earlier: Sequence[Param]) -> dict[str, tuple[Any, ...]]:
    if not when:
        return {}
    if not isinstance(when, Mapping):
        raise ConfigError(f"{name}.when: expected {{earlier key: value or [values]}}")
    declared = {p.key: p for p in earlier}
    conditions: dict[str, tuple[Any, ...]] = {}
    for key, values in when.items():
        if key not in declared:
            raise ConfigError(f"{name}.when: {key} is not an entry declared before it in search.params")
        conditions[str(key)] = (
            tuple(values) if isinstance(values, Sequence) and not isinstance(values, str) else (values,)
        )
    return conditions


def parse_objectives(objectives: Any) -> list[Objective]:
    """``{metric: maximize|minimize}`` (null: the run's operating point); a holdout metric is refused."""
    if not objectives:
        return [Objective(OPERATING_POINT, "maximize")]
    if not isinstance(objectives, Mapping):
        raise ConfigError("search.objectives: expected {metric: maximize|minimize, ...}")
    parsed = []
    for metric, direction in objectives.items():
        if str(metric).startswith("holdout/"):
            raise ConfigError(
                f"search.objectives: {metric} is a holdout metric; a search optimizes valid metrics "
                "(the holdout stays unseen until the end)"
            )
        if direction not in DIRECTIONS:
            raise ConfigError(f"search.objectives.{metric}={direction}: expected maximize or minimize")
        parsed.append(Objective(str(metric), str(direction)))
    return parsed


def sample(params: Sequence[Param], trial: Any) -> dict[str, Any]:
    """One trial's values: every entry whose conditions hold, in declaration order."""
    chosen: dict[str, Any] = {}
    for param in params:
        if param.applies(chosen):
            chosen[param.key] = param.suggest(trial)
    return chosen


def overrides_for(params: Sequence[Param], chosen: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides that set ``chosen`` (group choices as ``group=option``)."""
    by_key = {p.key: p for p in params}
    return [by_key[key].override(value) for key, value in chosen.items()]
