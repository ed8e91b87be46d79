"""The ``hardware`` group: where a job runs. None of it is the job's identity (a resumed run may move)."""

from __future__ import annotations

from dataclasses import dataclass

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class HardwareSpec(Spec):
    """What the user asked for; ``toxmod.hardware.resolve_hardware`` turns it into what is used."""

    GROUP = "hardware"

    accelerator: str = setting(job=False)  # auto | cpu | cuda | mps
    devices: int | str = setting(job=False)  # a count, -1 (all) or auto
    strategy: str = setting(job=False)
    precision: str | None = setting(job=False)  # null: the accelerator's default
    threads: int | None = setting(low=1, job=False)  # null: this process's share of the CPUs
    num_workers: int | None = setting(low=0, job=False)  # null: 0 on cpu, else min(4, threads - 1)
