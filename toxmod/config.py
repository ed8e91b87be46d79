"""Hydra plumbing shared by the entry points: resolvers, one-line errors for bad overrides, helpers."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import os
import re
import secrets
import shutil
import sys
import traceback
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.utils import instantiate
from omegaconf import Container, DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from toxmod.display import printable
from toxmod.errors import (
    INTERRUPT_EXIT_CODE,
    STAGE_FOLDERS,
    USER_ERROR_EXIT_CODE,
    ConfigError,
    Terminated,
    ToxmodError,
    disk_full,
    raise_on_sigterm,
)
from toxmod.hardware import ALONE, HardwareSettings, LauncherShare, resolve_hardware
from toxmod.limits import configure
from toxmod.paths import CONFIG_DIR, datasets_root, project_root, user_cache_dir, user_conf_dir
from toxmod.redact import holds_secret, redact
from toxmod.spec import SPECS, HardwareSpec, Spec, declared
from toxmod.spec.fields import MISSING, bounds
from toxmod.trusted import RENAMED_TARGETS

META_KEYS = ("name",)
# What Hydra (its ``.hydra/`` copy of the config) and a sweep's summary write into a run folder before
# or beside toxmod: never part of the run, and no sign that the folder holds someone else's files.
LAUNCHER_FILES = (".hydra", "job_status.json")
RUN_FOLDER_KEY = "hydra.run.dir"  # the key that names a run's folder on the command line
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=Spec)


def register_resolvers() -> None:
    """``${toxmod_root:}`` and ``${toxmod_datasets:}`` for conf/paths, ``${toxmod_stem:<path>}`` (a data
    file's name without its extensions: a user's data names its experiment), and ``${toxmod_unique:}``: a
    random token, resolved once per composed config (sweep directories stay distinct even when two
    sweeps start in the same second; Hydra copies the resolved value to every job). Idempotent."""
    resolvers: dict[str, Callable[..., str]] = {
        "toxmod_root": lambda: str(project_root()),
        "toxmod_datasets": lambda: str(datasets_root()),
        "toxmod_cache": lambda: str(user_cache_dir()),
        "toxmod_stem": _file_stem,  # posts.csv.gz -> posts: a data file's own name
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    if not OmegaConf.has_resolver("toxmod_unique"):
        OmegaConf.register_new_resolver("toxmod_unique", lambda: secrets.token_hex(3), use_cache=True)


def _file_stem(path: Any) -> str:
    name = Path(str(path)).name
    for suffix in (".gz", ".csv", ".tsv", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name or "data"


def compose_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, as the entry points do (tests, notebooks)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=with_user_conf(overrides))


def with_user_conf(overrides: Sequence[str]) -> list[str]:
    """``overrides`` plus the user's own config folder on Hydra's search path (``paths.user_conf_dir``),
    unless the command sets ``hydra.searchpath`` itself."""
    folder = user_conf_dir()
    if folder is None or any(o.lstrip("+").startswith("hydra.searchpath") for o in overrides):
        return list(overrides)
    return [*overrides, f"hydra.searchpath=[file://{folder}]"]


def group_options(group: str) -> list[str]:
    """The options of a config group shipped in ``conf/<group>/`` (``_``-prefixed bases left out)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def group_option(cfg: DictConfig, config_name: str, group: str, option: str) -> DictConfig:
    """``group=option`` composed as ``config_name`` would, its interpolations resolved against ``cfg``.

    E.g. another data config beside the run's own ``data`` (DAPT corpus); ``paths`` overrides hold.
    """
    return with_group_option(cfg, config_name, group, option)[group]


