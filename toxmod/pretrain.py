"""``python -m toxmod.pretrain model=minilm [pretrain.corpus=train_split|<data config>|<file>]``: DAPT.

Continues masked-LM training of an encoder on unlabeled domain text -- by default the train split of
``data=``; another data config's texts (all rows, labels unused) or a corpus file are filtered so
no text of ``data=``'s valid/calib/holdout is ever seen. Fine-tune from the
result with ``python -m toxmod.train model=minilm model.init_from=<printed directory>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from toxmod.config import group_option, group_options, instantiate_component, run_entry_point
from toxmod.data import build_dataset
from toxmod.data.readers import read_table
from toxmod.data.text import normalize_text
from toxmod.errors import ConfigError, DataError, exit_on_user_error
from toxmod.hardware import apply_threads, resolve_hardware
from toxmod.reports import console
from toxmod.resume import reopen_resumed_run, resolve_resume, resumed_config
from toxmod.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    TRACKING_FILE,
    record_failure,
    write_json,
)
from toxmod.splits import prepare_split
from toxmod.tracking import flatten

TRAIN_SPLIT_CORPUS = "train_split"
DAPT_FILE = "dapt.json"
EVALUATION_PARTS = ("valid", "calib", "holdout")


def corpus_texts(cfg: DictConfig) -> tuple[list[str], dict[str, Any]]:
    """The DAPT texts and how they were chosen (evaluation-split texts are always removed)."""
    dataset = build_dataset(cfg.data)
    split, _ = prepare_split(cfg.split, dataset)
    corpus = str(cfg.pretrain.corpus)
    if corpus == TRAIN_SPLIT_CORPUS:
        texts = [str(t) for t in split.part(dataset, "train").texts]
        return texts, {"corpus": f"{dataset.name} train split", "texts": len(texts), "removed": 0}
    path = Path(corpus).expanduser()
    if corpus in group_options("data") and not path.is_file():
        other = build_dataset(group_option(cfg, "pretrain", "data", corpus))
        texts, source = [str(t) for t in other.texts if str(t).strip()], f"data={corpus} (all rows)"
    else:
        texts, source = _read_corpus(path, str(cfg.pretrain.text_column)), corpus
    held_out = {t for part in EVALUATION_PARTS for t in split.part(dataset, part).normalized_texts}
    kept = [t for t in texts if normalize_text(t) not in held_out]
    return kept, {"corpus": source, "texts": len(kept), "removed": len(texts) - len(kept)}


def _read_corpus(path: Path, text_column: str) -> list[str]:
    if not path.is_file():
        raise ConfigError(
            f"pretrain.corpus={path}: no such file (use {TRAIN_SPLIT_CORPUS}, a data config"
            f" ({', '.join(group_options('data'))}), a .txt or a table)"
        )
    if path.suffix == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        frame = read_table(path)
        if text_column not in frame.columns:
            raise DataError(f"{path}: no column {text_column!r} (set pretrain.text_column)")
        texts = frame[text_column].tolist()
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{path}: the corpus has no non-empty texts")
    return texts


def run_pretraining(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] | None = None) -> Path:
    """DAPT as configured; returns the directory to pass as ``model.init_from``.

    ``resume=last|auto|<run dir>|<last.ckpt>|<run id>`` continues an interrupted or chunked run
    (``pretrain.max_steps``) in its own directory and MLflow run, with its own config.
    """
    from toxmod.models.transformer.lightning_parts import TrackerLogger
    from toxmod.models.transformer.pretraining import pretrain

    resume = resolve_resume(str(cfg.resume), cfg) if cfg.get("resume") else None
    if resume:
        cfg = resumed_config(resume.run_dir, cfg, overrides)
    run_dir = resume.run_dir if resume else Path(run_dir)
    hardware = resolve_hardware(cfg.hardware)
    apply_threads(hardware)
    scorer = instantiate_component(cfg.model, "model")
    if not hasattr(scorer, "weight_source"):
        raise ConfigError(
            f"model={cfg.model.name} is not a transformer; DAPT needs model=minilm, student, ..."
        )
    texts, corpus = corpus_texts(cfg)
    corpus_sha256 = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    corpus["corpus_sha256"] = corpus_sha256
    if resume:
        reopen_resumed_run(resume, corpus_sha256, DAPT_FILE, key="corpus_sha256", what="corpus")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
    tracker = instantiate_component(cfg.tracking, "tracking")
    out_dir = run_dir / "dapt_model"
    tags = {
        "task": "dapt",
        "model": str(cfg.model.name),
        "dataset": str(cfg.data.name),
        "run_dir": str(run_dir.resolve()),
    }
    run_name = f"dapt-{cfg.model.name}-{cfg.data.name}"
    try:
        with tracker.run(run_name=run_name, tags=tags, resume_run_id=resume.run_id if resume else None):
            write_json(run_dir / TRACKING_FILE, {"run_id": tracker.run_id, "corpus_sha256": corpus_sha256})
            if resume is None:  # MLflow params are immutable; a resumed chunk records its config file
                tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            console.print(
                f"[bold]DAPT[/] {cfg.model.name} on {corpus['texts']} texts of {corpus['corpus']} ..."
            )
            logger = TrackerLogger(tracker) if tracker.enabled else False
            settings = {
                **OmegaConf.to_container(cfg.pretrain, resolve=True),
                "every_n_steps": cfg.checkpoint.get("every_n_steps"),
            }
            metrics = pretrain(
                scorer,
                texts,
                out_dir,
                hardware,
                settings,
                logger,
                last_checkpoint=run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT,
                resume_from=resume.checkpoint if resume else None,
            )
            metrics["dapt/removed_evaluation_texts"] = float(corpus["removed"])
            write_json(run_dir / DAPT_FILE, {**corpus, **metrics, "init_from": str(out_dir)})
            tracker.log_metrics(metrics)
            tracker.log_artifact(run_dir / DAPT_FILE)
    except BaseException as error:
        record_failure(run_dir, error)
        raise
    console.print(
        f"fine-tune from it: python -m toxmod.train model={cfg.model.name} model.init_from={out_dir}"
    )
    return out_dir


@hydra.main(version_base="1.3", config_path="../conf", config_name="pretrain")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    run_pretraining(cfg, Path(hydra_config.runtime.output_dir), list(hydra_config.overrides.task))


def main() -> Any:
    """Console entry point (``toxmod-pretrain`` / ``python -m toxmod.pretrain``)."""
    return run_entry_point("pretrain", _hydra_main)


if __name__ == "__main__":
    main()
