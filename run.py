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
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    # Reliability (resume). A matching checkpoint is resumed anyway (training.resume=auto);
    # --resume makes it a requirement, so a typo'd config cannot silently start over.
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted finetune of this config; error if it has no checkpoint",
    )
    return p


def load_run_config(args: argparse.Namespace) -> Any:
    from utils.config import load_config

    overrides = list(args.overrides)
    if args.resume:
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
    from utils.schedules import ScheduleError, build_schedule

    try:
        return build_schedule(args.schedule, args.schedule_every)
    except ScheduleError as e:
        raise UserError(str(e)) from None


def check_stack(cfg: Any, schedule: Any) -> None:
    """Schedules and step operators the active stack cannot honour fail here, before a run."""
    from utils.remote import RemoteError, check_step_operator, steps_on_step_operator
    from utils.schedules import ScheduleError, check_orchestrator

    if schedule is None and not steps_on_step_operator(cfg.remote):
        return
    from zenml.client import Client

    stack = Client().active_stack
    try:
        if schedule is not None:
            orchestrator = stack.orchestrator
            check_orchestrator(orchestrator.flavor, orchestrator.config.is_schedulable, schedule)
        check_step_operator(cfg.remote, stack.name, set(stack.step_operators))
    except (ScheduleError, RemoteError) as e:
        raise UserError(str(e)) from None


def runs_locally() -> bool:
    from zenml.client import Client

    return Client().active_stack.orchestrator.flavor == "local"


def preflight(cfg: Any) -> None:
    """Fail before any step runs (and before a model version exists) on fixable problems."""
    from utils.checkpoints import check_resume, checkpoint_step
    from utils.data import load_task_splits
    from utils.hub import hub_reachable
    from utils.models import check_model_folder, check_quantizable, resolve_model_path
    from utils.secrets import SecretError, check_hf_secret, hf_token

    local = runs_locally()
    if cfg.model.hf_token_secret:
        try:
            if local:
                hf_token(cfg.model.hf_token_secret)  # this machine's HF_TOKEN wins
            else:
                # A remote step never sees this machine's HF_TOKEN: the secret must exist.
                check_hf_secret(cfg.model.hf_token_secret)
        except SecretError as e:
            raise UserError(str(e)) from None
    if not local:
        # Data folders, the hub and the model cache are those of the machines steps run on.
        return
    if not cfg.dataset.data_dir and not hub_reachable():
        raise UserError(
            f"the Hugging Face hub is unreachable, so dataset {cfg.dataset.name!r} cannot be "
            "downloaded: pass --data-dir PATH (e.g. --data-dir ../shared/data/viggo)"
        )
    # Every row, as prepare_data will read it (~1 s for ViGGO): missing splits or columns and
    # malformed rows stop the run here, not in a step after a model version exists.
    load_task_splits(cfg.dataset)
    path = resolve_model_path(cfg.model.base_model_id)
    check_model_folder(path, cfg.model.allow_pickle_weights)
    check_quantizable(
        path,
        cfg.model.quantization,
        cfg.model.trust_remote_code,
        token=hf_token(cfg.model.hf_token_secret),
    )
    checkpoint = check_resume(cfg)
    if checkpoint is not None:
        logger.info("finetune resumes from step %d (%s)", checkpoint_step(checkpoint), checkpoint)


def cmd_run(argv: list[str]) -> int:
    args = run_parser().parse_args(argv)
    schedule = schedule_from_args(args)
    cfg = load_run_config(args)
    if schedule is not None:
        # A cached scheduled run would replay the first one: same data, same adapter.
        cfg.enable_cache = False
    if args.dry_run:
        print(yaml.safe_dump(cfg.model_dump(), sort_keys=False), end="")
        return 0
    check_stack(cfg, schedule)
    preflight(cfg)
    from pipelines.finetuning import build_pipeline

    run = build_pipeline(cfg, schedule)(config=cfg.model_dump())
    if schedule is not None:
        when = schedule.cron_expression or f"every {schedule.interval_second}"
        print(f"scheduled ({when}): each run trains a new version of model {cfg.model.name!r}")
        return 0
    print_summary(run)
    return 0


def print_summary(run: Any) -> None:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)  # the returned object is not hydrated
    try:
        promotion = run.steps["promote"].outputs["promotion"][0].load()
        # Output keys are the substituted artifact names ({stage}_metrics).
        base = run.steps["evaluate_base"].outputs["base_metrics"][0].load()
        tuned = run.steps["evaluate_finetuned"].outputs["finetuned_metrics"][0].load()
    except (KeyError, IndexError, AttributeError):
        print(f"run {run.name}: finished")
        return
    keys = [k for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "ser") if k in base]
    print(f"\nrun {run.name}")
    print(f"{'metric':<12}{'base':>10}{'finetuned':>12}")
    for k in keys:
        print(f"{k:<12}{base[k]:>10.4f}{tuned[k]:>12.4f}")
    print(f"promotion: {json.dumps(promotion)}")


