"""Step 2 (optional, ``teacher.seeds`` / ``teacher.also_train``): train an ensemble's members first,
one run each, and name them in ``model.members``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from toxmod.config import spec_of, with_group_option
from toxmod.errors import ConfigError
from toxmod.progress import console, styled
from toxmod.runs.record import RunDir
from toxmod.spec import TeacherSpec

# train(cfg, run_dir) -> a result with run_id and run_dir: the train stage itself, passed in.
TrainFunction = Callable[[DictConfig, Path], Any]
NO_TEACHER: dict[str, Any] = {
    "run": None,
    "member": None,
    "seeds": [],
    "also_train": [],
    "model_overrides": {},
}


@dataclass(frozen=True)
class MemberJob:
    """One member run to train: its model config name, seed and whole composed config."""

    member: str
    seed: int
    config: DictConfig


def member_jobs(cfg: DictConfig) -> list[MemberJob]:
    """``teacher.seeds`` x ``teacher.member`` and ``teacher.also_train``: every member's config,
    composed before any member is trained (a wrong model config name fails before any work)."""
    teacher = spec_of(TeacherSpec, cfg.get("teacher"))
    seeds = list(teacher.seeds or ())
    pairs = [(str(teacher.member), seed) for seed in seeds]
    pairs += [(name, int(cfg.seed)) for name in teacher.also_train or ()]
    if not pairs:
        return []
    if seeds and not teacher.member:
        raise ConfigError("teacher.seeds is set but teacher.member is not (a model config, e.g. minilm)")
    if "members" not in cfg.model:
        raise ConfigError(
            f"teacher.seeds trains ensemble members; model={cfg.model.name} is not model=ensemble"
        )
    choices = [f"{k}={v}" for k, v in (teacher.member_choices or {}).items()]
    jobs = []
    for member, seed in pairs:
        member_cfg = with_group_option(cfg, "train", "model", member, choices)
        with open_dict(member_cfg):
            if member == teacher.member:
                member_cfg.model.merge_with(teacher.model_overrides or {})
            member_cfg.seed = seed
            member_cfg.teacher = {**NO_TEACHER, "member_choices": None}
            member_cfg.resume = "auto"
            member_cfg.run_name = f"{cfg.run_name or 'teacher'}-{member}-seed{seed}"
        jobs.append(MemberJob(member, seed, member_cfg))
    return jobs


def with_trained_members(cfg: DictConfig, run: RunDir, train: TrainFunction) -> DictConfig:
    """Train every member job (``member_jobs``) and add the runs to ``model.members`` (``resume=auto``:
    a member already trained with the same config is reused, not retrained). Without any, ``cfg`` as
    it is."""
    jobs = member_jobs(cfg)
    if not jobs:
        return cfg
    refs = [str(ref) for ref in cfg.model.members or []]
    for job in jobs:
        console.print(styled("teacher member", f" {job.member} seed {job.seed}"))
        result = train(job.config, run.path / "members" / f"{job.member}-seed{job.seed}")
        refs.append(str(result.run_id or result.run_dir))
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.members = refs
    return cfg
