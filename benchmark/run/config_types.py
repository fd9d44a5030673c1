"""The config's types: the one error a bad config raises, and the checks that turn a TOML table into
the config's dataclasses (unknown keys and wrong types named with their dotted key)."""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from typing import Any


class ConfigError(ValueError):
    pass


def check_type(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is None:
        if hint is Any or (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
            return value
        raise ConfigError(f"config key {key!r} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [check_type(f"{key}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a table, got {value!r}")
        _, inner = typing.get_args(hint)
        return {k: check_type(f"{key}.{k}", v, inner) for k, v in value.items()}
    raise ConfigError(f"config key {key!r}: unsupported type {hint}")


def build_section(cls, values: dict[str, Any], prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{sorted(unknown)[0]}'; allowed in "
                          f"[{prefix.rstrip('.') or 'top level'}]: {sorted(names)}")
    obj = cls()
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix}{name!r} must be a table")
            value = build_section(hint, value, f"{prefix}{name}.")
        else:
            value = check_type(f"{prefix}{name}", value, hint)
        setattr(obj, name, value)
    return obj


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string
