"""Every run records the environment its numbers came from, and a comparison across environments
says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import compose_train, run_entry, stored_runs, tracking_overrides
from toxmod.environment import cpu, numeric_fingerprint
from toxmod.stages.train import train

JOB = ["data=janitr", "data.max_rows=600", "model=tfidf_logreg", "model.max_features=5000", "bootstrap=0"]


def test_a_run_records_its_environment_and_compare_marks_another_one(tmp_path: Path, store: dict) -> None:
    first = train(compose_train([*JOB, *tracking_overrides(store), "run_name=here"]), tmp_path / "a")
    env = json.loads((first.run_dir / "environment.json").read_text())
    assert env["packages"]["numpy"] == metadata.version("numpy")
    assert env["packages"]["scikit-learn"] == metadata.version("scikit-learn")
    assert env["cpu"]["isa"] == cpu()["isa"] and env["cpu"]["model"] == cpu()["model"]
    assert env["threads"]["hardware.threads"] == int(stored_runs(store)[0].data.tags["hardware.threads"])
    assert "environment.json" in json.loads((first.run_dir / "manifest.json").read_text())["files"]
    (run,) = stored_runs(store)
    tags = run.data.tags
    assert (
        tags["env.fingerprint"] == numeric_fingerprint(env) and tags["env.numpy"] == env["packages"]["numpy"]
    )
    assert tags["env.isa"] == ",".join(env["cpu"]["isa"]) and tags["env.python"] == env["python"]

    # a second run, then one recorded as if on another machine: compare marks the odd one out
    train(compose_train([*JOB, *tracking_overrides(store), "run_name=here-too"]), tmp_path / "b")
    other = train(compose_train([*JOB, *tracking_overrides(store), "run_name=elsewhere"]), tmp_path / "c")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    client.set_tag(other.run_id, "env.fingerprint", "0123456789ab")
    client.set_tag(other.run_id, "env.numpy", "1.26.4")
    client.set_tag(other.run_id, "env.isa", "sse4_2,avx,avx2,fma,avx512f")
    compared = run_entry("compare", *tracking_overrides(store), "format=csv")
    rows = {line.split(",")[1]: line for line in compared.stdout.splitlines()[1:]}
    assert "env differs:" in rows["elsewhere"] and "numpy 1.26.4 vs " in rows["elsewhere"]
    assert "env differs" not in rows["here"] and "env differs" not in rows["here-too"]

    shown = run_entry("runs", "show", f"run={first.run_dir}", *tracking_overrides(store))
    assert shown.returncode == 0 and f"fingerprint {numeric_fingerprint(env)}" in shown.stdout
    assert f"numpy {env['packages']['numpy']}" in shown.stdout


@pytest.mark.data_free
def test_openblas_is_pinned_to_its_avx2_kernels_on_x86_unless_asked_not_to() -> None:
    """The default model's numbers then match across AVX2 and AVX-512 machines (docs/benchmarks.md)."""
    probe = (
        "import toxmod, numpy, os; from toxmod.environment import blas;"
        "print(os.environ.get('OPENBLAS_CORETYPE'), [b['architecture'] for b in blas()])"
    )
    pinned = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_clean_env())
    native = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**_clean_env(), "TOXMOD_BLAS_CORETYPE": "native"},
    )
    if "avx2" not in cpu()["isa"]:
        pytest.skip("not an x86 CPU with AVX2: nothing is pinned")
    assert pinned.stdout.strip() == "Haswell ['Haswell']", pinned.stderr
    assert native.stdout.startswith("None")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "TOXMOD_BLAS_CORETYPE")}
