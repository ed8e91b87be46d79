"""Declared settings: one frozen dataclass per config group, each field saying what the code needs to know
about its key -- its type, its range, and whether it belongs to the job's identity.

The YAML ``conf/<group>/_defaults.yaml`` holds the one default of every key; a field has no default of
its own. A specification is built from a plain mapping (a composed config's group, a saved run's
config) by ``Spec.of``: a key the mapping lacks (a run saved before the key existed) takes the YAML
default, an unknown key or a value of the wrong type or range is one ``ConfigError`` naming the key.
Nothing here reads a composed config object: the layers below the stages receive these objects.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from toxmod.errors import ConfigError
from toxmod.files import read_config_yaml
from toxmod.paths import CONFIG_DIR

MISSING = "???"  # Hydra's "must be set" marker, as a saved or composed config holds it
S = TypeVar("S", bound="Spec")


def setting(*, low: float | None = None, high: float | None = None, job: bool = True) -> Any:
    """A declared key: ``low``/``high`` bound a number; ``job=False``: a resumed run may change it (where
    the job runs or reads its file from, not what it computes)."""
    return dataclasses.field(metadata={"low": low, "high": high, "job": job})


@functools.cache
def group_defaults(group: str, root: str | None = None) -> dict[str, Any]:
    """The one default of every key: ``conf/<group>/_defaults.yaml`` (without its defaults list), or
    the block ``group`` of the root config ``conf/<root>.yaml`` (``checkpoint:`` in train.yaml)."""
    if root is None:
        loaded = read_config_yaml(CONFIG_DIR / group / "_defaults.yaml") or {}
    else:
        loaded = (read_config_yaml(CONFIG_DIR / f"{root}.yaml") or {}).get(group) or {}
    return {str(k): v for k, v in loaded.items() if k != "defaults"}


@dataclasses.dataclass(frozen=True)
class Spec:
    """Base of a config group's specification (``GROUP`` names the group and its ``_defaults.yaml``)."""

    GROUP: ClassVar[str]
    # A group whose options each add keys of their own (a split builder's arguments): the field that
    # collects them, as a mapping; the ``_target_`` naming the option's code is the field ``target``.
    OPTION_KEYS: ClassVar[str | None] = None
    # A block of a root config rather than a group of its own: the root (``train`` for train.yaml).
    ROOT: ClassVar[str | None] = None

    @classmethod
    def of(cls: type[S], values: Mapping[str, Any] | None = None) -> S:
        """The specification of ``values`` (missing keys: the YAML defaults), validated key by key."""
        given = plain(values or {})
        if not isinstance(given, dict):
            raise ConfigError(f"{cls.GROUP}: expected a mapping of settings, got {given!r}")
        if "_target_" in given:
            given["target"] = given.pop("_target_")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - set(fields))
        if cls.OPTION_KEYS:
            given[cls.OPTION_KEYS] = {k: given.pop(k) for k in unknown}
        elif unknown:
            raise ConfigError(
                f"{cls.GROUP}.{unknown[0]} is not a setting; {cls.GROUP} has {', '.join(sorted(fields))}"
            )
        merged = {**group_defaults(cls.GROUP, cls.ROOT), **given}
        hints = typing.get_type_hints(cls)
        checked = {  # the field ``target`` is the config's ``_target_``
            name: _checked(
                f"{cls.GROUP}.{'_target_' if name == 'target' else name}",
                merged.get(name),
                hints[name],
                field.metadata,
            )
            for name, field in fields.items()
        }
        return cls(**checked)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain YAML-able values (tuples as lists), in declaration order."""
        return {f.name: _yaml_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


def declared(specs: Sequence[type[Spec]]) -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Every declared key of ``specs`` as (``group.key``, field)."""
    for spec in specs:
        for field in dataclasses.fields(spec):
            yield f"{spec.GROUP}.{field.name}", field


def plain(value: Any) -> Any:
    """Mappings and sequences (also a composed config's nodes) as dicts and lists, recursively."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


def dotted(values: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``values["a"]["b"]`` for ``key="a.b"``; ``default`` where a part is missing or not a mapping."""
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """``values["a"]["b"] = value`` for ``key="a.b"``, making the mappings on the way."""
    *parents, last = key.split(".")
    node = values
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _yaml_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_yaml_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _yaml_value(v) for k, v in value.items()}
    return value


def _checked(key: str, value: Any, hint: Any, metadata: Mapping[str, Any]) -> Any:
    """``value`` converted to the field's type (lists become tuples) or one ConfigError naming ``key``."""
    options = _union_members(hint)
    optional = type(None) in options
    if value is None or value == MISSING:
        if optional:
            return None
        raise ConfigError(f"{key} is not set")
    for option in (o for o in options if o is not type(None)):
        converted = _as_type(value, option)
        if converted is not _REFUSED:
            _check_range(key, converted, metadata)
            return converted
    return _refuse(key, value, [o for o in options if o is not type(None)])


_REFUSED = object()


def _union_members(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _as_type(value: Any, kind: Any) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if kind is bool:
        return value if isinstance(value, bool) else _REFUSED
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _REFUSED
    if kind is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _REFUSED
    if kind is Path:
        return Path(value).expanduser() if isinstance(value, (str, Path)) else _REFUSED
    if kind is str:  # a column or label YAML reads as a number (``0``) is still its name
        return (
            str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else _REFUSED
        )
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return _REFUSED
        items = [_as_type(v, args[0]) for v in value]
        return _REFUSED if any(i is _REFUSED for i in items) else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            return _REFUSED
        values = {str(k): _as_type(v, args[1]) for k, v in value.items()}
        return _REFUSED if any(v is _REFUSED for v in values.values()) else values
    raise TypeError(f"no conversion to {kind!r}")


def _refuse(key: str, value: Any, options: list[Any]) -> Any:
    described = " or ".join(_describe(o) for o in options)
    raise ConfigError(f"{key}={value!r}: expected {described}")


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", Path: "a path"}
    if kind in names:
        return names[kind]
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    return "a value"


def _check_range(key: str, value: Any, metadata: Mapping[str, Any]) -> None:
    low, high = metadata.get("low"), metadata.get("high")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{key}={value!r}: expected {bounds(low, high)}")


def bounds(low: float | None, high: float | None) -> str:
    """``a positive integer``, ``a value between 0 and 1``, ...: what a range allows, in words."""
    if high is not None:
        return f"a value between {low} and {high}"
    named = {1.0: "a positive integer", 0.0: "a non-negative integer"}
    return named.get(float(low), f"an integer >= {low} ({low}: no limit)") if low is not None else "a number"
