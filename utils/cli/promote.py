"""`run.py promote`: move a model version to a stage by hand (the human step)."""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli.common import DEFAULT_CONFIG
from utils.core.names import Stage


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py promote", description="Move a model version to a stage (the human step)."
    )
    p.add_argument("--to", required=True, choices=[s.value for s in Stage])
    p.add_argument("--version", required=True, help="version number or name")
    p.add_argument("--model", help="model name (default: model.name of --config)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from zenml.enums import ModelStages

    from utils.cli.common import model_name
    from utils.zenml_ops.model_versions import find_version

    name = model_name(args)
    mv = find_version(name, args.version)
    mv.set_stage(ModelStages(args.to), force=True)
    print(f"model {name!r} version {mv.name} is now in stage {args.to!r}")
    return 0