def with_group_option(
    cfg: DictConfig, config_name: str, group: str, option: str, choices: Sequence[str] = ()
) -> DictConfig:
    """A copy of ``cfg`` with ``group=option`` composed as ``config_name`` would, plus the groups the
    option itself brings (``model=student`` brings ``student``; ``choices`` such as ``student=tiny``
    pick their options)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    override = [f"{group}={option}", *choices]
    if GlobalHydra.instance().is_initialized():  # inside a running entry point
        composed = compose(config_name=config_name, overrides=override)
    else:
        composed = compose_config(config_name, override)
    combined = cfg.copy()
    with open_dict(combined):
        combined[group] = composed[group]
        for key in composed:
            if key not in combined:
                combined[key] = composed[key]
    return combined


def _is_multirun(argv: Sequence[str]) -> bool:
    return any(arg in ("-m", "--multirun") for arg in argv)


def check_overrides_or_exit(config_name: str, argv: Sequence[str]) -> None:
    """Compose once before Hydra runs so an unknown group option or key is a one-line error, exit code 2."""
    if _is_multirun(argv) or any(arg.startswith("-") for arg in argv):
        return  # sweeps and Hydra's own flags are left to Hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        choices = [arg for arg in argv if override_key(arg) in _groups()]
        base = compose_config(config_name, choices)  # the groups chosen, nothing else overridden
        check_known_keys(base, argv)
        cfg = compose_config(config_name, argv) if len(choices) < len(argv) else base
        check_values(cfg, base, [override_key(arg) for arg in argv if arg not in choices])
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {printable(one_line_hydra_error(str(error)))}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except ConfigError as error:
        print(f"error: {printable(str(error))}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)


def check_known_keys(base: DictConfig, argv: Sequence[str]) -> None:
    """An override naming a key the config does not have is one line with the closest group or key
    (``modle=x``: did you mean ``model=x``?), never Hydra's hint to append it with ``+``; a top-level
    ``+key=...`` that no config group or key has (nothing would read it) is refused the same way.
    ``base``: the config composed with the command's group choices only."""
    groups = {g for g in _groups() if "/" not in g} | _user_groups()
    for arg in argv:
        key = override_key(arg)
        parent_key, _, leaf = key.rpartition(".")
        if arg.startswith("~") or key.startswith("hydra.") or key in groups:
            continue
        parent = OmegaConf.select(base, parent_key) if parent_key else base
        if not isinstance(parent, DictConfig) or (parent_key and arg.startswith("+")):
            continue  # below a plain value (Hydra says so), or added to a mapping on purpose
        known = sorted({str(k) for k in parent} | (set() if parent_key else groups) - {"hydra"})
        if leaf in known:
            continue
        value = arg.split("=", 1)[1] if "=" in arg else ""
        close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
        prefix = f"{parent_key}." if parent_key else ""
        deeper = [p for p in _dotted(base) if p.endswith(f".{leaf}")] if not parent_key else []
        if close:
            hint = f"; did you mean {prefix}{close[0]}={value}?"
        elif deeper:
            hint = f"; did you mean {deeper[0]}={value}?"
        elif parent_key and not len(parent):  # an empty mapping the user fills (callbacks)
            hint = f"; add it with +{key}={value}"
        else:
            hint = f"; the keys are {', '.join(sorted(known)[:40])}"
        what = "is read by nothing" if arg.startswith("+") else "is not a key of this command"
        raise ConfigError(f"{arg}: {key} {what}{hint}")


