"""Hardware resolution: accelerator, devices, precision, threads and loader workers from ``hardware=``."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from toxmod.errors import ConfigError
from toxmod.spec import HardwareSpec

ACCELERATORS = ("auto", "cpu", "cuda", "mps")
DEFAULT_PRECISION = {"cuda": "bf16-mixed", "mps": "32-true", "cpu": "32-true"}
# A CPU with bf16 instructions trains in bf16-mixed when the precision is left to hardware=auto:
# benchmarks/cpu_precision.py measured MiniLM steps 2.0x and a janitr fine-tune's fit 1.55-1.7x faster on
# an AVX512-BF16 EPYC, with the same thresholded valid metrics on 2 seeds (mean ROC-AUC within 4e-5).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class HardwareSettings:
    """What the training code should use; ``threads`` also drives the classical models' ``n_jobs``."""

    accelerator: str
    devices: Any
    precision: str
    threads: int
    num_workers: int
    strategy: str = "auto"
    threads_from: str = "hardware.threads"  # why ``threads`` is what it is (``CpuShare.reason``)
    precision_from: str = "hardware.precision"  # why ``precision`` is what it is

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


@dataclass(frozen=True)
class CpuShare:
    """The threads this process should run, and why (the CPUs it may use, the jobs beside it)."""

    threads: int
    reason: str


def available_cpus() -> tuple[int, str]:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota; and which."""
    cpus, reason = os.cpu_count() or 1, "cpu count"
    if hasattr(os, "sched_getaffinity"):
        cpus, reason = len(os.sched_getaffinity(0)), "affinity"
    quota = _cgroup_quota()
    if quota is not None and quota < cpus:
        cpus, reason = quota, "cgroup quota"
    return max(cpus, 1), reason


def _cgroup_quota() -> int | None:
    """``ceil(quota / period)`` of the cgroup's CPU limit (v2 ``cpu.max`` or v1 ``cfs_quota_us``)."""
    import math
    from pathlib import Path

    try:
        fields = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return max(math.ceil(int(fields[0]) / int(fields[1])), 1)
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(math.ceil(quota / period), 1) if quota > 0 and period > 0 else None


@dataclass(frozen=True)
class LauncherShare:
    """What a sweep's launcher gives each job: CPUs (Ray's ``num_cpus``, Slurm's ``cpus_per_task``) or
    None, and how many jobs it runs at once on this machine (joblib's ``n_jobs``). Outside a sweep:
    ``ALONE``. The entry points read it from Hydra (``toxmod.config.launcher_share``)."""

    cpus: int | None = None
    parallel_jobs: int = 1


ALONE = LauncherShare()


def cpu_share(launcher: LauncherShare = ALONE) -> CpuShare:
    """Threads for this process: the CPUs it may use (affinity, cgroup quota), divided among the
    jobs its launcher runs beside it, or what the launcher gives each job -- never more."""
    cpus, reason = available_cpus()
    if launcher.cpus is not None:
        return CpuShare(min(launcher.cpus, cpus), f"{reason} {cpus}, launcher gives {launcher.cpus}")
    if launcher.parallel_jobs > 1:
        jobs = launcher.parallel_jobs
        return CpuShare(max(cpus // jobs, 1), f"{reason} {cpus} / {jobs} parallel jobs")
    return CpuShare(cpus, f"{reason} {cpus}")


def _available_accelerator() -> str:
    if "torch" not in sys.modules and not _may_have_accelerator():
        return "cpu"  # no GPU device here: importing torch (a second) to ask is not needed
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _may_have_accelerator() -> bool:
    """A CUDA device node (Linux), or a Mac (MPS): only then is torch asked which accelerator is there."""
    import platform
    from pathlib import Path

    return platform.system() == "Darwin" or Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


def resolve_hardware(spec: HardwareSpec, launcher: LauncherShare = ALONE) -> HardwareSettings:
    """What the ``hardware`` settings ask for, made concrete here (``auto`` picks cuda > mps > cpu;
    ``launcher``: the sweep's share of the machine this job runs in)."""
    requested = spec.accelerator
    if requested not in ACCELERATORS:
        raise ConfigError(f"hardware.accelerator={requested!r}; expected one of {list(ACCELERATORS)}")
    accelerator = _available_accelerator() if requested == "auto" else requested
    if requested in ("cuda", "mps") and _available_accelerator() != requested:
        raise ConfigError(f"hardware={requested} was asked for but no {requested} device is available here")
    precision, precision_from = spec.precision, "hardware.precision"
    if not precision:
        precision, precision_from = default_precision(accelerator)
    strategy = spec.strategy or "auto"
    devices = spec.devices
    if isinstance(devices, bool) or (isinstance(devices, int) and (devices == 0 or devices < -1)):
        raise ConfigError(f"hardware.devices={devices!r}: expected a count >= 1, -1 (all) or auto")
    # Each process gets its share of the CPUs it may use (DDP: per rank; a sweep: per parallel job).
    threads, threads_from = spec.threads, "hardware.threads"
    if not threads:
        share = cpu_share(launcher)
        threads, threads_from = max(share.threads // process_count(strategy, devices), 1), share.reason
    workers = spec.num_workers
    if workers is None:  # CPU training: tokenized batches are in memory, worker processes only add IPC
        workers = 0 if accelerator == "cpu" else min(4, max(threads - 1, 0))
    return HardwareSettings(
        accelerator,
        devices,
        str(precision),
        int(threads),
        int(workers),
        strategy,
        threads_from,
        precision_from,
    )


def default_precision(accelerator: str) -> tuple[str, str]:
    """The precision ``hardware.precision=null`` trains in on ``accelerator``, and why."""
    from toxmod.environment import cpu_flags

    found = sorted(set(BF16_CPU_FLAGS) & cpu_flags()) if accelerator == "cpu" else []
    if found:
        return "bf16-mixed", f"auto: a CPU with {'/'.join(found)} (bf16 matmuls; benchmarks/cpu_precision.py)"
    return DEFAULT_PRECISION[accelerator], f"auto: the {accelerator} default"


def apply_threads(settings: HardwareSettings) -> None:
    """Make torch (when imported), BLAS and worker processes use ``settings.threads``.

    Set on every call, not only the first: several runs in one process (a sweep, a notebook) each get
    their own setting, and spawned workers (DDP) read it from the environment.
    """
    os.environ["OMP_NUM_THREADS"] = str(settings.threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(settings.threads)
