"""How small can the data be: quality against the number of training rows.

Trains the config once per (fraction of the training rows, augmentation) point, with the
same step budget each time (`dataset.train_fraction`; `dataset.augment`), scores each
adapter on the full test split with the evaluation step's own code, and writes JSON (after
every point, so a long run keeps what it finished) and a PNG of ROUGE-L and SER against
training rows, e.g.

    python bench/data_curve.py
    python bench/data_curve.py --fractions 0.1 --augment none,substitute+permute \\
        --name data_curve_10pct

With `--set dataset.synthetic=...` (a generator and a parser version, docs/data.md) every
point also adds round-trip-verified synthetic rows, composed from that point's training
rows, as `run.py`'s synthesize_data step does; versions trained on more rows than a point
has would leak the rows it lacks, so give each fraction its own pair.

Every point costs a full training run plus a full test evaluation (the default config:
~10 + ~4 minutes on a 2-core CPU), so the whole default curve (5 fractions x 2) is hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steps.synthesize_data import synthesize_from_versions  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.data.prepare import prepare_dataset  # noqa: E402
from utils.evaluation.evaluator import evaluate_on_split  # noqa: E402
from utils.modeling.loader import load_tokenizer  # noqa: E402
from utils.modeling.resolve import resolve_model_path  # noqa: E402
from utils.training.train import train_lora  # noqa: E402
from utils.zenml_ops.model_versions import ModelVersionError  # noqa: E402
from utils.zenml_ops.synthetic_sources import check_sources  # noqa: E402

SHOWN = ("rougeL", "multiref_rougeL", "multiref_bleu", "ser", "exact_match", "slot_f1")
NO_AUGMENTATION = "none"


def _augment_list(variant: str) -> list[str]:
    return [] if variant == NO_AUGMENTATION else variant.split("+")


def run_point(
    config: Path, data_dir: Path | None, overrides: list[str], fraction: float, variant: str
) -> dict[str, Any]:
    """Train and score one point of the curve; returns its figures."""
    point = [
        *overrides,
        f"dataset.train_fraction={fraction}",
        f"dataset.augment={json.dumps(_augment_list(variant))}",
        "training.save_steps=null",
        "training.resume=never",
        "evaluation.split=test",
    ]
    cfg = load_config(config, point, str(data_dir) if data_dir else None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = load_tokenizer(resolve_model_path(cfg.model.base_model_id))
        synthetic = synthesize_from_versions(cfg.dataset) if cfg.dataset.synthetic else None
        meta = prepare_dataset(cfg.dataset, tokenizer, work / "data", synthetic=synthetic)
        start = time.perf_counter()
        summary = train_lora(cfg, work / "data", work / "adapter")
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        metrics, _ = evaluate_on_split(
            work / "data", cfg.dataset.task, cfg.model.source(), cfg.evaluation,
            work / "adapter", desc=f"{fraction:g} {variant}",
        )  # fmt: skip
    added = meta["data_report"].get("augmentation", {}).get("added", 0)
    kept = meta["data_report"].get("synthetic", {}).get("kept", 0)
    return {
        "fraction": fraction,
        "augment": variant,
        "train_rows": meta["split_sizes"]["train"] - added - kept,
        "augmented_rows": added,
        "synthetic_rows": kept,
        "steps": summary.get("steps"),
        "tokens_seen": summary.get("tokens_seen"),
        "train_minutes": round(train_s / 60, 2),
        "eval_minutes": round((time.perf_counter() - start) / 60, 2),
        "split": metrics["eval_set"],
        **{k: round(metrics[k], 4) for k in SHOWN if k in metrics},
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, help="a data folder (default: the config's source)")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "smollm2_cpu.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1", help="comma-separated")
    p.add_argument(
        "--augment", default=f"{NO_AUGMENTATION},substitute+permute",
        help="comma-separated variants: 'none' or augmentations joined by '+'",
    )  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--name", default="data_curve", help="file name of the JSON and PNG")
    args = p.parse_args(argv)

    # Missing synthetic sources stop the curve before its first training, not after it.
    cfg = load_config(args.config, args.overrides, str(args.data_dir) if args.data_dir else None)
    try:
        check_sources(cfg.dataset)
    except ModelVersionError as e:
        p.exit(2, f"error: {e}\n")
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    variants = [v.strip() for v in args.augment.split(",") if v.strip()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for variant in variants:
        for fraction in fractions:
            row = run_point(args.config, args.data_dir, args.overrides, fraction, variant)
            print(json.dumps(row), flush=True)
            results.append(row)
            record = {"config": str(args.config), "overrides": args.overrides, "points": results}
            (args.out_dir / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    _plot(results, args.out_dir / f"{args.name}.png", args.name)
    _table(results)
    return results


def _table(results: list[dict[str, Any]]) -> None:
    keys = [k for k in SHOWN if k in results[0]]
    head = ["augment", "fraction", "rows", "+aug", "+synthetic", "steps", "train min", *keys]
    print("\n| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for r in results:
        cells = [r["augment"], r["fraction"], r["train_rows"], r["augmented_rows"]]
        cells += [r["synthetic_rows"], r["steps"]]
        cells += [r["train_minutes"], *(r[k] for k in keys)]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def _plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for variant in dict.fromkeys(r["augment"] for r in results):
        points = sorted(
            (r for r in results if r["augment"] == variant), key=lambda r: r["train_rows"]
        )
        rows = [r["train_rows"] for r in points]
        for key, style in (("rougeL", "-"), ("ser", "--")):
            if key in points[0]:
                label = f"{key}, augment {variant}"
                ax.plot(rows, [r[key] for r in points], marker="o", linestyle=style, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training rows (before augmentation)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