def _dotted(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key below ``node`` (a composed config), shallowest first."""
    if not isinstance(node, DictConfig):
        return []
    names = [str(k) for k in node if str(k) != "hydra"]
    deeper = [p for name in names for p in _dotted(node._get_node(name), f"{prefix}{name}.")]
    return [f"{prefix}{name}" for name in names] + deeper


def _user_groups() -> set[str]:
    folder = user_conf_dir()
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder and folder.is_dir() else set()


# Settings with a range, wherever an entry point has them: (lowest, highest, what -1/null mean); the
# declared groups' ranges come from their specifications (``toxmod.spec``).
RANGES: dict[str, tuple[int | float | None, int | float | None]] = {
    "bootstrap": (0, None),
    "trainer.max_steps": (-1, None),
    "trainer.max_epochs": (-1, None),
    "model.max_epochs": (0, None),
    "model.batch_size": (1, None),
    "model.eval_batch_size": (1, None),
    "model.max_length": (1, None),
    "model.n_estimators": (1, None),
    "model.max_features": (1, None),
    "resamples": (1, None),
} | {
    key: (field.metadata["low"], field.metadata["high"])
    for key, field in declared(SPECS)
    if field.metadata["low"] is not None or field.metadata["high"] is not None
}


# Names that become MLflow records, file names or ID lists: (key, what it may hold).
NAMES = {
    "run_name": "name",
    "tracking.experiment": "name",
    "experiment": "name",
    "model_name": "model name",
    "alias": "alias",
}
_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")


def check_name(key: str, value: Any, kind: str = "name") -> str:
    """A run name, experiment, registered model name or alias: text without control characters
    (a newline would split the records it lands in), at most 250 characters; a model name has no
    ``/`` or ``@`` (``models:/<name>@<alias>``); an alias is letters, digits, ``_`` and ``-``, not
    ``latest`` nor ``v<number>`` (MLflow's version names)."""
    text = str(value)
    if not text.strip() or len(text) > 250:
        raise ConfigError(f"{key}={text[:60]!r}: expected 1 to 250 characters")
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise ConfigError(f"{key}={text[:60]!r}: holds the control character {bad!r}")
    if kind == "model name" and ("/" in text or "@" in text or ":" in text):
        raise ConfigError(f"{key}={text!r}: a registered model name has no '/', ':' or '@'")
    if kind == "alias" and (not _ALIAS.fullmatch(text) or text == "latest" or re.fullmatch(r"v\d+", text)):
        raise ConfigError(f"{key}={text!r}: an alias is letters, digits, _ and -, and not latest or v<N>")
    return text


def check_values(cfg: DictConfig, base: DictConfig, keys: Sequence[str]) -> None:
    """Each overridden key keeps the type its YAML default has (a number stays a number, a list a
    list; a null default takes anything), and every key of ``RANGES`` present is in its range: else
    one ConfigError naming the key, before any work."""
    for key in keys:
        default = OmegaConf.select(base, key, default=None, throw_on_missing=False)
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(value, (DictConfig, ListConfig)) or isinstance(default, (DictConfig, ListConfig)):
            if type(value) is not type(default) and default is not None and value is not None:
                raise ConfigError(f"{key}={_plain_value(value)!r}: expected {_kind(default)}")
            continue
        problem = _type_problem(default, value)
        if problem:
            raise ConfigError(f"{key}={value!r}: expected {problem}")
    for key, kind in NAMES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is not None and value != "???":
            check_name(key, value, kind)
    for key, (low, high) in RANGES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None or value == "???":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"{key}={value!r}: expected {'a number' if isinstance(low, float) else 'an integer'}"
            )
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"{key}={value!r}: expected {bounds(low, high)}")
    for spec in SPECS:  # an overridden key of a declared group: its type, also where the default is null
        touched = any(key.split(".")[0] == spec.GROUP for key in keys)
        if touched and isinstance(cfg.get(spec.GROUP), DictConfig):
            spec_of(spec, cfg[spec.GROUP])


def _type_problem(default: Any, value: Any) -> str | None:
    if default is None or value is None or default == "???":
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    return None


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, ListConfig) else "a mapping"


