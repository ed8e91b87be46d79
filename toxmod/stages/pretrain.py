"""The DAPT stage: continue masked-LM training of an encoder on unlabeled domain text.

By default the corpus is the train split of ``data=``; another data config's texts (all rows, labels
unused) or a corpus file are filtered so no text of ``data=``'s valid/calib/holdout is ever seen.
The result directory is what ``model.init_from=<dir>`` fine-tunes from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toxmod.config import as_dict, hardware_of, instantiate_component, spec_of
from toxmod.data import build_dataset
from toxmod.errors import ConfigError
from toxmod.hardware import apply_threads
from toxmod.models.transformer import TransformerScorer
from toxmod.progress import console, styled
from toxmod.runs.claim import TOKEN_TAG, check_resume_target, claimed
from toxmod.runs.gc import process_identity
from toxmod.runs.jobs import FinishedJob, check_resumable, job_key, resolve_resume, resumed_config
from toxmod.runs.record import RunDir, mark_finished, record_failure, reopen, stage_marker, write_tracking
from toxmod.runs.tracking import flatten
from toxmod.spec import DataSpec, SplitSpec
from toxmod.splits import prepare_split
from toxmod.stages.corpora import corpus_of, outside_texts

TRAIN_SPLIT_CORPUS = "train_split"


def corpus_texts(cfg: DictConfig) -> tuple[list[str], dict[str, Any]]:
    """The DAPT texts and how they were chosen (evaluation-split texts are always removed); another
    corpus is made concrete (a data config composed, a file checked) before any data is read."""
    source = str(cfg.pretrain.corpus)
    corpus = None if source == TRAIN_SPLIT_CORPUS else corpus_of(source, cfg, "pretrain", "pretrain.corpus")
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    if corpus is None:
        texts = [str(t) for t in split.part(dataset, "train").texts]
        return texts, {"corpus": f"{dataset.name} train split", "texts": len(texts), "removed": 0}
    return outside_texts(corpus, dataset, split, "pretrain.corpus", str(cfg.pretrain.text_column))


def run_pretraining(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] | None = None) -> Path:
    """DAPT as configured; returns the directory to pass as ``model.init_from``.

    ``resume=last|auto|<run dir>|<last.ckpt>|<run id>`` continues an interrupted or chunked run
    (``pretrain.max_steps``) in its own directory and tracking run, with its own config.
    """
    from toxmod.models.transformer.callbacks import TrackerLogger
    from toxmod.models.transformer.pretraining import pretrain

    tracker = instantiate_component(cfg.tracking, "tracking")
    plan = resolve_resume(str(cfg.resume), as_dict(cfg), tracker.store()) if cfg.get("resume") else None
    if isinstance(plan, FinishedJob):
        console.print(f"resume=auto: this job already finished in {plan.run_dir}; nothing to do")
        return RunDir(plan.run_dir) / RunDir.DAPT_MODEL
    if plan is not None:  # the run's own config, its tracking store included
        cfg = OmegaConf.create(resumed_config(plan.run_dir, as_dict(cfg), overrides))
        tracker = instantiate_component(cfg.tracking, "tracking")
    run = RunDir(plan.run_dir if plan else run_dir)
    if plan is not None:  # before anything is written: the tracking run must be this folder's
        check_resume_target(run, plan.run_id, tracker.store())
    with claimed(run, resuming=plan is not None) as token:  # gc leaves it alone while this runs
        hardware = hardware_of(cfg.hardware)
        apply_threads(hardware)
        scorer = instantiate_component(cfg.model, "model")
        if not isinstance(scorer, TransformerScorer):
            raise ConfigError(
                f"model={cfg.model.name} is not a transformer; DAPT needs model=minilm, student, ..."
            )
        texts, corpus = corpus_texts(cfg)
        corpus_sha256 = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
        corpus["corpus_sha256"] = corpus_sha256
        if plan is not None:
            check_resumable(plan.run_dir, corpus_sha256, key="corpus_sha256", what="corpus")
            console.print(styled("resuming", f" {plan.run_dir} from {plan.checkpoint.name}"))
            reopen(run)
        run.path.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run.config, resolve=True)
        out_dir = run / RunDir.DAPT_MODEL
        tags = {
            "task": "dapt",
            "model": str(cfg.model.name),
            "dataset": str(cfg.data.name),
            "run_dir": str(run.path.resolve()),
            "job_key": job_key(as_dict(cfg)),
            TOKEN_TAG: token,
            **process_identity(),  # lets `python -m toxmod.runs gc` tell a dead run from a running one
        }
        run_name = f"dapt-{cfg.model.name}-{cfg.data.name}"
        try:
            with tracker.run(run_name=run_name, tags=tags, resume_run_id=plan.run_id if plan else None):
                write_tracking(run, tracker.run_id, corpus_sha256=corpus_sha256, job_key=tags["job_key"])
                if plan is None:  # MLflow params are immutable; a resumed chunk records its config file
                    tracker.log_params(flatten(as_dict(cfg)))
                console.print(
                    styled("DAPT", f" {cfg.model.name} on {corpus['texts']} texts of {corpus['corpus']} ...")
                )
                settings = {
                    **as_dict(cfg.pretrain),
                    "every_n_steps": cfg.checkpoint.get("every_n_steps"),
                }
                metrics = pretrain(
                    scorer.encoder,
                    scorer.recipe,
                    texts,
                    out_dir,
                    hardware,
                    settings,
                    TrackerLogger(tracker) if tracker.enabled else False,
                    last_checkpoint=run.last_checkpoint,
                    resume_from=plan.checkpoint if plan else None,
                )
                metrics["dapt/removed_evaluation_texts"] = float(corpus["removed"])
                record = stage_marker(
                    run, RunDir.DAPT_RECORD, {**corpus, **metrics, "init_from": str(out_dir)}
                )
                tracker.log_metrics(metrics)
                tracker.log_artifact(record)
        except BaseException as error:
            record_failure(run, error)
            raise
        mark_finished(run)
        console.print(
            f"fine-tune from it: python -m toxmod.train model={cfg.model.name} model.init_from={out_dir}"
        )
        return out_dir
