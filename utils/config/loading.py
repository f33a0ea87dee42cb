"""YAML file + `--set` overrides + `--data-dir` -> one validated `PipelineConfig`.

Every user-facing mistake (unknown key, wrong type, bad value, missing file) is raised as
`ConfigError` with the dotted key named, before any step runs.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from utils.config.base import ConfigError
from utils.config.sections import PipelineConfig


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        # Optional sections (`ColumnMap | None`) have their keys too.
        for ann in (field.annotation, *get_args(field.annotation)):
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                keys.extend(_known_keys(ann, prefix + name + "."))
    return keys


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    valid = _known_keys(PipelineConfig)
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            # Siblings first: in deep sections the parent key is often the closest string.
            parent = key.rpartition(".")[0]
            siblings = [k for k in valid if k.rpartition(".")[0] == parent]
            close = difflib.get_close_matches(key, siblings, n=1) or difflib.get_close_matches(
                key, valid, n=1
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"unknown key {key!r}{hint}")
        elif e["type"] == "value_error":
            # Our own validators already say what they got and what is valid.
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}" if key else msg)
        else:
            got = e.get("input")
            lines.append(f"{key}: {e['msg']} (got {got!r})")
    return f"invalid config {source}: " + "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.max_steps=4` -> (["training", "max_steps"], 4); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        # YAML refuses control characters even inside quotes; JSON takes them, so a quoted
        # value reads as the string it quotes, not with its quotes.
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys in a mapping: a second `training:` section
    would silently replace the first. This loader refuses it, naming the key and lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; explicit keys override merged ones by design
            key = self.construct_object(key_node, deep=True)
            try:
                first = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
            if first is not None:
                problem = f"duplicate key {key!r} (first at line {first})"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {problem}{where}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def validate_config(data: Any, source: str = "") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source)) from None


def load_config(
    path: Path | str | None,
    overrides: list[str] | None = None,
    data_dir: str | None = None,
) -> PipelineConfig:
    """Read YAML, apply `--set` overrides and `--data-dir`, validate once."""
    data = read_yaml(Path(path)) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    if data_dir is not None:
        data.setdefault("dataset", {})
        if not isinstance(data["dataset"], dict):
            raise ConfigError("'dataset' must be a section")
        data["dataset"]["data_dir"] = str(data_dir)
    return validate_config(data, str(path) if path else "(defaults)")
