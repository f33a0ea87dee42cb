"""`run.py sweep`: one pipeline run (and model version) per combination of grid values.

Every variant is the config + `--set` flags + its own overrides, validated up front (a bad
key or value exits 2 before any run). Variants are scored on a seeded subset
(`sweep.eval_samples`); the best `sweep.final_top_k` are run again with the config's own
evaluation set, their finetune served from the cache. A failing variant is reported and
the others go on; the sweep then exits 1 naming the failed ones.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from utils.cli.run_command import add_config_args, load_run_config
from utils.config import ConfigError, PipelineConfig
from utils.core.errors import one_line
from utils.core.names import (
    EVALUATE_BASE,
    PREPARE_DATA,
    SWEEP,
    SWEEP_OVERRIDES,
    SWEEP_TAG_PREFIX,
    EvalStage,
    metrics_name,
)
from utils.experiments.grid import (
    Variant,
    check_grid,
    expand,
    merge_grids,
    parse_grid_arg,
    section_grid,
)
from utils.experiments.progress import duration, progress_line
from utils.zenml_ops.step_failures import failed_step_error

# Steps a sweep expects the cache to serve after the first variant (same inputs).
SHARED_STEPS = (PREPARE_DATA, EVALUATE_BASE)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py sweep",
        description="Run the pipeline once per combination of --grid values; one model "
        "version each, scored on a seeded subset (sweep.eval_samples).",
    )
    add_config_args(p)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values to sweep, e.g. --grid training.learning_rate=3e-4,1e-3 (repeatable; "
        "replaces that key of the config's sweep.grid)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the variants, run nothing")
    return p


@dataclass
class Planned:
    variant: Variant
    cfg: PipelineConfig  # scored on the sweep's subset
    final_cfg: PipelineConfig  # the config's own evaluation set (final_top_k)


@dataclass
class Outcome:
    planned: Planned
    phase: str  # "subset" or "final"
    version: str
    seconds: float = 0.0
    error: str | None = None
    run_ids: list[Any] = field(default_factory=list)
    metric: float | None = None
    eval_set: str | None = None


def subset_overrides(cfg: PipelineConfig) -> list[str]:
    """What the sweep sets before the user's `--set` flags (which win over it)."""
    s = cfg.sweep
    if s.eval_samples is None:
        return []
    out = [f"evaluation.max_samples={s.eval_samples}"]
    if s.final_top_k:
        # A subset score holding `staging` would block every full-set score from it.
        out.append("promotion.enabled=false")
    return out


def plan(args: argparse.Namespace, base: PipelineConfig) -> list[Planned]:
    """Every variant's two configs, validated; one line naming the variant if one is bad."""
    given = [parse_grid_arg(g) for g in args.grid]
    grid = merge_grids(section_grid(base.sweep.grid), given)
    check_grid(grid, args.overrides)
    variants = expand(grid)
    planned = []
    for v in variants:
        try:
            cfg = load_run_config(args, [*subset_overrides(base), *args.overrides, *v.sets])
            final = load_run_config(args, [*args.overrides, *v.sets])
        except ConfigError as e:
            raise ConfigError(f"sweep variant {v.index}/{len(variants)} ({v.label}): {e}") from None
        planned.append(Planned(v, cfg, final))
    return planned


def value_at(cfg: PipelineConfig, dotted: str) -> Any:
    node: Any = cfg.model_dump(mode="json")
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def eval_set_of(cfg: PipelineConfig) -> str:
    e = cfg.evaluation
    return f"{e.split}:{e.max_samples or 'all'}"


def print_plan(planned: list[Planned], base: PipelineConfig) -> None:
    n = len(planned)
    print(f"{n} variant(s), each a pipeline run and a model version:")
    for p in planned:
        print(f"  {p.variant.index}/{n}  {p.variant.label or '(the config)'}  "
              f"[eval {eval_set_of(p.cfg)}, model {p.cfg.model.name}]")  # fmt: skip
    k = base.sweep.final_top_k
    if k and eval_set_of(planned[0].final_cfg) == eval_set_of(planned[0].cfg):
        print(f"sweep.final_top_k={k} skipped: the variants are scored on the config's own set")
    elif k:
        print(f"then the best {k} by promotion.metric again on {eval_set_of(planned[0].final_cfg)}"
              " (finetune from the cache)")  # fmt: skip


