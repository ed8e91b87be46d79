"""The export stage: a finished transformer run -> a new run scored by ONNX Runtime.

The new run is an ordinary run of the train stage whose model is ``OnnxScorer`` (``fit`` exports,
quantizes and checks parity on valid; see ``models/onnx_model.py``). It reuses the source run's data,
frozen split folder (so the split hash is the same), threshold method, seed and bootstrap, and is
tagged ``source_run_id`` / ``source_run_dir`` (the stage's own tags, which no config can set); it gets
its own thresholds fitted on calib, its own holdout metrics and its own MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from toxmod.config import as_dict, instantiate_component, spec_of
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.files import read_json
from toxmod.models.base import SCORER_FILE
from toxmod.runs.opening import locate_run, opening_from_config, refuse_outside_paths
from toxmod.runs.record import RunDir
from toxmod.runs.tracking import check_user_tags
from toxmod.spec import PathsSpec
from toxmod.splits import frozen_split_config
from toxmod.stages.steps.members import NO_TEACHER
from toxmod.stages.train import TrainResult, train
from toxmod.thresholds import Thresholds

EXPORTABLE = ("transformer",)  # kinds with a network to export (also inside temperature_scaled)


def export(cfg: DictConfig, run_dir: str | Path) -> TrainResult:
    """``run=<run dir | MLflow run id>``: export it and record the exported model as a new run."""
    tracker = instantiate_component(cfg.tracking, "tracking")
    source = locate_run(
        str(cfg.run), tracker.store(), spec_of(PathsSpec, cfg.paths).downloads, cfg.get("checkpoint")
    )
    saved = source.saved_config()  # checked before anything else is read from the run
    if saved is None:
        raise DamagedFileError(f"{source.config}: missing (the source run's config)")
    source_cfg = OmegaConf.create(saved)
    check_user_tags(source_cfg.get("tags"), f"{source.config}: tags")
    if cfg.data_path:  # the opener names the data file; else the run's own must lie in their folders
        OmegaConf.update(source_cfg, "data.path", str(Path(str(cfg.data_path)).expanduser()), merge=False)
    remedy = "pass data_path=<the data file> to read it"  # the export reads no other file the run names
    refuse_outside_paths(source_cfg, source, opening_from_config(cfg), keys=("data.path",), remedy=remedy)
    _check_exportable(source)
    source_id = source.tracking_record().get("run_id")
    stage_tags = {
        "source_run_id": str(source_id or ""),
        "source_run_dir": str(source.path.resolve()),
        "export.format": str(cfg.export.score_with),
        **({"source_checkpoint": source.checkpoint} if source.checkpoint else {}),
    }
    return train(export_config(cfg, source, source_cfg), run_dir, stage_tags=stage_tags)


def _check_exportable(source: RunDir) -> None:
    """A transformer run (or one calibrated with temperatures around a transformer), else one line."""
    description_path = source.model / SCORER_FILE
    kind = read_json(description_path).get("kind")
    if kind == "temperature_scaled":
        kind = read_json(source.model / "inner" / SCORER_FILE).get("kind")
    if kind not in EXPORTABLE:
        raise ConfigError(
            f"run={source.path}: a {kind} model; ONNX export covers transformer runs (students, MiniLM, "
            "any HF encoder). Classical models score at batch 1 in-process already"
        )


def export_config(cfg: DictConfig, source: RunDir, source_cfg: DictConfig) -> DictConfig:
    """The source run's config with the exported model, the source's frozen split folder, and this
    command's tracking, paths and hardware."""
    settings: dict[str, Any] = OmegaConf.to_container(cfg.export, resolve=True)  # type: ignore[assignment]
    thresholds = Thresholds.load(source.thresholds).as_dict()
    source_model = str(source_cfg.model.get("name", "model"))
    new = source_cfg.copy()
    with open_dict(new):
        new.model = {
            "_target_": "toxmod.models.onnx_model.OnnxScorer",
            "name": f"{source_model}-onnx-{settings['score_with']}",
            "source": str(source.path.resolve()),
            "source_checkpoint": source.checkpoint,
            "source_thresholds": thresholds,
            **settings,  # export.* are OnnxScorer's settings, one for one
        }
        leakage_allowed = bool(OmegaConf.select(source_cfg, "split.allow_leakage", default=False))
        new.split = frozen_split_config(source.split, leakage_allowed)
        for key in ("tracking", "paths", "hardware"):
            new[key] = cfg[key]
        new.task_name = str(cfg.task_name)
        new.run_name = cfg.get("run_name") or f"{source_model}-onnx-{settings['score_with']}"
        new.tags = as_dict(source_cfg.get("tags"))  # the source's own tags, beside the export's
        new.resume = None
        new.calibration = {"method": "none"}  # a calibrated source's temperatures travel with the export
        new.distill = {"method": "none"}
        new.teacher = {**NO_TEACHER, "member_choices": None}
        new.checkpoint = {**(source_cfg.get("checkpoint") or {}), "log_best": False}
        new.callbacks = {}
    return new
