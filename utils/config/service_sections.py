"""Sections for what runs around the pipeline rather than in it: the experiment tracker,
`run.py serve` and `run.py sweep`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from utils.config.base import Section


class TrackingSection(Section):
    """The active stack's experiment tracker (MLflow, W&B), when it has one."""

    # A tracker that cannot be reached (or is misconfigured) stops the run before any step;
    # false: the run goes on without it, with a warning.
    required: bool = True


class ServingSection(Section):
    """`run.py serve`: what one HTTP request may ask for, how requests share the model, what
    the service records, and who may call it.

    Read from the config `serve` is given (not the served version's): limits belong to the
    deployment, while prompt, stop rules and decoding come from the version's own config.
    """

    # Requests beyond these get a 413 naming the key; they bound one request's latency.
    max_inputs_per_request: int = Field(32, gt=0)
    max_input_chars: int = Field(2000, gt=0)
    # Inputs of concurrent requests are decoded together, up to this many per batch (in
    # flight, with continuous batching).
    max_batch_inputs: int = Field(64, gt=0)
    # true: a request joins the running decode at its next step and is answered as soon as
    # its own outputs are final (higher throughput and a lower median; an input that draws
    # reranking candidates shares its steps with newer requests). false: batch by batch,
    # every request of a batch waits for its slowest input. Constrained decoding and beam
    # reranking are always batch by batch.
    continuous_batching: bool = True
    # How long a request waits (from its arrival) for others to join its batch (0 = no
    # waiting; requests that arrived while the previous batch decoded still join).
    batch_window_ms: int = Field(0, ge=0, le=10_000)
    # Inputs waiting for the model beyond which a request gets a 503 with Retry-After.
    max_queued_inputs: int = Field(256, gt=0)
    # A request not answered within this many seconds (queue + decoding) gets a 504.
    request_timeout_s: float = Field(60.0, gt=0)
    # false = greedy only, even where the version's evaluation reranked (faster, more SER).
    rerank: bool = True
    # Which `/invoke` requests also become a pipeline run (inputs, outputs, step in the
    # dashboard): none; sampled = one in `record_every`, written after the answer, off the
    # request's path; every = each request is a run before it is answered (ZenML's own
    # deployment path, slower). `/submit` is always a full run.
    record: Literal["none", "sampled", "every"] = "sampled"
    record_every: int = Field(100, gt=0)
    # Seconds between writes of the service's counters (requests, inputs, errors, latency
    # p50/p95) to the served model version's metadata (`serving_stats`); 0 = never.
    stats_every_s: int = Field(60, ge=0)
    # A bearer key on /invoke, /submit and /v1/*: generated at deploy time unless
    # `auth_secret` names a ZenML secret whose `auth_key` holds it. false = anyone who can
    # reach the port may call the model (`serve --no-auth`).
    auth: bool = True
    auth_secret: str | None = None
    # Origins a browser may call the service from (CORS); empty = none (same-origin only).
    cors_origins: list[str] = Field(default_factory=list)
    # torch threads of the service process; null = one per core.
    torch_threads: int | None = Field(None, gt=0)
    # Preferred port of the local deployer (a free one if taken); null = the deployer's.
    port: int | None = Field(None, gt=0, lt=65536)
    # Seconds `serve` waits for the model to load and the service to report healthy.
    startup_timeout: int = Field(600, gt=0)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"cors origin {origin!r} is not scheme://host[:port] (or '*')")
        return v


class SweepSection(Section):
    """`run.py sweep`: one pipeline run (and model version) per combination of `grid` values,
    each evaluated on a seeded subset, the best `final_top_k` re-evaluated as configured."""

    # Dotted config key -> the values to try, e.g. {training.learning_rate: [3e-4, 1e-3]};
    # `--grid KEY=V1,V2` on the command line replaces one key's values (or adds the key).
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    # Each variant's evaluation.max_samples (a seeded subset, the same rows for every
    # variant): fast iteration. null = the config's own evaluation set.
    eval_samples: int | None = Field(200, gt=0)
    # Re-evaluate the best K variants (by promotion.metric) on the config's own evaluation
    # set (the full split unless evaluation.max_samples says otherwise); 0 = none.
    final_top_k: int = Field(0, ge=0)

    @field_validator("grid")
    @classmethod
    def _grid_keys(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not key or any(not part for part in key.split(".")):
                raise ValueError(f"grid key {key!r} is not a dotted config key")
            if key.split(".")[0] == "sweep":
                raise ValueError(f"grid key {key!r}: a sweep cannot vary its own settings")
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
        return v

    @model_validator(mode="after")
    def _final_needs_subset(self) -> SweepSection:
        if self.final_top_k and self.eval_samples is None:
            raise ValueError(
                "final_top_k re-evaluates on the full set what eval_samples scored on a "
                "subset: set eval_samples, or final_top_k: 0"
            )
        return self
