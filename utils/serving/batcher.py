"""One decoding thread for the whole service: the inputs of concurrent requests are decoded
together, the model is never used by two threads at once, and the queue in front of it is
bounded.

* A request waits at most `window_s` (from its arrival) for others to join its batch;
  requests that arrived while the previous batch decoded join it without waiting.
* A batch that fails is decoded again one request at a time, so a failing input fails only
  its own request (outputs do not depend on batch composition: see AdapterGenerator).
* Past `max_queued_inputs` waiting inputs, `submit` raises QueueFull at once; a request
  whose caller gave up (`Ticket.cancel`: a deadline or a disconnect) is dropped before it
  decodes.
* If the thread dies, `alive` is false, waiting requests fail with DecoderDead and new ones
  are refused at once.
* Where `setup` returns a rolling decode (`utils.inference.rolling`), requests do not wait
  for a batch: they join the running decode at its next step (up to `max_inputs` inputs in
  flight) and each is answered as soon as its own outputs are final. If that decode fails,
  its unanswered requests are decoded again one at a time.
* `setup` (loading the model) runs on the same thread before any batch: all of the
  service's tensor work stays on one thread. With PyTorch's OpenMP (libgomp), each thread
  that runs parallel tensor work gets its own team of worker threads; a model loaded on
  one thread and decoded on another left four OpenMP threads on a 2-core machine, and
  libgomp then stops spinning between parallel regions, so each of a decode step's few
  hundred regions waited for a sleeping worker: one MR took 1.64 s instead of 1.00 s
  (p50 of 40 test MRs, default adapter, 2-core Zen 3).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from functools import partial

from utils.inference.rolling import Job, Take

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """More inputs are waiting than the service accepts; retry after `retry_after_s`."""

    def __init__(self, queued: int, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"{queued} inputs are waiting, at most {limit} (serving.max_queued_inputs): "
            f"retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class DecoderDead(RuntimeError):
    """The decoding thread has stopped: the service cannot answer any more."""


@dataclass
class Ticket:
    """One request's place in the queue; `future` holds its outputs (or its error)."""

    inputs: list[str]
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    abandoned: bool = False

    def cancel(self) -> bool:
        """Drop the request if it has not started decoding (True); else a rolling decode
        stops its rows and a batch decode finishes it, its outputs ignored (False)."""
        self.abandoned = True
        return self.future.cancel()