def _plain_value(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``model=minilm`` -> the key it sets."""
    return override.lstrip("+~").split("=", 1)[0]


@functools.cache
def _groups() -> frozenset[str]:
    """The shipped config groups (``model``, ``data``, ``threshold``, ...), nested ones included."""
    return frozenset(
        p.relative_to(CONFIG_DIR).as_posix()
        for p in CONFIG_DIR.rglob("*")
        if p.is_dir() and p.name != "__pycache__"
    )


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


def as_dict(node: Any) -> dict[str, Any]:
    """A config node (or mapping) as a plain dict with its interpolations resolved; None: empty."""
    if node is None:
        return {}
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(container, Mapping):
        raise ConfigError(f"expected a mapping of settings, got {container!r}")
    return {str(key): value for key, value in container.items()}


def spec_of(cls: type[S], node: Any) -> S:
    """A config group's node (composed, saved or a plain mapping) as its typed specification; a value
    whose interpolation reaches an unset key (``data.name: ${toxmod_stem:${data.path}}``) is unset."""
    if not isinstance(node, DictConfig):
        return cls.of(node)
    values: dict[str, Any] = {}
    for key in node:
        try:
            value = node[key]
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            values[str(key)] = MISSING
            continue
        values[str(key)] = (
            OmegaConf.to_container(value, resolve=True) if isinstance(value, Container) else value
        )
    return cls.of(values)


def launcher_share() -> LauncherShare:
    """In a sweep job: what its Hydra launcher gives each job (``toxmod.hardware.LauncherShare``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
    except (ImportError, ValueError):  # not inside a Hydra job
        return ALONE
    given = None
    for key in ("ray.remote.num_cpus", "cpus_per_task"):
        value = OmegaConf.select(launcher, key, default=None)
        if isinstance(value, (int, float)) and value > 0:
            given = int(value)
            break
    jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    if jobs is not None and int(jobs) < 0:  # joblib: -1 = one job per CPU
        jobs = os.cpu_count() or 1
    return LauncherShare(given, int(jobs or 1))


def hardware_of(node: Any) -> HardwareSettings:
    """A ``hardware`` config node resolved on this machine, within this job's share of it."""
    return resolve_hardware(spec_of(HardwareSpec, node), launcher_share())


def instantiate_component(cfg: DictConfig, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` without the meta keys (``name``), with a one-line error on failure."""
    params = {k: v for k, v in as_dict(cfg).items() if k not in META_KEYS}
    if params.get("_target_") in RENAMED_TARGETS:  # a run recorded before the class moved
        params["_target_"] = RENAMED_TARGETS[params["_target_"]]
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


def settings_from(cls: type[T], values: Mapping[str, Any], group: str) -> T:
    """A settings dataclass from a config group's values; an unknown key is a one-line error naming it."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]} is not a setting; {group} has {', '.join(sorted(known))}")
    return cls(**values)


# Called with an entry point's config before it runs (registered by the modules that need it).
COMMAND_HOOKS: list[Callable[[Any], None]] = []


def exit_on_user_error(func: F) -> F:
    """Turn a ToxmodError raised by an entry point into ``error: ...`` on stderr and its exit code (2;
    1 for a check that ran and failed, such as the export's parity gate)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            for hook in COMMAND_HOOKS:  # e.g. the command's resource limits (config.py)
                hook(args[0] if args else None)
            return func(*args, **kwargs)
        except ToxmodError as error:
            message, code = str(error), error.exit_code
        except MissingMandatoryValue as error:
            key = getattr(error, "full_key", None) or "a required key"
            message, code = f"{key} is required (pass {key}=...)", USER_ERROR_EXIT_CODE
        except KeyboardInterrupt:  # Ctrl-C: what was under way has cleaned up; no traceback
            print("error: interrupted (Ctrl-C)", file=sys.stderr)
            sys.exit(INTERRUPT_EXIT_CODE)
        except Terminated:
            print("error: terminated (SIGTERM)", file=sys.stderr)
            sys.exit(Terminated.exit_code)
        except Exception as error:
            full = disk_full(error)
            if full is not None:
                print(f"error: {printable(redact(str(full)))}", file=sys.stderr)
                sys.exit(full.exit_code)
            trace = "".join(traceback.format_exception(error))
            if not holds_secret(trace):
                raise
            print(redact(trace), file=sys.stderr, end="")  # a library's error that quoted a secret
            sys.exit(1)
        print(f"error: {printable(redact(message))}", file=sys.stderr)
        _discard_unused_output_dir()
        sys.exit(code)

    return wrapper  # type: ignore[return-value]


def _discard_unused_output_dir() -> None:
    """A command refused before it wrote anything leaves no folder behind (Hydra makes the run
    directory, and its own ``.hydra/``, before the command starts)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        output = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not inside a Hydra run
        return
    if output.is_dir() and {path.name for path in output.iterdir()} <= {".hydra"}:
        shutil.rmtree(output)
        if output.parent.name in STAGE_FOLDERS:  # outputs/<stage>/ and outputs/, when now empty
            with contextlib.suppress(OSError):
                output.parent.rmdir()
                output.parent.parent.rmdir()


def apply_limits(cfg: Any) -> None:
    """An entry point's ``limits`` config, in force for the whole command (``toxmod.limits``)."""
    if isinstance(cfg, DictConfig) and "limits" in cfg:
        configure(as_dict(cfg.limits))


if apply_limits not in COMMAND_HOOKS:
    COMMAND_HOOKS.append(apply_limits)


def run_entry_point(config_name: str, task: Callable[[], Any]) -> Any:
    """Validate ``sys.argv`` overrides, then hand over to the Hydra-decorated ``task``."""
    register_resolvers()
    raise_on_sigterm()
    sys.argv[1:] = with_user_conf(sys.argv[1:])
    check_overrides_or_exit(config_name, sys.argv[1:])
    return task()


register_resolvers()  # also in processes that only unpickle a task (joblib workers)
