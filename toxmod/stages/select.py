"""The select stage: rank finished runs at their operating point, register the winner, alias it.

Only validation numbers choose (the holdout is printed beside them, for the record, never used to
rank). Candidates are FINISHED model runs with ``holdout_eval.json`` on one split, optionally one
sweep's or one search study's, filtered by ``where`` ("valid/scam/fpr<=0.02 and size_mb<=5"). A
candidate whose valid FPR at its calibrated threshold is over its own target for any thresholded
decision (``runs/budget.py``) stays in the table, marked, and is never crowned unless
``allow_over_budget=true``. The rest are
ranked by ``metric`` (default: valid recall of the primary decision at its threshold), ties broken by
``tiebreak`` (valid macro F1). The winner's pyfunc model becomes a version of ``model_name`` in the
MLflow Model Registry and the alias (``champion``) points at it; selecting the same run again reuses
its version.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from toxmod.config import instantiate_component, spec_of
from toxmod.errors import ConfigError, ToxmodError
from toxmod.progress import console, print_whole
from toxmod.runs.opening import opening_from_config
from toxmod.runs.provenance import environment_notes
from toxmod.runs.record import RunDir, checkpoint_choice
from toxmod.runs.store import FINISHED, NoStore, RunStore, StoredRun
from toxmod.runs.tracking import KIND_TAG, STUDY_TAG, Tracker
from toxmod.spec import PathsSpec
from toxmod.stages.compare import full_hash
from toxmod.stages.selection_rules import budget_reasons, f1_floor_reasons, holdout_note, same_model_reasons
from toxmod.stages.suite import SuiteGate, suite_format, suite_gate
from toxmod.tables import rows_table

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
MODEL_KINDS = ("model", "export")  # runs that hold a model (not reports, not sweep parents)
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
    tracker = instantiate_component(cfg.tracking, "tracking")
    store = tracker.store()
    if isinstance(store, NoStore):
        raise ToxmodError("select reads and writes the MLflow store; it cannot run with tracking=none")
    store.require("select")
    conditions = parse_where(cfg.get("where"))
    experiments = [cfg.experiments] if isinstance(cfg.experiments, str) else list(cfg.experiments or [])
    experiment = experiments[0] if len(experiments) == 1 else None  # also the default model name
    tags = {"sweep_id": str(cfg.sweep_id)} if cfg.get("sweep_id") else {}
    if cfg.get("study"):
        tags[STUDY_TAG] = str(cfg.study)
    found = store.search([str(e) for e in experiments] or None, FINISHED, tags, int(cfg.max_runs))
    candidates = [r for r in found if r.split_sha256 and r.tags.get(KIND_TAG, "model") in MODEL_KINDS]
    if cfg.get("split_sha256"):  # the full hash or a prefix of it, as tables show it
        wanted = full_hash(str(cfg.split_sha256), candidates)
        candidates = [r for r in candidates if r.split_sha256 == wanted]
    if not candidates:
        raise ToxmodError(
            "no FINISHED runs to select from" + (f" in experiments {experiments}" if experiments else "")
        )
    if str(cfg.get("checkpoint") or "best") != "best":
        candidates = [r for r in (at_checkpoint(r, str(cfg.checkpoint)) for r in candidates) if r is not None]
        if not candidates:
            raise ToxmodError(f"checkpoint={cfg.checkpoint}: no candidate run kept that checkpoint")
    split = candidates[0].split_sha256  # the newest run's split, unless split_sha256 chose one
    others = len([r for r in candidates if r.split_sha256 != split])
    candidates = [r for r in candidates if r.split_sha256 == split]
    primary = candidates[0].tags.get("primary_label", "")
    metric = str(cfg.get("metric") or f"valid/{primary_decision(candidates[0])}/recall")
    if not metric.startswith("valid/"):
        raise ConfigError(
            f"metric={metric}: select ranks on a valid metric only (valid/...); the holdout stays unseen"
        )
    for name, _, _ in conditions:
        if name.startswith("holdout/"):
            raise ConfigError(f"where: {name} is a holdout metric; conditions use valid metrics and costs")
    tiebreak = str(cfg.get("tiebreak") or "valid/macro_f1")
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
    sign = 1.0 if cfg.ascending else -1.0
    ranked = sorted(kept, key=lambda r: (sign * value_of(r, metric), -_or_low(value_of(r, tiebreak))))
    slack = float(cfg.fpr_slack)
    gate = _suite_gate(cfg, ranked, store, tracker) if cfg.get("suite") else None
    reasons = _reasons(cfg, ranked, primary_decision(candidates[0]), slack, gate)
    # the crowned candidates in their order, then the others with their reasons
    ranked = sorted(ranked, key=lambda r: r.run_id in reasons)  # stable: the metric's order within each
    _print_ranking(ranked, reasons, metric, tiebreak, primary, split, others, slack, gate)
    if ranked[0].run_id in reasons:
        raise ToxmodError(
            f"none of the {len(ranked)} candidates can be crowned (the reason beside each above); "
            "nothing was registered. Over budget: retrain with more calib data or a lower "
            "threshold.target_fpr, or pass allow_over_budget=true; F1 floor: f1_floor=0 turns it off"
        )
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


def at_checkpoint(run: StoredRun, choice: str) -> StoredRun | None:
    """``run`` as one of its kept checkpoints (``last`` or a step): that checkpoint's valid metrics
    (``checkpoint/<step-n>/valid/...``, at its own thresholds) and logged model; the run itself where the
    checkpoint is its best, None where it kept no such checkpoint."""
    wanted = checkpoint_choice(choice)
    if wanted == "last":
        name = run.tags.get("checkpoint.last")
        if name is None:  # nothing kept besides the best, or the last step was the best
            return run
    else:
        if run.tags.get("checkpoint.best_step") == str(wanted):
            return run
        name = f"step-{wanted}"
    prefix = f"checkpoint/{name}/"
    measured = {key[len(prefix) :]: value for key, value in run.metrics.items() if key.startswith(prefix)}
    if not measured:
        return None
    metrics = {k: v for k, v in run.metrics.items() if not k.startswith("valid/")} | measured
    tags = {k: v for k, v in run.tags.items() if k != "pyfunc_model_uri"}
    uri = run.tags.get(f"checkpoint.{name}.model_uri")
    tags |= {"pyfunc_model_uri": uri} if uri else {}
    return dataclasses.replace(run, name=f"{run.name}@{name}", metrics=metrics, tags=tags)


def _reasons(
    cfg: DictConfig, ranked: list[StoredRun], primary: str, slack: float, gate: SuiteGate | None
) -> dict[str, str]:
    """Why each run that is not crowned is not (``selection_rules``), every reason, budget first."""
    found: dict[str, list[str]] = {}
    rules = [] if cfg.allow_over_budget else [budget_reasons(ranked, slack)]
    rules.append(f1_floor_reasons(ranked, primary, float(cfg.f1_floor)))
    if gate is not None:
        below = [r for r in ranked if not gate.passes(r.run_id)]
        rules.append({r.run_id: f"below the suite gate ({gate.note(r.run_id)})" for r in below})
    for rule in rules:
        for run_id, reason in rule.items():
            found.setdefault(run_id, []).append(reason)
    for run_id, reason in same_model_reasons(ranked, set(found)).items():
        found.setdefault(run_id, []).append(reason)
    return {run_id: "; ".join(reasons) for run_id, reasons in found.items()}


def _suite_gate(cfg: DictConfig, runs: list[StoredRun], store: RunStore, tracker: Tracker) -> SuiteGate:
    """Each candidate's pass rate on ``suite`` (reused from its evaluation run, else scored now)."""
    return suite_gate(
        str(cfg.suite),
        suite_format(cfg.suite_format),
        cfg.suite_format.get("decision"),
        str(cfg.suite_metric),
        float(cfg.min_pass_rate),
        runs,
        store,
        tracker,
        opening_from_config(cfg),
        spec_of(PathsSpec, cfg.paths).downloads,
    )


