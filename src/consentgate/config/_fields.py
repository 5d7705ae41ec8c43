"""The one field reader: a settings dataclass read from its TOML table.

Each field's key, default, type and choices come from the dataclass itself, so a default is
written once, where the settings type lives. What a type cannot say (a selector that must
parse, a URL, a list of CSP sources) a section's reader adds as a per-field check.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from consentgate.errors import ConfigError

#: A field's own check: given the full key and the value (of the field's type, when the
#: reader knows it), the value to keep, or a ConfigError naming the key.
Check = Callable[[str, Any], Any]
#: A default that follows other fields: given the values read so far (declaration order).
Derive = Callable[[Mapping[str, Any]], Any]

_Settings = TypeVar("_Settings")
_SCALARS: tuple[type, ...] = (bool, str, int, float)


def read_fields(
    raw: Mapping[str, Any],
    cls: type[_Settings],
    prefix: str,
    *,
    check: Mapping[str, Check] | None = None,
    derive: Mapping[str, Derive] | None = None,
    **read: Any,
) -> _Settings:
    """Build the settings dataclass ``cls`` from its table ``raw``.

    A field is read, in declaration order, from the key of its name (``metadata["key"]``
    renames it; a dotted key such as ``"controller.name"`` sits in a sub-table). Absent,
    it takes the dataclass default, or what ``derive`` computes from the fields before it.
    Its value is checked against the field's type: ``bool``, ``int``, ``float``, ``str``, a
    ``Literal`` of strings, or one of these ``| None`` (``None`` is the absent default and
    is not checked). ``metadata["range"]`` bounds a number (``"above"`` makes the low end
    exclusive), ``metadata["between"]`` too, in the older sections' wording. Then ``check``
    has the last word; a field of a type the reader does not know (tuples, tables) must have
    one. A dataclass field is its own table, read the same way unless ``check`` reads it
    (the check is given the table). Fields in ``read`` the caller has read itself.
    """
    hints = typing.get_type_hints(cls)
    checks = check or {}
    derived = derive or {}
    values: dict[str, Any] = dict(read)
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in values:
            continue
        key = spec.metadata.get("key", spec.name)
        hint = hints[spec.name]
        hook = checks.get(spec.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            section = table(raw, key, prefix)
            if hook is None:
                values[spec.name] = read_fields(section, hint, f"{prefix}{key}.")
            else:
                values[spec.name] = hook(prefix + key, section)
            continue
        parent, _, name = key.rpartition(".")
        holder = table(raw, parent, prefix) if parent else raw
        if name in holder:
            value = holder[name]
        elif spec.name in derived:
            value = derived[spec.name](values)
        else:
            value = _default(spec)
        values[spec.name] = _value(prefix + key, value, hint, spec.metadata, hook)
    return cls(**values)


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        default = spec.default
    elif spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
    else:  # a field without a default is the caller's to read
        raise TypeError(f"{spec.name}: no default; pass it to read_fields")
    # As TOML would give it, so that a default passes the same check as a written value.
    return list(default) if isinstance(default, tuple) else default


def _value(key: str, value: Any, hint: Any, metadata: Mapping[str, Any], hook: Check | None) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        hint = kinds[0] if len(kinds) == 1 else hint
    if typing.get_origin(hint) is Literal or hint in _SCALARS:
        value = checked(key, value, hint, metadata)
    elif hook is None:
        raise TypeError(f"{key}: no reader for a field of type {hint!r}")  # a programming error
    return value if hook is None else hook(key, value)


def checked(key: str, value: Any, hint: Any, metadata: Mapping[str, Any] | None = None) -> Any:
    """``value`` if it is what ``hint`` says, else the ConfigError naming ``key``."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}; got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {type(value).__name__}")
        return value
    if hint is int or hint is float:
        number_types = (int,) if hint is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types):
            raise ConfigError(key, "must be a whole number" if hint is int else "must be a number")
        _check_range(key, value, metadata or {})
        return hint(value)
    raise TypeError(f"{key}: no reader for a field of type {hint!r}")  # a programming error


def _check_range(key: str, value: float, metadata: Mapping[str, Any]) -> None:
    if "range" in metadata:
        low, high = metadata["range"]
        above = metadata.get("above", False)
        if not ((low < value) if above else (low <= value)) or value > high:
            sign = "<" if above else "<="
            raise ConfigError(key, f"must be {low} {sign} value <= {high}, got {value}")
    if "between" in metadata:
        low, high = metadata["between"]
        if not low <= value <= high:
            raise ConfigError(key, f"must be between {low} and {high}, got {value}")


def table(raw: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(prefix + key, "must be a table")
    return value


def string(raw: Mapping[str, Any], key: str, default: str, *, prefix: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(prefix + key, f"must be a string, not {type(value).__name__}")
    return value


def boolean(raw: Mapping[str, Any], key: str, default: bool, *, prefix: str = "") -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(prefix + key, "must be true or false")
    return value