class Batcher:
    """Runs `decode(inputs) -> outputs` on one thread over the inputs of whatever requests
    are waiting, up to `max_inputs` per batch (a larger request still goes whole, alone)."""

    def __init__(
        self,
        decode: Callable[[list[str]], list[str]],
        max_inputs: int,
        window_s: float = 0.0,
        max_queued_inputs: int | None = None,
        setup: Callable[[], Callable[[Take], None] | None] | None = None,
    ) -> None:
        """`setup` (run on the decoding thread first) may return a rolling decode, which
        then decodes every request instead of `decode` (kept for a rolling decode's
        failures)."""
        self._decode = decode
        self._setup = setup
        self._ready: Future = Future()
        self._max_inputs = max_inputs
        self._window_s = window_s
        self._max_queued = max_queued_inputs
        self._queue: collections.deque[Ticket] = collections.deque()
        self._queued_inputs = 0
        self._cond = threading.Condition()
        self._rate = _Rate()
        self.batches = 0
        self._in_flight: list[Ticket] = []  # a rolling decode's requests
        self._in_flight_inputs = 0
        self._last_answer = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self._thread.start()

    def ready(self, timeout: float | None = None) -> None:
        """Wait until `setup` has run on the decoding thread; raises its error."""
        self._ready.result(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    def submit(self, inputs: list[str]) -> Ticket:
        """Queue `inputs`; the ticket's future resolves to their outputs, in order."""
        ticket = Ticket(list(inputs))
        with self._cond:
            if not self.alive:
                raise DecoderDead(f"the decoding thread has stopped: {self.error!r}")
            queued = self._queued_inputs + len(ticket.inputs)
            # An idle service takes any request the per-request limits allow.
            if self._max_queued is not None and self._queue and queued > self._max_queued:
                raise QueueFull(self._queued_inputs, self._max_queued, self._retry_after())
            self._queue.append(ticket)
            self._queued_inputs = queued
            self._cond.notify()
        return ticket

    def __call__(self, inputs: list[str], timeout: float | None = None) -> list[str]:
        """Decode `inputs` and wait for them (what the pipeline's step calls)."""
        ticket = self.submit(inputs)
        try:
            return ticket.future.result(timeout)
        except TimeoutError:
            ticket.cancel()
            raise

    def _retry_after(self) -> int:
        per_s = self._rate.inputs_per_s()
        seconds = self._queued_inputs / per_s if per_s else 5.0
        return max(1, min(60, round(seconds)))

    def _pop(self) -> Ticket:
        ticket = self._queue.popleft()
        self._queued_inputs -= len(ticket.inputs)
        return ticket

    def _next_batch(self) -> list[Ticket]:
        """The requests of the next batch, each already marked running (so a cancel from
        now on no longer drops it)."""
        with self._cond:
            while True:
                while not self._queue:
                    self._cond.wait()
                first = self._pop()
                if first.future.set_running_or_notify_cancel():
                    break
            batch, size = [first], len(first.inputs)
            deadline = first.enqueued + self._window_s
            while size < self._max_inputs:
                if not self._queue:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                    continue
                nxt = self._queue[0]
                if size + len(nxt.inputs) > self._max_inputs:
                    break  # first in the next batch: arrival order is kept
                self._pop()
                if not nxt.future.set_running_or_notify_cancel():
                    continue  # its caller gave up while it waited
                batch.append(nxt)
                size += len(nxt.inputs)
            return batch

    def _run(self) -> None:
        batch: list[Ticket] = []
        try:
            rolling = self._setup() if self._setup is not None else None
            self._ready.set_result(None)
            while True:
                if rolling is not None:
                    batch = self._in_flight
                    self._roll(rolling)
                    continue
                batch = self._next_batch()
                self._decode_batch(batch)
        except BaseException as e:  # the service cannot answer any more: say so everywhere
            self.error = e
            if not self._ready.done():
                self._ready.set_exception(e)
                return
            logger.critical("the decoding thread stopped: %r", e)
            with self._cond:
                waiting = list(self._queue)
                self._queue.clear()
                self._queued_inputs = 0
            dead = DecoderDead(f"the decoding thread stopped: {e!r}")
            for t in batch:
                if not t.future.done():
                    t.future.set_exception(dead)
            for t in waiting:
                if t.future.set_running_or_notify_cancel():
                    t.future.set_exception(dead)

    def _roll(self, rolling: Callable[[Take], None]) -> None:
        """One rolling decode, from the first waiting request until none is left."""
        with self._cond:
            while not self._queue:
                self._cond.wait()
            deadline = self._queue[0].enqueued + self._window_s
            while self._queued_inputs < self._max_inputs:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                self._cond.wait(wait)
        self._last_answer = time.monotonic()
        try:
            rolling(self._take)
        except Exception as e:
            left = [t for t in self._in_flight if not t.future.done()]
            logger.warning(
                "the decode failed (%r): its %d unanswered requests one by one now", e, len(left)
            )
            for t in left:
                self._decode_batch([t])
        self.batches += 1
        self._in_flight.clear()
        self._in_flight_inputs = 0

    def _take(self) -> list[Job]:
        """Waiting requests that fit beside those in flight, marked running, as jobs."""
        jobs = []
        with self._cond:
            while self._queue:
                nxt = self._queue[0]
                fits = self._in_flight_inputs + len(nxt.inputs) <= self._max_inputs
                if self._in_flight_inputs and not fits:
                    break  # a larger request still goes whole, alone
                self._pop()
                if not nxt.future.set_running_or_notify_cancel():
                    continue  # its caller gave up while it waited
                self._in_flight.append(nxt)
                self._in_flight_inputs += len(nxt.inputs)
                jobs.append(
                    Job(
                        nxt.inputs, partial(self._answered, nxt), partial(self._failed, nxt),
                        lambda t=nxt: t.abandoned,
                    )
                )  # fmt: skip
        return jobs

    def _answered(self, ticket: Ticket, outputs: list[str]) -> None:
        now = time.monotonic()
        # Inputs per second between answers: what the service is decoding at.
        self._rate.add(len(ticket.inputs), now - self._last_answer)
        self._last_answer = now
        self._release(ticket)
        ticket.future.set_result(outputs)

    def _failed(self, ticket: Ticket, error: BaseException) -> None:
        if not isinstance(error, CancelledError):
            logger.warning("decoding a request of %d inputs failed: %r", len(ticket.inputs), error)
        self._release(ticket)
        ticket.future.set_exception(error)

    def _release(self, ticket: Ticket) -> None:
        self._in_flight.remove(ticket)
        self._in_flight_inputs -= len(ticket.inputs)

    def _decode_batch(self, batch: list[Ticket]) -> None:
        inputs = [text for t in batch for text in t.inputs]
        start = time.monotonic()
        try:
            outputs = self._decode(inputs)
        except Exception as e:
            if len(batch) == 1:
                logger.warning("decoding a request of %d inputs failed: %r", len(inputs), e)
                batch[0].future.set_exception(e)
                return
            # Find the request that fails; the others still get their outputs.
            logger.warning("a batch of %d requests failed (%r): one by one now", len(batch), e)
            for t in batch:
                self._decode_batch([t])
            return
        self.batches += 1
        self._rate.add(len(inputs), time.monotonic() - start)
        offset = 0
        for t in batch:
            t.future.set_result(outputs[offset : offset + len(t.inputs)])
            offset += len(t.inputs)


class _Rate:
    """Inputs per second over the last few batches (for Retry-After)."""

    def __init__(self, keep: int = 8) -> None:
        self._recent: collections.deque[tuple[int, float]] = collections.deque(maxlen=keep)

    def add(self, inputs: int, seconds: float) -> None:
        self._recent.append((inputs, seconds))

    def inputs_per_s(self) -> float | None:
        seconds = sum(s for _, s in self._recent)
        return sum(n for n, _ in self._recent) / seconds if seconds > 0 else None


__all__ = ["Batcher", "CancelledError", "DecoderDead", "QueueFull", "Ticket"]
