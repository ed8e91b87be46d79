"""The select stage: rank finished runs by a valid metric, register the winner, point an alias at it.

Only validation numbers choose (the holdout is printed beside them, for the record, never used to
rank). Candidates are FINISHED runs with ``holdout_eval.json`` on one split, optionally one sweep's,
filtered by ``where`` ("valid/scam/fpr<=0.02 and size_mb<=5"). The winner's pyfunc model becomes a
version of ``select.model_name`` in the MLflow Model Registry and the alias (``champion``) points at
it; selecting the same run again reuses its version.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from toxmod.config import instantiate_component
from toxmod.errors import ConfigError, ToxmodError
from toxmod.progress import console, print_whole
from toxmod.reports import rows_table
from toxmod.runs.record import RunDir
from toxmod.runs.store import FINISHED, NoStore, RunStore, StoredRun

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
CONDITION = re.compile(
    r"^\s*([\w./-]+)\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
# Names a condition may use besides metric names: the costs as compare shows them.
DERIVED = {
    "size_mb": lambda m: m.get("model_size_bytes", float("nan")) / 1e6,
    "params_m": lambda m: m.get("model_parameters", float("nan")) / 1e6,
    "train_s": lambda m: m.get("train_seconds", float("nan")),
}


@dataclass(frozen=True)
class Selection:
    """The ranked candidates (best first), the registered model and version the alias points at."""

    ranked: list[StoredRun]
    metric: str
    model_name: str
    alias: str
    version: str
    created: bool


def parse_where(where: str | None) -> list[tuple[str, str, float]]:
    """``"a<=1 and b>2"`` -> ``[(a, <=, 1.0), (b, >, 2.0)]``; anything else is a one-line error."""
    if not where:
        return []
    conditions = []
    for part in re.split(r"\s+and\s+", where.strip()):
        match = CONDITION.match(part)
        if not match:
            raise ConfigError(
                f"where={where!r}: {part.strip()!r} is not '<metric> <op> <number>' "
                f"(ops {' '.join(OPERATORS)}, joined by 'and')"
            )
        conditions.append((match[1], match[2], float(match[3])))
    return conditions


def value_of(run: StoredRun, name: str) -> float:
    if name in DERIVED:
        return float(DERIVED[name](run.metrics))
    return float(run.metrics.get(name, float("nan")))


def select(cfg: DictConfig) -> Selection:
    store = instantiate_component(cfg.tracking, "tracking").store()
    if isinstance(store, NoStore):
        raise ToxmodError("select reads and writes the MLflow store; it cannot run with tracking=none")
    conditions = parse_where(cfg.get("where"))
    experiment = cfg.get("experiment")
    tags = {"sweep_id": str(cfg.sweep_id)} if cfg.get("sweep_id") else {}
    if cfg.get("split_sha256"):
        tags["split_sha256"] = str(cfg.split_sha256)
    found = store.search([str(experiment)] if experiment else None, FINISHED, tags, int(cfg.max_runs))
    candidates = [r for r in found if r.split_sha256 and r.tags.get("task_name", "train") != "report"]
    if not candidates:
        raise ToxmodError(
            "no FINISHED runs to select from" + (f" in experiment {experiment}" if experiment else "")
        )
    split = candidates[0].split_sha256  # the newest run's split, unless split_sha256 chose one
    others = len([r for r in candidates if r.split_sha256 != split])
    candidates = [r for r in candidates if r.split_sha256 == split]
    primary = candidates[0].tags.get("primary_label", "")
    metric = str(cfg.get("metric") or f"valid/{primary}/recall")
    if not metric.startswith("valid/"):
        raise ConfigError(
            f"metric={metric}: select ranks on a valid metric only (valid/...); the holdout stays unseen"
        )
    for name, _, _ in conditions:
        if name.startswith("holdout/"):
            raise ConfigError(f"where: {name} is a holdout metric; conditions use valid metrics and costs")
    kept = [
        r
        for r in candidates
        if all(OPERATORS[op](value_of(r, name), bound) for name, op, bound in conditions)
        and value_of(r, metric) == value_of(r, metric)  # has the metric (not NaN)
        and store.has_artifact(r.run_id, RunDir.HOLDOUT_EVAL)
    ]
    if not kept:
        raise ToxmodError(
            f"none of the {len(candidates)} finished runs on split {split[:12]} has {metric} and meets "
            f"where={cfg.get('where')!r}"
        )
    ranked = sorted(kept, key=lambda r: value_of(r, metric), reverse=not cfg.get("ascending", False))
    _print_ranking(ranked, metric, primary, split, others)
    winner = ranked[0]
    model_uri = winner.tags.get("pyfunc_model_uri")
    if not model_uri:
        raise ToxmodError(
            f"run {winner.run_id} ({winner.name}) has no pyfunc model (trained with log_pyfunc=false or by "
            "an older toxmod); re-train it to register it"
        )
    name = str(cfg.get("model_name") or experiment or _experiment_name(store, winner))
    version, created = store.register(name, model_uri, winner.run_id, str(cfg.alias))
    console.print(
        f"{'registered' if created else 'already registered:'} {name} version {version} "
        f"(run {winner.run_id[:8]} {winner.name}); alias {cfg.alias} -> version {version}; "
        f"load it with mlflow.pyfunc.load_model('models:/{name}@{cfg.alias}')",
        soft_wrap=True,
    )
    return Selection(ranked, metric, name, str(cfg.alias), version, created)


def _experiment_name(store: RunStore, run: StoredRun) -> str:
    return store.experiment_name(run.experiment_id)


def _print_ranking(ranked: list[StoredRun], metric: str, primary: str, split: str, others: int) -> None:
    columns = ["rank", "run", "name", "model", metric, "valid/macro_f1", "size_mb"]
    columns += [f"holdout/{primary}/recall", f"holdout/{primary}/fpr", "holdout/macro_f1"]
    rows = [
        [
            i + 1,
            r.run_id[:8],
            r.name,
            r.tags.get("model", "?"),
            value_of(r, metric),
            value_of(r, "valid/macro_f1"),
            value_of(r, "size_mb"),
            value_of(r, f"holdout/{primary}/recall"),
            value_of(r, f"holdout/{primary}/fpr"),
            value_of(r, "holdout/macro_f1"),
        ]
        for i, r in enumerate(ranked)
    ]
    print_whole(
        rows_table(
            f"ranked by {metric} on split {split[:12]} (holdout columns: for the record)", columns, rows
        )
    )
    if others:
        console.print(f"left out {others} run(s) on other splits (split_sha256=... chooses one)")
