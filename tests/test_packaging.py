"""A wheel install (not editable) ships its configs: the entry points compose outside a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toxmod.paths import PACKAGE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.data_free]


def test_a_wheel_install_composes_its_configs(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a clean copy: building writes build/ and egg-info beside the sources
    checkout = PACKAGE_DIR.parent
    shutil.copytree(PACKAGE_DIR, source / "toxmod", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(checkout / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True
    )
    [wheel] = (tmp_path / "dist").glob("toxmod-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)

    workdir = tmp_path / "elsewhere"  # not a checkout: outputs would go here
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TOXMOD_ROOT"} | {"PYTHONPATH": str(site)}
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "toxmod.train",
            "--cfg",
            "job",
            "--resolve",
            "data=davidson",
            "model=tfidf_logreg",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert (
        "name: davidson" in shown.stdout and "_target_: toxmod.models.tfidf.TfidfLogRegScorer" in shown.stdout
    )
    assert f"output_dir: {workdir.resolve()}/outputs" in shown.stdout  # the cwd, never site-packages
    where = subprocess.run(
        [sys.executable, "-c", "import toxmod.paths as p; print(p.CONFIG_DIR)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(site / "toxmod" / "conf")
    assert (site / "toxmod" / "conf" / "model" / "minilm.yaml").is_file()
