"""Command line entry point: `python run.py --config configs/smollm2_cpu.yaml [...]`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "smollm2_cpu.yaml"

logger = logging.getLogger("run")


class UserError(Exception):
    """Anything the user can fix; printed as one line, exit code 2."""


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="Finetune a LoRA adapter on ViGGO as a ZenML pipeline, evaluate, promote.",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML config file")
    p.add_argument("--data-dir", help="folder with train/validation/test (.jsonl/.csv/.parquet)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.max_steps=10 (repeatable)",
    )
    p.add_argument("--no-cache", action="store_true", help="re-run every step")
    p.add_argument(
        "--dry-run", action="store_true", help="validate the config, print it resolved, run nothing"
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def load_run_config(args: argparse.Namespace) -> Any:
    from utils.config import load_config

    cfg = load_config(args.config, args.overrides, args.data_dir)
    if args.no_cache:
        cfg.enable_cache = False
    return cfg


def preflight(cfg: Any) -> None:
    """Fail before any step runs (and before a model version exists) on fixable problems."""
    from utils.data import SPLITS, _find_split_file
    from utils.hub import hub_reachable
    from utils.models import resolve_model_path

    if cfg.dataset.data_dir:
        data_dir = Path(cfg.dataset.data_dir)
        if not data_dir.is_dir():
            raise UserError(f"data dir not found: {data_dir}")
        for split in SPLITS:
            _find_split_file(data_dir, split)
    elif not hub_reachable():
        raise UserError(
            f"the Hugging Face hub is unreachable, so dataset {cfg.dataset.name!r} cannot be "
            "downloaded: pass --data-dir PATH (e.g. --data-dir ../shared/data/viggo)"
        )
    resolve_model_path(cfg.model.base_model_id)


def cmd_run(argv: list[str]) -> int:
    args = run_parser().parse_args(argv)
    cfg = load_run_config(args)
    if args.dry_run:
        print(yaml.safe_dump(cfg.model_dump(), sort_keys=False), end="")
        return 0
    preflight(cfg)
    from pipelines.finetuning import build_pipeline

    run = build_pipeline(cfg)(config=cfg.model_dump())
    print_summary(run)
    return 0


def print_summary(run: Any) -> None:
    try:
        promotion = run.steps["promote"].outputs["promotion"][0].load()
        base = run.steps["evaluate_base"].outputs["metrics"][0].load()
        tuned = run.steps["evaluate_finetuned"].outputs["metrics"][0].load()
    except (KeyError, IndexError, AttributeError):
        print(f"run {run.name}: finished")
        return
    keys = [k for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "ser") if k in base]
    print(f"\nrun {run.name}")
    print(f"{'metric':<12}{'base':>10}{'finetuned':>12}")
    for k in keys:
        print(f"{k:<12}{base[k]:>10.4f}{tuned[k]:>12.4f}")
    print(f"promotion: {json.dumps(promotion)}")


COMMANDS = {"run": cmd_run}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    debug = "--debug" in argv
    if debug:
        os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "DEBUG")
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    from utils.config import ConfigError
    from utils.data import DataError
    from utils.models import ModelLoadError

    try:
        return COMMANDS[command](argv)
    except (UserError, ConfigError, DataError, ModelLoadError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
