"""Typed configuration: strict pydantic models loaded from YAML plus `--set a.b=c` overrides.

Every command's config is a `StrictModel`: unknown keys and wrong types are errors that name the key and the
file. `load_config` is the only way a command turns a YAML file into a model; it never lets a traceback reach
the user — it raises `ConfigError`, whose message is one paragraph, and the CLI exits with status 2.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from curation.strict import StrictModel as StrictModel  # re-exported: the one config base
from pipeline.core.errors import ClipforgeError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ClipforgeError):
    """A config could not be loaded; the message names the file and the key."""


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (["a", "b", "c"], value), the value parsed as a YAML scalar or flow value.

    `--set train.lr=3e-4` gives a float, `--set stages=[text,match]` a list, `--set name=null` None. A value
    that YAML cannot parse stays a string, so pydantic reports it against the field's type.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad override {item!r}: expected KEY=VALUE with a dotted key, e.g. --set train.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b=c` override set, creating intermediate mappings."""
    out = json.loads(json.dumps(data, default=str)) if data else {}
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                dotted = ".".join(path[: i + 1])
                raise ConfigError(f"bad override {item!r}: {dotted!r} is a {type(child).__name__}, not a section")
            node = child
        node[path[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping top level is a `ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist (or is not a file).")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {str(p)!r} is not valid YAML{line}: {getattr(e, 'problem', e)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of keys, not a {type(data).__name__}.")
    return data


def describe_errors(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """One paragraph naming each offending key, what was wrong and the value given (shortened: never the whole
    config). With `model`, an unknown key gets a "did you mean" from the field names at its level."""
    parts = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(model, e["loc"]) if model is not None else None
            parts.append(f"unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        elif e["type"] == "missing":
            parts.append(f"missing required key {key!r}")
        elif e["type"] == "value_error":  # a model's own check: its message names the keys
            message = e["msg"].removeprefix("Value error, ")
            parts.append(f"key {key!r}: {message}" if key else message)
        else:
            parts.append(f"key {key or '(top level)'!r}: {e['msg']} (got {_short(e.get('input'))})")
    return f"invalid config in {source}: " + "; ".join(parts) + "."


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The dotted key closest to the unknown key at `loc` among the fields at its level (difflib), or None."""
    fields: dict[str, Any] = model.model_fields
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = fields.get(str(part))
        sub = _model_in(info.annotation) if info is not None else None
        if sub is None:
            return None
        fields = sub.model_fields
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=1, cutoff=0.6)
    return ".".join([*(str(p) for p in loc[:-1]), close[0]]) if close else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (`M`, `M | None`, `list[M]`), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_config(model: type[M], data: dict[str, Any], source: str) -> M:
    """Validate a mapping into `model`, turning pydantic's error into a one-paragraph `ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_errors(e, source, model)) from None


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None) -> M:
    """Load `model` from a YAML file (or its defaults when `path` is None) with `--set` overrides applied."""
    data = read_yaml(path) if path is not None else {}
    source = repr(str(path)) if path is not None else "the built-in defaults"
    if overrides:
        source += " with --set " + " ".join(overrides)
    return validate_config(model, apply_overrides(data, overrides or []), source)


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML: what a run records in its run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_hash(cfg: BaseModel) -> str:
    """sha256 of the canonical JSON of the resolved config (for manifests and resume checks)."""
    canon = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def dotted_items(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping (e.g. a config's `model_dump(mode="json")`) as {"a.b.c": leaf}; lists and empty mappings
    are leaves. What resume checks compare key by key, and name in their refusals."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(dotted_items(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