def failure_line(e: BaseException) -> str:
    """One line for a variant's failure; a config error needs no type to be understood."""
    return one_line(e, with_type=not isinstance(e, ConfigError))


def run_one(
    cfg: PipelineConfig, version: str, tags: tuple[str, ...], track: bool = True
) -> tuple[str | None, Any]:
    """(error line or None, run id or None): one pipeline run; nothing it raises stops the
    sweep but an interrupt."""
    from pipelines.finetuning import build_pipeline
    from utils.cli.preflight import preflight

    try:
        preflight(cfg)
        run = build_pipeline(cfg, version=version, tags=tags, track=track)(config=cfg)
        return None, getattr(run, "id", None)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a variant's failure is reported; the others go on
        return failure_line(e), None


def record(outcome: Outcome, sweep_id: str, n: int) -> None:
    """The sweep's metadata on the variant's version (also a failed one, if ZenML made it),
    its scores and its runs (found from the version when the run raised)."""
    from zenml import log_metadata
    from zenml.client import Client

    p, v = outcome.planned, outcome.planned.variant
    cfg = p.cfg if outcome.phase == "subset" else p.final_cfg
    client = Client()
    try:
        mv = client.get_model_version(cfg.model.name, outcome.version)
    except KeyError:
        return  # failed before the run started (preflight): no version
    if not outcome.run_ids:
        outcome.run_ids = [r.id for r in client.list_pipeline_runs(model_version_id=mv.id)]
    if outcome.error:
        outcome.error = failed_step_error(outcome.run_ids) or outcome.error
    overrides = {key: value_at(cfg, key) for key, _ in v.overrides}
    status = "failed" if outcome.error else "completed"
    info = {"id": sweep_id, "variant": v.index, "variants": n, "phase": outcome.phase,
            "status": status, "error": outcome.error}  # fmt: skip
    log_metadata(metadata={SWEEP_OVERRIDES: overrides, SWEEP: info}, model_version_id=mv.id)
    metrics = client.get_model_version(cfg.model.name, outcome.version).run_metadata.get(
        metrics_name(EvalStage.FINETUNED)
    )
    if isinstance(metrics, dict):
        value = metrics.get(cfg.promotion.metric)
        outcome.metric = float(value) if isinstance(value, int | float) else None
        outcome.eval_set = metrics.get("eval_set")


def cache_report(outcomes: list[Outcome]) -> str:
    """How often the shared steps ran and were served from the cache, and the seconds the
    cache saved (each cached step's original execution time)."""
    from zenml.client import Client

    client = Client()
    ran: dict[str, int] = {}
    cached: dict[str, int] = {}
    saved = 0.0
    for o in outcomes:
        for run_id in o.run_ids:
            for name, step in client.get_pipeline_run(run_id).steps.items():
                status = step.status.value
                if status == "cached":
                    cached[name] = cached.get(name, 0) + 1
                    original = step.original_step_run_id
                    if original is not None:
                        d = client.get_run_step(original).duration
                        saved += d.total_seconds() if d else 0.0
                elif status == "completed":
                    ran[name] = ran.get(name, 0) + 1
    parts = [f"{s} ran {ran.get(s, 0)}x, cached {cached.get(s, 0)}x" for s in SHARED_STEPS]
    others = sorted(set(cached) - set(SHARED_STEPS))
    if others:
        parts.append("also cached: " + ", ".join(f"{s} {cached[s]}x" for s in others))
    return f"cache: {'; '.join(parts)}; ~{duration(saved)} of step time saved"


def summary(outcomes: list[Outcome]) -> str:
    header = ["#", "phase", "overrides", "status", "version", "seconds", "metric"]
    body = []
    for o in outcomes:
        p = o.planned
        cfg = p.cfg if o.phase == "subset" else p.final_cfg
        score = "" if o.metric is None else f"{cfg.promotion.metric}={o.metric:.4f} ({o.eval_set})"
        status = "ok" if o.error is None else f"FAILED: {o.error}"
        body.append([str(p.variant.index), o.phase, p.variant.label, status, o.version,
                     f"{o.seconds:.1f}", score])  # fmt: skip
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in (header, *body))  # fmt: skip


