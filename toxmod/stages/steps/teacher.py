"""Step 4 (optional): what the model builds on besides its data -- an ensemble's member runs, and a
student's teacher outputs (``teacher.run``) over the transfer set, from the content-hashed cache."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from toxmod.config import spec_of
from toxmod.data import LabeledDataset
from toxmod.data.text import normalize_text
from toxmod.distillation import teacher_targets
from toxmod.errors import ConfigError
from toxmod.hardware import HardwareSettings
from toxmod.models import Scorer
from toxmod.models.base import TeacherTargets
from toxmod.models.capabilities import BuiltFromRuns, OutOfFoldFromRuns, place
from toxmod.models.crossfit import OutOfFold, texts_sha256
from toxmod.progress import console
from toxmod.runs.opening import load_run_on_split
from toxmod.runs.record import RunDir
from toxmod.runs.tracking import Tracker
from toxmod.spec import PathsSpec
from toxmod.splits import Split
from toxmod.stages.corpora import TRAIN_SPLIT, Corpus, outside_texts
from toxmod.stages.steps.components import crossfit_settings, run_opening, teacher_ref
from toxmod.stages.steps.data import PreparedData


def attach_members(
    cfg: DictConfig, scorer: Scorer, tracker: Tracker, prepared: PreparedData, hardware: HardwareSettings
) -> list[OutOfFold]:
    """An ensemble: load its member runs (each must share this run's split) and hand them over, with
    their out-of-fold train scores when every member has them on the same folds (returned)."""
    if not isinstance(scorer, BuiltFromRuns):
        return []
    refs = scorer.member_runs()
    if not refs:
        return []
    downloads, opening = spec_of(PathsSpec, cfg.paths).downloads, run_opening(cfg)
    loaded = [
        load_run_on_split(
            ref,
            tracker.store(),
            downloads,
            prepared.split_sha256,
            "model.members",
            opening,
            scorer.member_checkpoint(),
        )
        for ref in refs
    ]
    scorer.attach_members([member.scorer for member in loaded])
    place(scorer, hardware)
    if not isinstance(scorer, OutOfFoldFromRuns):
        return []
    records = [OutOfFold.read(member.directory / RunDir.CROSSFIT) for member in loaded]
    present = [record for record in records if record is not None]
    if len(present) < len(records):
        if crossfit_settings(cfg).enabled or present:
            missing = [ref for ref, record in zip(refs, records) if record is None]
            raise ConfigError(
                f"model.members: {missing[0]} has no out-of-fold scores; an ensemble is cross-fitted "
                "from its members': train every member with crossfit.folds (the same folds)"
            )
        return []
    train_texts = texts_sha256(list(prepared.split.part(prepared.dataset, TRAIN_SPLIT).texts))
    for ref, record in zip(refs, present):
        if record.texts_sha256 != train_texts or not record.same_rows(present[0]):
            raise ConfigError(
                f"model.members: {ref} was cross-fitted on other folds or train rows than {refs[0]} "
                "(the same crossfit.folds and crossfit.seed on this split make the same folds)"
            )
    scorer.attach_out_of_fold([record.scores for record in present])
    return present


def teacher_outputs(
    cfg: DictConfig, prepared: PreparedData, tracker: Tracker, transfer: Sequence[Corpus] = ()
) -> tuple[TeacherTargets | None, dict[str, float]]:
    """The teacher's cached outputs for the transfer set (the train split, then ``transfer``) and the
    ``teacher/*`` metrics; (None, {}) without ``teacher.run``."""
    ref = teacher_ref(cfg)
    if ref is None:
        return None, {}
    train_part = prepared.split.part(prepared.dataset, TRAIN_SPLIT)
    extra_texts, removed = transfer_texts(transfer, prepared.dataset, prepared.split)
    teacher, cache = teacher_targets(
        cfg.distill,
        ref,
        list(train_part.texts),
        prepared.split_sha256,
        tracker.store(),
        spec_of(PathsSpec, cfg.paths).cache_dir,
        extra_texts,
        run_opening(cfg),
    )
    outputs = "crossfit" if cache.info.get("out_of_fold_folds") else "full"
    tracker.set_tags({"teacher.run": ref, "distill.cache_key": cache.key, "distill.teacher_outputs": outputs})
    metrics = {f"teacher/{name}": value for name, value in cache.info.items()}
    metrics["teacher/cache_built"] = float(cache.built)
    metrics["teacher/transfer_removed_evaluation_texts"] = float(removed)
    return teacher, metrics


def transfer_texts(
    transfer: Sequence[Corpus], dataset: LabeledDataset, split: Split
) -> tuple[list[str], int]:
    """The unlabeled texts ``distill.transfer`` adds after the train split, and how many were removed
    for being valid/calib/holdout texts (train texts and repeats are dropped too)."""
    seen = set(split.part(dataset, TRAIN_SPLIT).normalized_texts)
    extra, removed = [], 0
    for corpus in transfer:
        texts, record = outside_texts(corpus, dataset, split, "distill.transfer")
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
