"""The environment a run's numbers came from: Python, OS, the versions of every library that touches
numbers, the CPU and its instruction sets, threads, and the GPU when one is used.

Written into every run as ``environment.json`` (listed in its manifest) and as ``env.*`` MLflow tags.
``numeric_fingerprint`` hashes what can change numbers (library versions, instruction sets, the numeric
settings below), so ``compare``, ``report`` and ``select`` can mark a run whose numbers come from
another environment than the rest, and ``evaluate`` can say so beside a difference.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions can change a run's numbers (the first installed name of each group).
NUMERIC_PACKAGES = (
    ("torch",),
    ("xgboost-cpu", "xgboost"),
    ("scikit-learn",),
    ("numpy",),
    ("scipy",),
    ("fasttext-numpy2", "fasttext"),
    ("onnxruntime",),
    ("transformers",),
    ("tokenizers",),
    ("lightning",),
    ("mlflow",),
    ("optuna",),
    ("pandas",),
)
# Instruction-set extensions that change which kernels numeric libraries dispatch to.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",  # bf16 dot products: hardware=auto trains in bf16-mixed on such a CPU
    "amx_tile",
    "amx_bf16",
)
ARM_FLAGS = ("asimd", "asimddp", "sve", "i8mm", "bf16")
# Settings that choose kernels or their order, read from the environment.
NUMERIC_SETTINGS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
)


def package_versions() -> dict[str, str]:
    """``{name: version}`` of the installed numeric packages."""
    found = {}
    for names in NUMERIC_PACKAGES:
        for name in names:
            try:
                found[name] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


X86_MACHINES = ("x86_64", "AMD64", "i686")


def _cpuinfo() -> tuple[str | None, set[str]]:
    """The CPU model and feature flags /proc/cpuinfo lists (Linux; ``(None, set())`` elsewhere)."""
    model: str | None = None
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def cpu_flags() -> set[str]:
    """The CPU's feature flags (cheap, no subprocess: ``toxmod`` reads them at import)."""
    return _cpuinfo()[1]


def cpu() -> dict[str, Any]:
    """The CPU model, its core count and the instruction sets that matter for numbers."""
    model, flags = _cpuinfo()
    if not flags and platform.machine() == "arm64":  # macOS on Apple silicon: NEON is always there
        flags = {"asimd"}
    wanted = ISA_FLAGS if platform.machine() in X86_MACHINES else ARM_FLAGS
    return {
        "model": model or platform.processor() or "unknown",
        "cores": os.cpu_count() or 1,
        "isa": [f for f in wanted if f in flags],
    }


def gpu() -> dict[str, Any] | None:
    """The CUDA device and the CUDA version torch was built for, when torch is loaded and sees one."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "cuda": str(torch.version.cuda)}


def environment(threads: int | None = None) -> dict[str, Any]:
    """Everything above, as the run records it."""
    torch = sys.modules.get("torch")
    return {
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu(),
        "packages": package_versions(),
        "settings": {key: os.environ[key] for key in NUMERIC_SETTINGS if key in os.environ},
        "threads": {
            "hardware.threads": threads,
            "torch": torch.get_num_threads() if torch is not None else None,
        },
        "blas": blas(),
        "gpu": gpu(),
    }


def blas() -> list[dict[str, Any]]:
    """The BLAS libraries loaded and the kernels they chose (OpenBLAS's ``architecture``)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads")
    return [{k: info.get(k) for k in keys} for info in threadpool_info() if info.get("user_api") == "blas"]


def blas_kernels(env: Mapping[str, Any]) -> list[str]:
    """The kernel families the recorded BLAS libraries chose (``Haswell``, ``SkylakeX``), sorted."""
    return sorted({str(b.get("architecture")) for b in env.get("blas") or []})


def numeric_view(env: Mapping[str, Any]) -> dict[str, Any]:
    """What can change numbers: library versions, the machine, instruction sets, numeric settings, the GPU."""
    settings = {k: v for k, v in (env.get("settings") or {}).items() if k != "OMP_NUM_THREADS"}
    return {
        "packages": env.get("packages", {}),
        "machine": env.get("machine"),
        "isa": env.get("cpu", {}).get("isa", []),
        "blas": blas_kernels(env),
        "settings": settings,
        "gpu": (env.get("gpu") or {}).get("name"),
    }


def numeric_fingerprint(env: Mapping[str, Any]) -> str:
    """A short hash of ``numeric_view``: runs with the same one came from the same numeric environment."""
    text = json.dumps(numeric_view(env), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``torch 2.13.0 -> 2.14.1``, ``isa avx2 -> avx2,avx512f`` ...: where two numeric views differ."""
    a, b = numeric_view(recorded), numeric_view(current)
    found = []
    for name in sorted(set(a["packages"]) | set(b["packages"])):
        before, after = a["packages"].get(name, "-"), b["packages"].get(name, "-")
        if before != after:
            found.append(f"{name} {before} -> {after}")
    for key in ("machine", "gpu", "blas"):
        if a[key] != b[key]:
            found.append(f"{key} {a[key]} -> {b[key]}")
    if a["isa"] != b["isa"]:
        found.append(f"isa {','.join(a['isa']) or '-'} -> {','.join(b['isa']) or '-'}")
    if a["settings"] != b["settings"]:
        found.append(f"settings {a['settings']} -> {b['settings']}")
    return found


def tags(env: Mapping[str, Any]) -> dict[str, str]:
    """MLflow tags: ``env.fingerprint``, ``env.python``, ``env.cpu``, ``env.isa``, ``env.<package>``."""
    values = {
        "env.fingerprint": numeric_fingerprint(env),
        "env.python": str(env.get("python")),
        "env.os": str(env.get("os")),
        "env.cpu": str(env.get("cpu", {}).get("model")),
        "env.isa": ",".join(env.get("cpu", {}).get("isa", [])),
        "env.threads": str((env.get("threads") or {}).get("hardware.threads")),
        "env.blas": ",".join(blas_kernels(env)),
    }
    values.update({f"env.{name}": version for name, version in env.get("packages", {}).items()})
    if env.get("gpu"):
        values["env.gpu"] = str(env["gpu"].get("name"))
    return values
