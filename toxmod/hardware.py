"""Hardware resolution: accelerator, devices, precision, threads and loader workers from ``hardware=``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig

from toxmod.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda", "mps")
DEFAULT_PRECISION = {"cuda": "bf16-mixed", "mps": "32-true", "cpu": "32-true"}


@dataclass(frozen=True)
class HardwareSettings:
    """What the training code should use; ``threads`` also drives the classical models' ``n_jobs``."""

    accelerator: str
    devices: Any
    precision: str
    threads: int
    num_workers: int
    strategy: str = "auto"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def processes(self) -> int:
        """Processes the strategy trains with (DDP: one per device)."""
        return process_count(self.strategy, self.devices)


CPU = HardwareSettings("cpu", 1, "32-true", os.cpu_count() or 1, 0)  # what a model uses when told nothing


def process_count(strategy: str, devices: Any) -> int:
    """One per device under a DDP strategy with a device count, else one."""
    return int(devices) if "ddp" in str(strategy) and str(devices).isdigit() else 1


def _available_accelerator() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_hardware(cfg: DictConfig) -> HardwareSettings:
    """Turn a ``hardware`` config into concrete settings (``auto`` picks cuda > mps > cpu)."""
    requested = str(cfg.get("accelerator", "auto"))
    if requested not in ACCELERATORS:
        raise ConfigError(f"hardware.accelerator={requested!r}; expected one of {list(ACCELERATORS)}")
    accelerator = _available_accelerator() if requested == "auto" else requested
    if requested in ("cuda", "mps") and _available_accelerator() != requested:
        raise ConfigError(f"hardware={requested} was asked for but no {requested} device is available here")
    precision = cfg.get("precision") or DEFAULT_PRECISION[accelerator]
    strategy = str(cfg.get("strategy") or "auto")
    devices = cfg.get("devices", 1)
    if isinstance(devices, bool) or (isinstance(devices, int) and (devices == 0 or devices < -1)):
        raise ConfigError(f"hardware.devices={devices!r}: expected a count >= 1, -1 (all) or auto")
    # DDP on one machine: each process gets its share of the cores.
    threads = int(cfg.get("threads") or max((os.cpu_count() or 1) // process_count(strategy, devices), 1))
    workers = cfg.get("num_workers")
    if workers is None:  # CPU training: tokenized batches are in memory, worker processes only add IPC
        workers = 0 if accelerator == "cpu" else min(4, max(threads - 1, 0))
    return HardwareSettings(accelerator, devices, str(precision), threads, int(workers), strategy)


def apply_threads(settings: HardwareSettings) -> None:
    """Make torch (when imported), BLAS and worker processes use ``settings.threads``.

    Set on every call, not only the first: several runs in one process (a sweep, a notebook) each get
    their own setting, and spawned workers (DDP) read it from the environment.
    """
    os.environ["OMP_NUM_THREADS"] = str(settings.threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(settings.threads)
