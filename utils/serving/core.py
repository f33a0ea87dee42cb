"""What every route of the service shares, free of ZenML: the served model, its batcher, the
limits, the counters, and awaiting one request's outputs under its deadline, its client's
disconnect and a full queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from utils.config import ServingSection
from utils.core.names import SERVED_SLOT_ERRORS, SERVED_TEXTS
from utils.serving.batcher import DecoderDead, QueueFull
from utils.serving.stats import ServingStats

# How often a waiting request looks whether its client is still there.
_POLL_S = 0.1


class Refused(Exception):
    """A request the service cannot answer: its status, a one-line reason, extra headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


class Disconnected(Exception):
    """The client went away before its answer was ready; its work was dropped."""


@dataclass
class ServingCore:
    """`served` is a ServedModel (or anything with `.batcher`, `.slot_errors`, `.task`).

    `meta`: the fields of ZenML's invoke-response metadata (deployment and snapshot ids,
    names); `record`: called after a fast answer with (body, inputs, outputs), for the runs
    `serving.record: sampled` keeps."""

    served: Any
    serving: ServingSection
    meta: dict[str, Any] = field(default_factory=dict)
    record: Callable[[dict[str, Any], list[str], list[str]], None] | None = None
    stats: ServingStats = field(default_factory=ServingStats)

    @property
    def healthy(self) -> bool:
        return self.served.batcher.alive

    def health_reason(self) -> str:
        return f"the decoding thread has stopped: {self.served.batcher.error!r}"

    async def outputs(
        self, inputs: list[str], is_disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> list[str]:
        """The outputs of `inputs`, or Refused (503 full queue / dead decoder, 504 deadline,
        500 decoding failed) or Disconnected."""
        start = time.monotonic()
        deadline = start + self.serving.request_timeout_s
        try:
            ticket = self.served.batcher.submit(inputs)
        except QueueFull as e:
            raise Refused(503, str(e), {"Retry-After": str(e.retry_after_s)}) from None
        except DecoderDead as e:
            raise Refused(503, str(e)) from None
        waiting = asyncio.wrap_future(ticket.future)
        while not waiting.done():
            left = deadline - time.monotonic()
            if left <= 0:
                ticket.cancel()
                raise Refused(
                    504,
                    f"no answer within {self.serving.request_timeout_s:g} s "
                    "(serving.request_timeout_s)",
                )
            await asyncio.wait({waiting}, timeout=min(_POLL_S, left))
            if not waiting.done() and is_disconnected is not None and await is_disconnected():
                ticket.cancel()
                raise Disconnected
        if waiting.cancelled():
            raise Disconnected
        error = waiting.exception()
        if isinstance(error, DecoderDead):
            raise Refused(503, str(error))
        if error is not None:
            raise Refused(
                500, f"decoding failed: {' '.join(str(error).split()) or type(error).__name__}"
            )
        return waiting.result()

    def invoke_reply(self, inputs: list[str], outputs: list[str], seconds: float) -> dict[str, Any]:
        """ZenML's invoke response, as a recorded run answers it (without a run id)."""
        return {
            "success": True,
            "outputs": {
                SERVED_TEXTS: outputs,
                SERVED_SLOT_ERRORS: self.served.slot_errors(inputs, outputs),
            },
            "execution_time": seconds,
            "metadata": {
                **self.meta,
                "run_id": None,
                "run_index": None,
                "run_name": None,
                "parameters_used": {"inputs": inputs},
            },
            "error": None,
        }
