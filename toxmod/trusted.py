"""What a config read back from a run may name: exact lists of code, compared as strings, never imported.

A run directory is data someone else may have made. A config read from one (resume, load_run) may
instantiate only the classes and functions the shipped config groups name, those in the opener's own
config folder (``./conf`` or ``TOXMOD_CONF``: code the opener chose), those the stages write into a
run's config themselves, and torch's optimizers.

Code named only by the opener's own config folder gets its arguments from the opener, not from the
run: a saved node that names it must hold the values one of the opener's YAML nodes for that code
holds (a key the opener interpolates, ``${...}``, may hold any plain value) -- never ``_args_``, a
nested ``_target_`` or a key the opener's YAML does not give.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toxmod.errors import ConfigError
from toxmod.paths import CONFIG_DIR, user_conf_dir

STAGE_TARGETS = frozenset(
    {
        "toxmod.models.onnx_model.OnnxScorer",  # stages/export.py: the exported model
        "toxmod.splits.builders.frozen_split",  # stages/export.py: the source run's split folder
        # the schedule no shipped config names, but a user's may (model.scheduler._target_)
        "toxmod.models.transformer.schedules.constant",
    }
)
TORCH_OPTIMIZERS = frozenset(
    f"torch.optim.{name}"
    for name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam")
)
# Names runs recorded before a class moved: accepted from a saved config, built as the new name.
RENAMED_TARGETS = {
    f"toxmod.calibration.{name}": f"toxmod.thresholds.{name}"
    for name in ("TargetFPRThresholds", "MaxF1Thresholds", "OptunaThresholds")
}

# Keys whose value is a Python package toxmod imports (a weights package): from a run, only the
# packages the shipped configs name.
MODULE_KEYS = ("package", "gguf_package")


@functools.cache
def shipped_targets() -> frozenset[str]:
    """Every ``_target_`` the shipped configs name, the stages' and torch's optimizers (exact names)."""
    found = set(STAGE_TARGETS | TORCH_OPTIMIZERS | set(RENAMED_TARGETS))
    for config in _configs_in(CONFIG_DIR):
        found.update(str(t) for _, t in _targets(config, ""))
    return frozenset(found)


def allowed_targets() -> frozenset[str]:
    """``shipped_targets`` and those named by the opener's own config folder (read at each call: the
    folder is the current directory's)."""
    return shipped_targets() | frozenset(user_target_nodes())


def user_target_nodes() -> dict[str, list[dict[str, Any]]]:
    """``{target: the nodes of the opener's YAML that name it}`` for code the opener's own config
    folder names (read at each call: the folder is the current directory's)."""
    folder = user_conf_dir()
    found: dict[str, list[dict[str, Any]]] = {}
    for config in _configs_in(folder) if folder is not None else []:
        for _, node in _target_nodes(config):
            found.setdefault(str(node["_target_"]), []).append(node)
    return found


def _target_nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """``(dotted key, mapping)`` of every mapping that holds a ``_target_``, nested ones included."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((path, node))
        for key, value in node.items():
            if key != "_target_":
                found += _target_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _target_nodes(value, f"{path}[{i}]")
    return found


def _plain(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def _given_by(saved: dict[str, Any], declared: dict[str, Any]) -> str | None:
    """The first key of ``saved`` whose value the opener's node ``declared`` does not give, or None."""
    for name, value in saved.items():
        if name == "_target_":
            continue
        if name == "_args_" or name not in declared or not _plain(value):
            return name
        wanted = declared[name]
        interpolated = isinstance(wanted, str) and "${" in wanted
        if not interpolated and wanted != value:
            return name
    return None


def _check_user_code_arguments(
    cfg: dict[Any, Any],
    source: str,
    never_built: Sequence[str],
    declared: dict[str, list[dict[str, Any]]],
) -> None:
    """A saved node naming code only the opener's config names (``declared``: the opener's nodes by
    target) passes it no arguments of its own."""
    shipped = shipped_targets()
    for key, value in (cfg or {}).items():
        if key in never_built:
            continue
        for _, node in _target_nodes(value):
            target = node.get("_target_")
            if target in shipped or target not in declared:
                continue
            differing = [_given_by(node, mine) for mine in declared[target]]
            if None not in differing:
                name = str(differing[0])
                raise ConfigError(
                    f"{source}: {key} passes {name}={str(node.get(name))[:40]!r} to "
                    f"{target}, code only your conf/ names; a run may not choose its arguments "
                    "(your conf/ must give these values itself)"
                )


@functools.cache
def shipped_packages() -> frozenset[str]:
    """The weights packages (``MODULE_KEYS``) the shipped configs name."""
    return frozenset(
        str(value)
        for config in _configs_in(CONFIG_DIR)
        for key, value in _leaves(config, "")
        if key.rsplit(".", 1)[-1] in MODULE_KEYS and value
    )


def _configs_in(folder: Path) -> list[Any]:
    import yaml

    return [yaml.safe_load(path.read_text()) or {} for path in sorted(folder.rglob("*.yaml"))]


def check_targets(cfg: Any, source: str, never_built: Sequence[str] = ()) -> None:
    """Refuse a config read from ``source`` (plain dicts and lists, not resolved) that names code
    outside ``allowed_targets`` or holds an interpolation (a saved config is resolved;
    ``${oc.env:...}`` would read the opener's environment).

    ``never_built``: top-level keys whose ``_target_``s are never instantiated from this config.
    """
    declared = user_target_nodes()  # the opener's conf/, read once for both checks
    allowed = shipped_targets() | frozenset(declared)
    if isinstance(cfg, dict):
        _check_user_code_arguments(cfg, source, never_built, declared)
    for key, target in _targets(cfg, ""):
        if key.split(".", 1)[0] in never_built:
            continue
        if not isinstance(target, str) or target not in allowed:
            raise ConfigError(
                f"{source}: {key}={target!r} is not one of the classes toxmod's configs name; "
                "a run's config may not name other code"
            )
    packages = shipped_packages()
    for key, value in _leaves(cfg, ""):
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                f"{source}: {key}={value!r} is an interpolation; a run's saved config holds values only"
            )
        if key.rsplit(".", 1)[-1] in MODULE_KEYS and value is not None and value not in packages:
            raise ConfigError(
                f"{source}: {key}={value!r} is not a weights package toxmod's configs name; "
                "a run's config may not name other code"
            )


def _leaves(node: Any, path: str) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every non-cfg value."""
    if not isinstance(node, (dict, list)):
        return [(path, node)]
    found: list[tuple[str, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(node, list) else (f"{path}.{key}" if path else str(key))
        found += _leaves(value, where)
    return found


def _targets(node: Any, path: str) -> list[tuple[str, Any]]:
    """``(dotted key of the _target_, its value)`` of every ``_target_`` under ``node``."""
    return [
        (f"{where}._target_" if where else "_target_", n["_target_"])
        for where, n in _target_nodes(node, path)
    ]
