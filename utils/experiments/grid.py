"""A sweep's grid: `--grid KEY=V1,V2` and the `sweep.grid` section -> one `--set`-style
override list per variant (the cartesian product, in the order the keys were given).

Values stay text until the config loader reads them (as YAML, like every `--set` value),
so a variant is validated exactly as the same `--set` flags would be.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import yaml

from utils.config import ConfigError

# A grid: (dotted key, the values' `--set` text), in the order the keys were given.
Grid = list[tuple[str, list[str]]]


@dataclass(frozen=True)
class Variant:
    index: int  # 1-based, the order the sweep runs them in
    overrides: tuple[tuple[str, str], ...]  # (dotted key, value text)

    @property
    def sets(self) -> list[str]:
        """The `--set` arguments that make this variant."""
        return [f"{key}={value}" for key, value in self.overrides]

    @property
    def label(self) -> str:
        return " ".join(self.sets)


def split_values(text: str) -> list[str]:
    """`3e-4,1e-3` -> ["3e-4", "1e-3"]; commas inside brackets or quotes do not split, so a
    list value is written as YAML: `lora.target_modules=[q_proj,v_proj],[o_proj]`."""
    values, current, depth, quote = [], [], 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    values.append("".join(current).strip())
    return values


def parse_grid_arg(text: str) -> tuple[str, list[str]]:
    """`training.learning_rate=3e-4,1e-3` -> ("training.learning_rate", ["3e-4", "1e-3"])."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--grid {text!r}: expected dotted.key=value1,value2,...")
    values = split_values(raw)
    if any(not v for v in values):
        raise ConfigError(f"--grid {text!r}: empty value (values are separated by commas)")
    return key, values


def set_text(value: Any) -> str:
    """A parsed value as `--set` text that reads back as itself: a plain string where YAML
    reads it unchanged (`org/model`), else JSON (which is YAML: `"true"`, `0.001`, `[a, b]`)."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and value == value.strip():
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def section_grid(grid: dict[str, list[Any]]) -> Grid:
    """`sweep.grid` (values already parsed from YAML) as `--set` text."""
    return [(key, [set_text(v) for v in values]) for key, values in grid.items()]


def merge_grids(base: Grid, given: Grid) -> Grid:
    """`given` (the command line) replaces the values of a key `base` (the file) has, and
    adds the keys it lacks, after them."""
    merged = dict(base)
    for key, values in given:
        merged[key] = values
    return list(merged.items())


def check_grid(grid: Grid, sets: list[str]) -> None:
    """One line for a grid that would run the same variant twice, or that `--set` fights."""
    for key, values in grid:
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"--grid {key}: value(s) {', '.join(repeated)} given twice")
    fixed = {s.partition("=")[0].strip() for s in sets}
    for key, _ in grid:
        if key in fixed:
            raise ConfigError(f"--set {key} and --grid {key}: a key is either fixed or swept")


def expand(grid: Grid) -> list[Variant]:
    """Every combination, the first key varying slowest; no grid = one variant, the config."""
    if not grid:
        return [Variant(1, ())]
    keys = [key for key, _ in grid]
    combos = itertools.product(*(values for _, values in grid))
    return [Variant(i, tuple(zip(keys, combo, strict=True))) for i, combo in enumerate(combos, 1)]
