"""Step 3: the data and its split, checked (leakage, decisions too coarse for their FPR target), and
the run's identity (tags, name) derived from them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toxmod.config import as_dict, spec_of
from toxmod.data import SPLIT_NAMES, LabeledDataset, build_dataset
from toxmod.environment import environment
from toxmod.environment import tags as environment_tags
from toxmod.evaluation.breakdown import check_columns, settings_from
from toxmod.paths import CONFIG_DIR, project_root
from toxmod.progress import StageClock, warn
from toxmod.runs.budget import SMALL_CALIB_TAG
from toxmod.runs.gc import process_identity
from toxmod.runs.jobs import job_key
from toxmod.runs.record import RunDir, git_sha, write_json
from toxmod.runs.tracking import KIND_TAG, check_user_tags
from toxmod.spec import DataSpec, EvaluationSpec, SplitSpec
from toxmod.splits import Split, build_manifest, prepare_split, write_split_folder
from toxmod.splits.checks import check_split, coarse_decisions
from toxmod.stages.steps.components import Components


@dataclass(frozen=True)
class PreparedData:
    """The dataset, its split and what the checks found; ``parts`` are the split's named subsets."""

    dataset: LabeledDataset
    split: Split
    leakage: dict[str, Any]
    manifest: dict[str, Any]
    warnings: list[str]
    coarse: dict[str, str]  # decision -> "10 negatives, needs 50" where too few for its FPR target

    @property
    def split_sha256(self) -> str:
        return str(self.manifest["split_sha256"])

    def parts(self) -> dict[str, LabeledDataset]:
        return {name: self.split.part(self.dataset, name) for name in SPLIT_NAMES}


def prepare_data(cfg: DictConfig, components: Components, clock: StageClock) -> PreparedData:
    """Read the data, build (or read) the split, and warn about what the checks found."""
    with clock.stage("data"):
        evaluation = settings_from(spec_of(EvaluationSpec, cfg.get("evaluation")), 0, 0)
        dataset = build_dataset(spec_of(DataSpec, cfg.data), evaluation.data_columns())
        check_columns(evaluation, list(dataset.texts), dataset.columns or {}, f"data file {dataset.path}")
    with clock.stage("split"):
        split, leakage = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    targets = components.fpr_targets
    warnings = check_split(dataset, split, components.fit_split, targets)
    coarse = coarse_decisions(dataset, split, components.fit_split, targets)
    for warning in warnings:
        warn(warning)
    return PreparedData(dataset, split, leakage, build_manifest(dataset, split), warnings, coarse)


def write_inputs(run: RunDir, cfg: DictConfig, prepared: PreparedData, threads: int) -> dict[str, Any]:
    """The run folder's inputs: split folder, leakage report, resolved config, environment (returned)."""
    run.path.mkdir(parents=True, exist_ok=True)
    write_split_folder(run.split, prepared.dataset, prepared.split)
    write_json(run.leakage, prepared.leakage)
    OmegaConf.save(cfg, run.config, resolve=True)
    env = environment(threads)
    write_json(run / RunDir.ENVIRONMENT, env)
    return env


def run_tags(
    cfg: DictConfig,
    run: RunDir,
    prepared: PreparedData,
    components: Components,
    env: dict[str, Any],
    sweep_id: str | None,
    stage_tags: dict[str, str] | None = None,
) -> dict[str, str]:
    """What the tracking run is tagged with: data, split, code, machine and process identity, the
    ``stage_tags`` a stage adds (an export's source), and the config's own ``tags`` beside them."""
    dataset, warnings, coarse = prepared.dataset, prepared.warnings, prepared.coarse
    own = {
        "split_sha256": prepared.split_sha256,
        "data_sha256": dataset.sha256,
        "git_sha": git_sha(project_root()),
        "dataset": dataset.name,
        "model": str(cfg.model.name),
        "scheme": dataset.scheme.kind,
        "primary_label": dataset.scheme.primary_label,
        "split_source": prepared.split.source,
        "run_dir": str(run.path.resolve()),
        "job_key": job_key(as_dict(cfg)),
        KIND_TAG: "export" if str(cfg.task_name) == "export" else "model",
        "hardware.threads": str(components.hardware.threads),
        "hardware.threads_from": components.hardware.threads_from,
        "hardware.precision_from": components.hardware.precision_from,
        **environment_tags(env),
        **process_identity(),  # lets `python -m toxmod.runs gc` tell a dead run from a running one
        "allow_leakage": str(bool(cfg.split.allow_leakage)).lower(),
        "leakage_found": str(prepared.leakage["leaks"]).lower(),
        **({"warnings": " | ".join(warnings)[:5000]} if warnings else {}),
        **({SMALL_CALIB_TAG: "; ".join(f"{d}: {n}" for d, n in coarse.items())} if coarse else {}),
        **({"sweep_id": sweep_id} if sweep_id else {}),
        **(stage_tags or {}),
    }
    return {**check_user_tags(cfg.tags), **own}  # the config's own tags never replace toxmod's


# What a run name leaves out: the model and data are named already; where a run ran, is recorded,
# or continues from are not what it is.
_UNNAMED_CHOICES = ("model", "data", "resume", "run_name", "search_trial")
_UNNAMED_GROUPS = ("tracking", "paths", "hydra", "hardware", "callbacks", "tags", "latency", "search")
_UNNAMED_KEYS = ("bootstrap", "plots", "log_pyfunc", "evaluate_splits", "optimized_metric")  # not the model


def _short(value: str) -> str:
    """A searched float (``0.08747064810385989``) as 4 significant digits in a name; the run's config
    keeps the full value."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if "." in value and len(value) > 8 else value


def default_run_name(model: str, dataset: str, overrides: Sequence[str] | None) -> str:
    """``tfidf_logreg-janitr-optuna-C=2-3fa1``: model, data, what the command changed, a unique suffix.

    Config group choices appear as the option (``threshold=optuna`` -> ``optuna``), other keys as
    their last part and value (``model.C=2`` -> ``C=2``); the suffix tells apart runs of one command.
    """
    parts = [model, dataset]
    for override in overrides or ():
        key, _, value = override.lstrip("+~").partition("=")
        if not value or key in (*_UNNAMED_CHOICES, *_UNNAMED_KEYS) or key.split(".", 1)[0] in _UNNAMED_GROUPS:
            continue
        is_group = "." not in key and (CONFIG_DIR / key).is_dir()  # threshold=optuna -> optuna
        parts.append(value if is_group else f"{key.rsplit('.', 1)[-1]}={_short(value)}")
    name = "-".join(parts)
    if len(name) > 80:
        name = name[:79] + "~"
    return f"{name}-{secrets.token_hex(2)}"
