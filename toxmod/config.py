"""Hydra plumbing shared by the entry points: resolvers, one-line errors for bad overrides, helpers."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from toxmod.errors import USER_ERROR_EXIT_CODE, ConfigError
from toxmod.paths import CONFIG_DIR, datasets_root, project_root

META_KEYS = ("name",)
T = TypeVar("T")


def register_resolvers() -> None:
    """``${toxmod_root:}`` and ``${toxmod_datasets:}`` for conf/paths, and ``${toxmod_unique:}``: a
    random token, resolved once per composed config (sweep directories stay distinct even when two
    sweeps start in the same second; Hydra copies the resolved value to every job). Idempotent."""
    if not OmegaConf.has_resolver("toxmod_root"):
        OmegaConf.register_new_resolver("toxmod_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("toxmod_datasets"):
        OmegaConf.register_new_resolver("toxmod_datasets", lambda: str(datasets_root()))
    if not OmegaConf.has_resolver("toxmod_unique"):
        OmegaConf.register_new_resolver("toxmod_unique", lambda: secrets.token_hex(3), use_cache=True)


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, as the entry points do (tests, notebooks)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def group_options(group: str) -> list[str]:
    """The options of a config group shipped in ``conf/<group>/`` (``_``-prefixed bases left out)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def group_option(cfg: DictConfig, config_name: str, group: str, option: str) -> DictConfig:
    """``group=option`` composed as ``config_name`` would, its interpolations resolved against ``cfg``.

    E.g. another data config beside the run's own ``data`` (DAPT corpus); ``paths`` overrides hold.
    """
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    override = [f"{group}={option}"]
    if GlobalHydra.instance().is_initialized():  # inside a running entry point
        composed = compose(config_name=config_name, overrides=override)
    else:
        composed = compose_config(config_name, override)
    combined = cfg.copy()
    with open_dict(combined):
        combined[group] = composed[group]
    return combined[group]


def _is_multirun(argv: Sequence[str]) -> bool:
    return any(arg in ("-m", "--multirun") for arg in argv)


def check_overrides_or_exit(config_name: str, argv: Sequence[str]) -> None:
    """Compose once before Hydra runs so an unknown group option or key is a one-line error, exit code 2."""
    if _is_multirun(argv) or any(arg.startswith("-") for arg in argv):
        return  # sweeps and Hydra's own flags are left to Hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        compose_config(config_name, argv)
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {one_line_hydra_error(str(error))}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)


def one_line_hydra_error(message: str) -> str:
    """Condense Hydra's multi-line composition error into one line (with the group's options)."""
    lines = [line.strip() for line in message.splitlines()]
    text = [line for line in lines if line]
    if not text:
        return "invalid configuration"
    summary = text[0]
    if summary.startswith("Could not override") and len(text) > 1:
        summary = f"{summary} {text[1]}"
    for i, line in enumerate(lines):
        if line.startswith("Available options in"):
            options = []
            for option in lines[i + 1 :]:
                if not option or option.startswith("Config search path"):
                    break
                if not option.startswith("_"):
                    options.append(option)
            group = line.removeprefix("Available options in ").rstrip(":")
            summary += f" (available options in {group}: {', '.join(options)})"
            break
    return summary


def instantiate_component(cfg: DictConfig, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` without the meta keys (``name``), with a one-line error on failure."""
    params = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in META_KEYS}
    try:
        return instantiate(params, _convert_="all", **kwargs)
    except Exception as error:  # Hydra wraps constructor errors in InstantiationException
        cause = error.__cause__ or error
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        # "Error loading 'x.Y':" alone says nothing; its next line names the missing module.
        shown = lines[:2] if lines and lines[0].endswith(":") else lines[:1]
        message = " ".join(shown) or type(cause).__name__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{what} config ({params.get('_target_')}): {message}") from error


# What a config read back from a run (resume, load_run) may instantiate: toxmod's own classes,
# torch optimizers and Lightning callbacks. A run directory is data someone else may have made.
TRUSTED_TARGETS = ("toxmod.", "torch.optim.", "lightning.pytorch.callbacks.")


def check_targets(cfg: Any, source: str, never_built: Sequence[str] = ()) -> None:
    """Refuse a config read from ``source`` whose ``_target_``s leave ``TRUSTED_TARGETS``.

    ``never_built``: top-level keys whose ``_target_``s are never instantiated from this config.
    """
    container = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    for key, target in _targets(container, ""):
        if key.split(".", 1)[0] in never_built:
            continue
        if not isinstance(target, str) or not target.startswith(TRUSTED_TARGETS):
            raise ConfigError(
                f"{source}: {key}={target!r} is not a toxmod, torch.optim or Lightning callback class; "
                "a run's config may not name other code"
            )


def _targets(node: Any, path: str) -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                found.append((where, value))
            else:
                found += _targets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{path}[{i}]")
    return found


def settings_from(cls: type[T], values: Mapping[str, Any], group: str) -> T:
    """A settings dataclass from a config group's values; an unknown key is a one-line error naming it."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]} is not a setting; {group} has {', '.join(sorted(known))}")
    return cls(**values)


def run_entry_point(config_name: str, task: Callable[[], Any]) -> Any:
    """Validate ``sys.argv`` overrides, then hand over to the Hydra-decorated ``task``."""
    register_resolvers()
    check_overrides_or_exit(config_name, sys.argv[1:])
    return task()


register_resolvers()  # also in processes that only unpickle a task (joblib workers)