def best_first(outcomes: list[Outcome], k: int) -> list[Outcome]:
    from utils.core.tasks import METRICS

    scored = [o for o in outcomes if o.error is None and o.metric is not None]
    scored.sort(key=lambda o: -METRICS[o.planned.cfg.promotion.metric].goodness(o.metric))
    return scored[:k]


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    base = load_run_config(args)
    planned = plan(args, base)
    if args.dry_run:
        print_plan(planned, base)
        return 0
    from utils.cli.preflight import check_stack, check_tracking

    check_stack(base, None)
    track = check_tracking(base)  # once: an unusable tracker stops the sweep before any run
    sweep_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    n, start, finished = len(planned), time.perf_counter(), []
    k = base.sweep.final_top_k
    if eval_set_of(planned[0].final_cfg) == eval_set_of(planned[0].cfg):
        k = 0  # the subset is the config's own set already: nothing to re-evaluate
    total = n + min(k, n)  # runs planned; fewer finals if fewer variants succeed
    print(f"sweep {sweep_id}: {n} variant(s)" + (f", then the best {k} again" if k else ""),
          flush=True)  # fmt: skip
    outcomes: list[Outcome] = []

    def go(p: Planned, phase: str, cfg: PipelineConfig, index: int, total: int) -> Outcome:
        label = p.variant.label + (" (final evaluation)" if phase == "final" else "")
        line = progress_line(index, total, label, time.perf_counter() - start, finished)
        print(line, flush=True)
        version = f"sweep-{sweep_id}-{p.variant.index}" + ("-final" if phase == "final" else "")
        tags = (SWEEP_TAG_PREFIX + sweep_id, f"sweep-phase:{phase}",
                *(f"{k}={v}"[:120] for k, v in p.variant.overrides))  # fmt: skip
        t0 = time.perf_counter()
        error, run_id = run_one(cfg, version, tags, track)
        o = Outcome(p, phase, version, time.perf_counter() - t0, error, [run_id] if run_id else [])
        finished.append(o.seconds)
        try:
            record(o, sweep_id, n)
        except Exception as e:  # the run itself is done; say what could not be recorded
            print(f"[sweep {index}/{total}] not recorded: {failure_line(e)}", file=sys.stderr)
        if o.error:  # refined by `record` to the failed step's own exception
            print(f"[sweep {index}/{total}] FAILED: {o.error}", file=sys.stderr, flush=True)
        return o

    for p in planned:
        outcomes.append(go(p, "subset", p.cfg, p.variant.index, total))
    finals = [o.planned for o in best_first(outcomes, k)] if k else []
    for j, p in enumerate(finals, 1):
        outcomes.append(go(p, "final", p.final_cfg, n + j, n + len(finals)))
    print(f"\nsweep {sweep_id} done in {duration(time.perf_counter() - start)}")
    print(summary(outcomes))
    print(cache_report(outcomes))
    models = sorted({o.planned.cfg.model.name for o in outcomes})
    _leaderboard(models, base.promotion.metric, sweep_id)
    failed = [o for o in outcomes if o.error]
    if failed:
        names = "; ".join(f"{o.planned.variant.index} ({o.planned.variant.label}): {o.error}"
                          for o in failed)  # fmt: skip
        print(f"{len(failed)} of {len(outcomes)} failed: {names}", file=sys.stderr)
        return 1
    return 0


def _leaderboard(models: list[str], metric: str, sweep_id: str) -> None:
    """Print the sweep's leaderboard and store its page, pinned to the model(s)."""
    from utils.cli.compare import leaderboard, publish
    from utils.experiments.leaderboard import render

    try:
        groups, _ = leaderboard(models, metric, sweep_id)
    except Exception as e:  # the runs are done and recorded; a leaderboard problem is not theirs
        print(f"leaderboard: not made ({failure_line(e)})", file=sys.stderr)
        return
    if not groups:
        return
    print(f"\nleaderboard (python run.py compare --sweep {sweep_id}"
          f"{''.join(f' --model {m}' for m in models)}):")  # fmt: skip
    print(render(groups, "table"))
    try:
        publish(groups, models, f"Sweep {sweep_id}", None, True, [SWEEP_TAG_PREFIX + sweep_id])
    except Exception as e:
        print(f"leaderboard: not stored ({failure_line(e)})", file=sys.stderr)
