"""Step 4 (optional): what the model builds on besides its data -- an ensemble's member runs, and a
student's teacher outputs (``teacher.run``) over the transfer set, from the content-hashed cache."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from toxmod.data import LabeledDataset
from toxmod.data.text import normalize_text
from toxmod.distillation import teacher_targets
from toxmod.errors import ConfigError
from toxmod.hardware import HardwareSettings
from toxmod.models import Scorer
from toxmod.models.base import TeacherTargets
from toxmod.models.capabilities import BuiltFromRuns, place
from toxmod.progress import console
from toxmod.runs.opening import load_run_on_split
from toxmod.runs.tracking import Tracker
from toxmod.splits import Split
from toxmod.stages.corpora import TRAIN_SPLIT, outside_texts
from toxmod.stages.steps.components import run_opening, teacher_ref
from toxmod.stages.steps.data import PreparedData


def attach_members(
    cfg: DictConfig, scorer: Scorer, tracker: Tracker, split_sha256: str, hardware: HardwareSettings
) -> None:
    """An ensemble: load its member runs (each must share this run's split) and hand them over."""
    if not isinstance(scorer, BuiltFromRuns):
        return
    refs = scorer.member_runs()
    if not refs:
        return
    downloads, opening = Path(str(cfg.paths.downloads)), run_opening(cfg)
    members = [
        load_run_on_split(
            ref,
            tracker.store(),
            downloads,
            split_sha256,
            "model.members",
            opening,
            scorer.member_checkpoint(),
        ).scorer
        for ref in refs
    ]
    scorer.attach_members(members)
    place(scorer, hardware)


def teacher_outputs(
    cfg: DictConfig, prepared: PreparedData, tracker: Tracker
) -> tuple[TeacherTargets | None, dict[str, float]]:
    """The teacher's cached outputs for the transfer set and the ``teacher/*`` metrics; (None, {})
    without ``teacher.run``."""
    ref = teacher_ref(cfg)
    if ref is None:
        return None, {}
    train_part = prepared.split.part(prepared.dataset, TRAIN_SPLIT)
    extra_texts, removed = transfer_texts(cfg, prepared.dataset, prepared.split)
    teacher, cache = teacher_targets(
        cfg.distill,
        ref,
        list(train_part.texts),
        prepared.split_sha256,
        tracker.store(),
        Path(str(cfg.paths.cache_dir)),
        extra_texts,
        run_opening(cfg),
    )
    tracker.set_tags({"teacher.run": ref, "distill.cache_key": cache.key})
    metrics = {f"teacher/{name}": value for name, value in cache.info.items()}
    metrics["teacher/cache_built"] = float(cache.built)
    metrics["teacher/transfer_removed_evaluation_texts"] = float(removed)
    return teacher, metrics


def transfer_texts(cfg: DictConfig, dataset: LabeledDataset, split: Split) -> tuple[list[str], int]:
    """The unlabeled texts ``distill.transfer`` adds after the train split, and how many were removed
    for being valid/calib/holdout texts (train texts and repeats are dropped too)."""
    sources = [str(s) for s in (cfg.distill.get("transfer") or [TRAIN_SPLIT])]
    if sources[0] != TRAIN_SPLIT:
        raise ConfigError(
            f"distill.transfer={sources}: starts with {TRAIN_SPLIT} (the labelled rows); "
            f"add unlabeled texts after it, e.g. [{TRAIN_SPLIT}, ruddit]"
        )
    seen = set(split.part(dataset, TRAIN_SPLIT).normalized_texts)
    extra, removed = [], 0
    for source in sources[1:]:
        texts, record = outside_texts(source, cfg, "train", dataset, split, "distill.transfer")
        removed += record["removed"]
        for text in texts:
            key = normalize_text(text)
            if key not in seen:
                seen.add(key)
                extra.append(text)
    if extra or removed:
        console.print(
            f"distill.transfer: {len(extra)} unlabeled texts added; {removed} dropped for being in "
            "valid/calib/holdout"
        )
    return extra, removed