def _experiment_name(store: RunStore, run: StoredRun) -> str:
    return store.experiment_name(run.experiment_id)


def primary_decision(run: StoredRun) -> str:
    """The thresholded decision of the run's primary label (``at_least_<level>`` for level schemes)."""
    primary = run.tags.get("primary_label", "")
    return f"at_least_{primary}" if run.tags.get("scheme") == "levels" else primary


def _or_low(value: float) -> float:
    return value if value == value else float("-inf")


def _print_ranking(
    order: list[StoredRun],
    reasons: dict[str, str],
    metric: str,
    tiebreak: str,
    primary: str,
    split: str,
    others: int,
    slack: float,
    gate: SuiteGate | None = None,
) -> None:
    columns = [
        "rank",
        "run",
        "name",
        "model",
        metric,
        tiebreak,
        "size_mb",
        "not ranked because",
        "environment",
    ]
    columns += [f"suite {gate.suite} {gate.metric}"] if gate else []
    columns += [f"holdout/{primary}/recall", f"holdout/{primary}/fpr", "holdout/macro_f1", "holdout budget"]
    environments = environment_notes(order)
    rows = [
        [
            i + 1 if r.run_id not in reasons else "-",
            r.run_id[:8],
            r.name,
            r.tags.get("model", "?"),
            value_of(r, metric),
            value_of(r, tiebreak),
            value_of(r, "size_mb"),
            reasons.get(r.run_id, ""),
            environments[r.run_id],
            *([gate.note(r.run_id)] if gate else []),
            value_of(r, f"holdout/{primary}/recall"),
            value_of(r, f"holdout/{primary}/fpr"),
            value_of(r, "holdout/macro_f1"),
            holdout_note(r, slack),
        ]
        for i, r in enumerate(order)
    ]
    title = (
        f"ranked by {metric} (ties: {tiebreak}) on split {split[:12]}; a run is ranked when every "
        "thresholded decision is within its FPR budget on valid and none falls under the F1 floor"
    )
    print_whole(rows_table(f"{title} (holdout columns: for the record, never used to choose)", columns, rows))
    first = order[0]
    if first.run_id not in reasons and holdout_note(first, slack) != "ok":
        console.print(
            f"note: {first.name} ranks first on valid although its holdout is "
            f"{holdout_note(first, slack)}:"
            " select chooses on valid only; the holdout column is for the record",
            soft_wrap=True,
        )
    if others:
        console.print(f"left out {others} run(s) on other splits (split_sha256=... chooses one)")
