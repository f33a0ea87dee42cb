"""`run.py serve`: deploy a model version as an HTTP service, or stop it (`--stop`)."""

from __future__ import annotations

import argparse
import sys

from utils.cli.common import add_version_args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py serve",
        description="Serve a model version over HTTP with the active stack's ZenML deployer "
        "(a local one is added to a stack that has none); --stop ends it.",
    )
    add_version_args(p)
    p.add_argument("--port", type=int, help="preferred port (default: serving.port)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. serving.max_inputs_per_request=8 (repeatable)",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without a bearer key: anyone who can reach the port may call the model "
        "(serving.auth=false)",
    )
    p.add_argument("--stop", action="store_true", help="stop the model's deployment")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from pipelines.inference import build_inference_pipeline
    from utils.config import load_config
    from utils.serving.deployment import deploy, stop

    overrides = [*args.set, *(["serving.auth=false"] if args.no_auth else [])]
    cfg = load_config(args.config, overrides)
    name = args.model or cfg.model.name
    if args.stop:
        stop(name)
        print(f"stopped the deployment {name!r}")
        return 0
    if not cfg.serving.auth:
        print(
            "warning: no auth key: anyone who can reach the port can call the model "
            "(/invoke, /submit, /v1/*)",
            file=sys.stderr,
        )
    served = deploy(name, args.stage, cfg, build_inference_pipeline, args.port)
    print(f"serving {served.description} at {served.url}")
    print(f"health: {served.health_url}   stop: python run.py serve --stop --model {name}")
    print(served.curl())
    key = f"{served.auth_key!r}" if served.auth_key else '"none"'
    print(f"openai: OpenAI(base_url={served.openai_base_url!r}, api_key={key})")
    return 0
