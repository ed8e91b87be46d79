"""Rules the code keeps, checked by reading it: every config key the code reads has a YAML default,
and no handler swallows every exception without saying why or raising again."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.test_config import USED_BY, compose_with, options
from toxmod.config import compose_config
from toxmod.paths import CONFIG_DIR, PACKAGE_DIR

pytestmark = pytest.mark.data_free

ROOTS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))
# DictConfig methods and attributes read through `cfg.` that are not keys
NOT_KEYS = {"get", "copy", "items", "keys", "values", "merge_with", "pop", "setdefault", "_target_"}
READ = re.compile(r"\bcfg((?:\.(?!get\()[a-z_][a-z0-9_]*)+)(?:\.get\(\"([a-z_]+)\")?")
GET = re.compile(r"\bcfg\.get\(\"([a-z_]+)\"")
SELECT = re.compile(r"OmegaConf\.select\(cfg, \"([a-z_.]+)\"")


@functools.cache
def config_paths() -> frozenset[str]:
    """Every dotted key of every entry point's config, with every option of every group composed in."""
    found: set[str] = set()
    composed = [
        compose_config(root, ["data.path=/tmp/x.csv"] if root == "split_cli" else []) for root in ROOTS
    ]
    for group in GROUPS:
        for option in options(group):
            overrides = [*USED_BY.get(group, []), f"{group}={option}"]
            if group == "data" and option == "csv":
                overrides.append("data.path=/tmp/some.csv")
            composed.append(compose_with(group, overrides))
    for cfg in composed:
        container = OmegaConf.to_container(cfg, resolve=False)
        found |= set(_paths(container, ""))
    return frozenset(found)


def _paths(node: object, prefix: str) -> list[str]:
    if not isinstance(node, dict):
        return []
    out = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out += [path, *_paths(value, path)]
    return out


def keys_read(source: str) -> set[str]:
    """The dotted keys ``source`` reads from a variable named ``cfg`` (attribute chains, ``.get("k")``,
    ``OmegaConf.select(cfg, "a.b")``), method names left out."""
    found = set()
    for chain, got in READ.findall(source):
        parts = [p for p in chain.strip(".").split(".") if p]
        while parts and parts[-1] in NOT_KEYS:
            parts.pop()
        if got:
            parts.append(got)
        if parts and not set(parts) & NOT_KEYS:
            found.add(".".join(parts))
    found |= set(GET.findall(source)) | set(SELECT.findall(source))
    return found


def test_every_config_key_the_code_reads_has_a_yaml_default() -> None:
    """A key read in code is a key of some composed config (its full path or the end of one: a
    module's ``cfg`` may be a group, e.g. ``data``), so its default lives in YAML."""
    paths = config_paths()
    missing = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for key in keys_read(path.read_text()):
            if key not in paths and not any(p.endswith(f".{key}") for p in paths):
                missing.append(f"{path.relative_to(PACKAGE_DIR)}: cfg.{key}")
    assert missing == []


def test_the_key_scan_sees_reads() -> None:
    source = 'cfg.model.name; cfg.get("seed", 0); cfg.teacher.get("run"); OmegaConf.select(cfg, "a.b")'
    assert keys_read(source) == {"model.name", "seed", "teacher.run", "a.b"}
    assert "nonexistent_key" not in config_paths() and "teacher.run" in config_paths()
    read = set().union(*(keys_read(p.read_text()) for p in PACKAGE_DIR.rglob("*.py")))
    # the declared groups (data, split, hardware, checkpoint, teacher, ...) are read through their
    # specifications, whose keys tests/test_spec.py checks against the YAML instead
    assert len(read) > 80 and {"threshold.fit_split", "distill.method", "distill.transfer"} <= read


# ``cfg.get("key", <default>)``: a second default beside the YAML's, allowed only where the mapping is
# not a composed config of this version (with why).
SECOND_DEFAULTS = {
    "stages/export.py": "the source run's saved config, maybe from an older version",
    "models/transformer/training.py": "trainer.* are Lightning's own options, with Lightning's defaults",
    "runs/jobs.py": "job keys of saved configs of other entry points (no model / data)",
}
SECOND_DEFAULT = re.compile(r"\bcfg(?:\.[a-z_]+)*\.get\(\"([a-z_]+)\", (?!None\))")


def test_defaults_live_in_yaml_only() -> None:
    found = [
        f"{path.relative_to(PACKAGE_DIR)}: {key}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for key in SECOND_DEFAULT.findall(path.read_text())
        if str(path.relative_to(PACKAGE_DIR)) not in SECOND_DEFAULTS
    ]
    assert found == []


# Handlers that catch everything and do not raise again, each with why.
SWALLOWING = {
    "stages/sweeps.py": "one sweep point's failure is recorded (job_status.json, exit 1 at the end)",
}


def test_no_handler_hides_a_failure() -> None:
    """``except Exception`` / ``except BaseException`` / bare ``except`` re-raise (with context), or are
    listed in ``SWALLOWING`` with the reason the failure is still reported."""
    hiding = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ExceptHandler):
                continue
            broad = node.type is None or (
                isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException")
            )
            raises = any(isinstance(inner, ast.Raise) for inner in ast.walk(node))
            where = str(path.relative_to(PACKAGE_DIR))
            if broad and not raises and where not in SWALLOWING:
                hiding.append(f"{where}:{node.lineno}")
    assert hiding == []


def test_keys_are_read_from_real_files() -> None:
    assert (PACKAGE_DIR / "stages" / "train.py").is_file() and Path(CONFIG_DIR / "train.yaml").is_file()
