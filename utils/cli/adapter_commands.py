"""`run.py generate` and `run.py export`: a model version's adapter in use."""

from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli.common import add_version_args, chosen_version
from utils.core.errors import UserError


def generate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="run.py generate", description="Generate with a model version's adapter."
    )
    add_version_args(p)
    p.add_argument("--input", action="append", default=[], help="a task input (repeatable)")
    p.add_argument("--input-file", type=Path, help="one task input per line")
    p.add_argument(
        "--max-new-tokens", type=int, help="default: what the version's evaluation decoded with"
    )
    p.add_argument("--batch-size", type=int, help="default: the version's evaluation.batch_size")
    args = p.parse_args(argv)
    inputs = list(args.input)
    if args.input_file:
        if not args.input_file.is_file():
            raise UserError(f"input file not found: {args.input_file}")
        inputs += [line for line in args.input_file.read_text().splitlines() if line.strip()]
    if not inputs:
        raise UserError("nothing to generate: pass --input TEXT or --input-file FILE")
    from utils.inference.adapters import generate_with_adapter
    from utils.zenml_ops.model_versions import (
        evaluated_max_new_tokens,
        extracted_adapter,
        version_config,
    )

    mv = chosen_version(args)
    max_new_tokens = args.max_new_tokens or evaluated_max_new_tokens(mv)
    with extracted_adapter(mv) as adapter:
        outputs = generate_with_adapter(
            version_config(mv), adapter, inputs, max_new_tokens, args.batch_size
        )
    for text in outputs:
        print(text)
    return 0


def export_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="run.py export", description="Write the merged model (safetensors + tokenizer)."
    )
    add_version_args(p)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from utils.inference.adapters import export_merged
    from utils.zenml_ops.model_versions import extracted_adapter, version_config

    mv = chosen_version(args)
    with extracted_adapter(mv) as adapter:
        out = export_merged(version_config(mv), adapter, args.out)
    print(f"merged model written to {out}")
    return 0
