"""What several commands share: the default config, and picking a model version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from utils.core.names import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "smollm2_cpu.yaml"


def add_model_source_args(p: argparse.ArgumentParser) -> None:
    """A benchmark's data, config, base model and adapter (the evaluation's own inputs)."""
    p.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data" / "viggo")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--model", help="base model id or folder (default: the config's)")
    p.add_argument("--adapter", type=Path, help="LoRA adapter folder (default: the base model)")


def add_version_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stage", default="staging", help="stage (staging, production, latest) or version number"
    )
    p.add_argument("--model", help="model name (default: model.name of --config)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--debug", action="store_true")


def model_name(args: argparse.Namespace) -> str:
    from utils.config import load_config

    return args.model or load_config(args.config).model.name


def chosen_version(args: argparse.Namespace) -> Any:
    from utils.zenml_ops.model_versions import find_version

    return find_version(model_name(args), args.stage)