def score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py score",
        description="Score any system's outputs; prints the metrics as one JSON object.",
    )
    p.add_argument(
        "--task", choices=["data_to_text", "text_to_mr", "text_to_text"], default="data_to_text"
    )
    p.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="JSONL rows with input, reference or references, prediction",
    )
    p.add_argument("--debug", action="store_true")
    return p


def read_prediction_rows(path: Path) -> tuple[list[str], list[str], list[str]]:
    """Rows with several `references` become one row per reference (ViGGO's own layout)."""
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    inputs, predictions, references = [], [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        refs = row.get("references") or ([row["reference"]] if "reference" in row else None)
        if "input" not in row or "prediction" not in row or not refs:
            found = sorted(row)
            raise UserError(
                f"{path}:{n}: need keys input, prediction and reference or references; "
                f"found {found}"
            )
        for ref in [refs] if isinstance(refs, str) else refs:
            inputs.append(str(row["input"]))
            predictions.append(str(row["prediction"] or ""))
            references.append(str(ref))
    if not inputs:
        raise UserError(f"{path} has no rows")
    return inputs, predictions, references


def cmd_score(argv: list[str]) -> int:
    args = score_parser().parse_args(argv)
    from utils.metrics import compute_metrics
    from utils.viggo import MRParseError

    inputs, predictions, references = read_prediction_rows(args.predictions)
    try:
        metrics = compute_metrics(args.task, inputs, predictions, references)
    except MRParseError as e:
        raise UserError(f"{args.predictions}: malformed meaning representation: {e}") from None
    print(json.dumps(metrics, sort_keys=True))
    return 0


def promote_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py promote", description="Move a model version to a stage (the human step)."
    )
    p.add_argument("--to", required=True, choices=["staging", "production", "archived"])
    p.add_argument("--version", required=True, help="version number or name")
    p.add_argument("--model", help="model name (default: model.name of --config)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--debug", action="store_true")
    return p


def cmd_promote(argv: list[str]) -> int:
    args = promote_parser().parse_args(argv)
    from zenml.client import Client
    from zenml.enums import ModelStages

    from utils.config import load_config

    name = args.model or load_config(args.config).model.name
    version: int | str = int(args.version) if args.version.isdigit() else args.version
    try:
        mv = Client().get_model_version(name, version)
    except KeyError:
        raise UserError(f"model {name!r} has no version {args.version!r}") from None
    mv.set_stage(ModelStages(args.to), force=True)
    print(f"model {name!r} version {mv.name} is now in stage {args.to!r}")
    return 0


def _version_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stage", default="staging", help="stage (staging, production, latest) or version number"
    )
    p.add_argument("--model", help="model name (default: model.name of --config)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--debug", action="store_true")


def _model_version(args: argparse.Namespace) -> Any:
    from utils.config import load_config
    from utils.serving import ServingError, find_version

    name = args.model or load_config(args.config).model.name
    try:
        return find_version(name, args.stage)
    except ServingError as e:
        raise UserError(str(e)) from None


def cmd_generate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="run.py generate", description="Generate with a model version's adapter."
    )
    _version_args(p)
    p.add_argument("--input", action="append", default=[], help="a task input (repeatable)")
    p.add_argument("--input-file", type=Path, help="one task input per line")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    inputs = list(args.input)
    if args.input_file:
        if not args.input_file.is_file():
            raise UserError(f"input file not found: {args.input_file}")
        inputs += [line for line in args.input_file.read_text().splitlines() if line.strip()]
    if not inputs:
        raise UserError("nothing to generate: pass --input TEXT or --input-file FILE")
    from utils.serving import ServingError, generate_with_version

    try:
        outputs = generate_with_version(
            _model_version(args), inputs, args.max_new_tokens, args.batch_size
        )
    except ServingError as e:
        raise UserError(str(e)) from None
    for text in outputs:
        print(text)
    return 0


def cmd_export(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="run.py export", description="Write the merged model (safetensors + tokenizer)."
    )
    _version_args(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from utils.serving import ServingError, export_merged

    try:
        out = export_merged(_model_version(args), args.out)
    except ServingError as e:
        raise UserError(str(e)) from None
    print(f"merged model written to {out}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "score": cmd_score,
    "promote": cmd_promote,
    "generate": cmd_generate,
    "export": cmd_export,
}


def setup_logging() -> None:
    # Levels only: ZenML's root handler prints the records (a second handler would double them).
    for name in ("run", "utils", "steps", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    debug = "--debug" in argv
    if debug:
        os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "DEBUG")
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    from utils.checkpoints import CheckpointError
    from utils.config import ConfigError
    from utils.data import DataError
    from utils.models import ModelLoadError

    try:
        return COMMANDS[command](argv)
    except (UserError, ConfigError, DataError, ModelLoadError, CheckpointError) as e:
        if debug:
            raise
        # One line, whatever the message: scripts and people read the last line.
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        # Checkpoints written so far stay; the same command continues from the last one.
        print("interrupted: run the same command again to resume training", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
