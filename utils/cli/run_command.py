"""`run.py [run]`: validate the config, check what can be checked, run the pipeline (or
schedule it), print the scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from utils.cli.common import DEFAULT_CONFIG
from utils.core.errors import UserError


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The flags that make a run's config (`load_run_config`); `sweep` shares them."""
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
        "--accelerate",
        action="store_true",
        help="train on every GPU of this node (2 CPU processes without a GPU)",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        help="train on N processes with Accelerate (1 = no launcher)",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="Finetune a LoRA adapter on ViGGO as a ZenML pipeline, evaluate, promote.",
    )
    add_config_args(p)
    p.add_argument(
        "--dry-run", action="store_true", help="validate the config, print it resolved, run nothing"
    )
    # Scheduled runs need an orchestrator that can schedule (not the local one).
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--schedule",
        metavar="CRON",
        help='create a cron schedule on the active stack instead of running, e.g. "0 3 * * 1"',
    )
    when.add_argument(
        "--schedule-every",
        metavar="INTERVAL",
        help="create an interval schedule (90s, 30m, 6h, 1d) starting now",
    )
    # Reliability (resume). A matching checkpoint is resumed anyway (training.resume=auto);
    # --resume makes it a requirement, so a typo'd config cannot silently start over.
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted finetune of this config; error if it has no checkpoint",
    )
    return p


def load_run_config(args: argparse.Namespace, overrides: list[str] | None = None) -> Any:
    """The validated config of `args`; `overrides` (default: the `--set` flags) are the
    `--set`-style overrides to apply."""
    from utils.config import load_config

    overrides = list(args.overrides if overrides is None else overrides)
    if getattr(args, "resume", False):
        overrides.append("training.resume=always")
    if args.num_processes is not None:
        overrides.append(f"accelerate.num_processes={args.num_processes}")
    elif args.accelerate:
        import torch

        overrides.append(f"accelerate.num_processes={torch.cuda.device_count() or 2}")
    cfg = load_config(args.config, overrides, args.data_dir)
    if args.no_cache:
        cfg.enable_cache = False
    return cfg


def schedule_from_args(args: argparse.Namespace) -> Any:
    """The ZenML Schedule asked for on the command line, or None; validated, stack unseen."""
    if args.schedule is None and args.schedule_every is None:
        return None
    from utils.zenml_ops.schedules import build_schedule

    return build_schedule(args.schedule, args.schedule_every)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    schedule = schedule_from_args(args)
    cfg = load_run_config(args)
    if schedule is not None:
        # A cached scheduled run would replay the first one: same data, same adapter.
        cfg.enable_cache = False
    if args.dry_run:
        print(yaml.safe_dump(cfg.model_dump(), sort_keys=False), end="")
        return 0
    from utils.cli.preflight import check_stack, check_tracking, preflight

    check_stack(cfg, schedule)
    track = check_tracking(cfg)
    preflight(cfg)
    from pipelines.finetuning import build_pipeline

    try:
        run = build_pipeline(cfg, schedule, track=track)(config=cfg)
    except RuntimeError as e:
        from utils.zenml_ops.step_failures import StepFailed, latest_run_failure

        # ZenML's "Pipeline run has failed ..." names no cause: the failed step's error does.
        failure = None if isinstance(e, UserError) else latest_run_failure(cfg.model.name)
        if failure is None:
            raise
        raise StepFailed(failure) from None
    if schedule is not None:
        when = schedule.cron_expression or f"every {schedule.interval_second}"
        print(f"scheduled ({when}): each run trains a new version of model {cfg.model.name!r}")
        return 0
    print_summary(run, cfg.dataset.task)
    return 0


def print_summary(run: Any, task: str) -> None:
    from zenml.client import Client

    from utils.core.names import (
        EVALUATE_BASE,
        EVALUATE_FINETUNED,
        PROMOTE,
        PROMOTION,
        EvalStage,
        metrics_name,
    )
    from utils.core.tasks import get_task

    run = Client().get_pipeline_run(run.id)  # the returned object is not hydrated
    try:
        promotion = run.steps[PROMOTE].outputs[PROMOTION][0].load()
        # Output keys are the substituted artifact names ({stage}_metrics).
        base = run.steps[EVALUATE_BASE].outputs[metrics_name(EvalStage.BASE)][0].load()
        tuned = run.steps[EVALUATE_FINETUNED].outputs[metrics_name(EvalStage.FINETUNED)]
        tuned = tuned[0].load()
    except (KeyError, IndexError, AttributeError):
        print(f"run {run.name}: finished")
        return
    keys = [m.name for m in get_task(task).metrics if m.name in base]
    print(f"\nrun {run.name}")
    print(f"{'metric':<15}{'base':>10}{'finetuned':>12}")
    for k in keys:
        print(f"{k:<15}{base[k]:>10.4f}{tuned[k]:>12.4f}")
    print(f"promotion: {json.dumps(promotion)}")
