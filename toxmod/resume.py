"""``resume=last | <checkpoint> | <run dir> | <run id>``: find where a chunked or killed run stopped.

A resumed run writes into its original run directory and MLflow run; only its Hydra log folder is new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toxmod.errors import ConfigError
from toxmod.runs import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, TRACKING_FILE


@dataclass(frozen=True)
class ResumePoint:
    """The run directory to continue in, the checkpoint to load and the MLflow run to reopen."""

    run_dir: Path
    checkpoint: Path
    run_id: str | None


def resolve_resume(spec: str, cfg: DictConfig) -> ResumePoint:
    """Turn ``resume=`` into a ``ResumePoint`` (one-line ConfigError when nothing matches)."""
    if spec == "last":
        return _point(_latest_run_dir(cfg), None)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".ckpt":
        return _point(path.parent.parent, path)
    if path.is_dir():
        return _point(path, None)
    run_dir = _run_dir_of_run_id(spec, cfg)
    return _point(run_dir, None)


def _point(run_dir: Path, checkpoint: Path | None) -> ResumePoint:
    checkpoint = checkpoint or run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not checkpoint.is_file():
        raise ConfigError(f"resume: {checkpoint} does not exist (nothing to resume in {run_dir})")
    run_id = None
    if (run_dir / TRACKING_FILE).is_file():
        run_id = json.loads((run_dir / TRACKING_FILE).read_text()).get("run_id")
    return ResumePoint(run_dir.resolve(), checkpoint.resolve(), run_id)


def _latest_run_dir(cfg: DictConfig) -> Path:
    """The most recently checkpointed run of the same model and data under outputs/ and multirun/."""
    roots = [Path(cfg.paths.output_dir), Path(cfg.paths.root) / "multirun"]
    candidates = []
    for root in roots:
        for checkpoint in root.glob(f"**/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"):
            run_dir = checkpoint.parent.parent
            if _same_job(run_dir, cfg):
                candidates.append((checkpoint.stat().st_mtime, run_dir))
    if not candidates:
        raise ConfigError(
            f"resume=last: no run of model={cfg.model.name} data={cfg.data.name} has "
            f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT} under {roots[0]} or {roots[1]}"
        )
    return max(candidates)[1]


def _same_job(run_dir: Path, cfg: DictConfig) -> bool:
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        return False
    previous = OmegaConf.load(config_file)
    return (
        previous.get("model", {}).get("name") == cfg.model.name
        and previous.get("data", {}).get("name") == cfg.data.name
    )


def _run_dir_of_run_id(run_id: str, cfg: DictConfig) -> Path:
    from toxmod.config import instantiate_component

    tracker = instantiate_component(cfg.tracking, "tracking")
    client = getattr(tracker, "client", None)
    if client is None:
        raise ConfigError(f"resume={run_id}: not a checkpoint or run directory (and tracking=none)")
    try:
        run = client.get_run(run_id)
    except Exception:
        raise ConfigError(f"resume={run_id}: not a checkpoint, a run directory or a run id") from None
    run_dir = run.data.tags.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        raise ConfigError(f"resume={run_id}: the run's directory {run_dir} is not on this machine")
    return Path(run_dir)


def check_resumable(run_dir: Path, cfg: DictConfig, split_sha256: str) -> None:
    """A resumed run must train on the same split, with the same auxiliary heads (checkpoint shapes)."""
    tracking_file = run_dir / TRACKING_FILE
    if tracking_file.is_file():
        previous = json.loads(tracking_file.read_text()).get("split_sha256")
        if previous and previous != split_sha256:
            raise ConfigError(
                f"resume: the split changed (sha256 {split_sha256[:12]} vs the run's {previous[:12]}); "
                "a resumed run must train on the same split"
            )
    if (run_dir / CONFIG_FILE).is_file():
        before, now = _auxiliary_heads(OmegaConf.load(run_dir / CONFIG_FILE)), _auxiliary_heads(cfg)
        if before != now:
            raise ConfigError(
                f"resume: data.auxiliary / model.auxiliary_weight changed ({now} vs the run's {before}); "
                "the checkpoint's heads were built from the run's own settings"
            )


def _auxiliary_heads(cfg: DictConfig) -> Any:
    """What decides the auxiliary heads' shape: the tag settings, if heads are trained at all."""
    settings = cfg.data.get("auxiliary")
    if settings is None or not cfg.model.get("auxiliary_weight", 1.0):
        return None
    return OmegaConf.to_container(settings, resolve=True)
