"""Dynamic micro-batching: requests that arrive together share one forward pass.

The event loop collects jobs; one dedicated inference thread takes them a batch at a time, prepares each
input (decode, crop, scale: off the event loop), normalises the batch at once, runs one forward pass,
formats each answer, and hands all of them back in one wake-up of the loop, which resolves each caller's
future. (`data.prepare` is `normalize(to_model_pixels(image))`; normalising the stacked batch does the same
arithmetic on every element as normalising each image, so the input is bit for bit the same.)

When a batch goes (the policy, all on the event loop):
- the inference thread is busy: nothing goes; jobs queue up and leave together when it is free, so under
  load batches form by themselves and a forward pass is never waited for twice;
- it is free: the pending jobs go on the loop's next turn (so requests whose bytes arrived in the same
  read join them), up to `max_batch`, unless requests are still being received (`incoming()`: body not
  yet read) and fewer than `max_batch` are pending, in which case the batch waits for them, at most
  `wait_s` after its first job arrived. A lone request therefore never waits for the window.

Why one thread and not a threadpool call per request: profiled under 16 clients, that per-request hop
(anyio's run_sync) held the GIL about three times as long as decoding and predicting the image did; and
one forward pass of 16 images costs 5-8 times one of 1 image, not 16 (docs/serving.md).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from ..data import normalize
from ..models import ModelMeta
from ..predict import answers
from .backends import Backend


class Job:
    """One image to predict. `prepare` and `finish` run on the inference thread."""

    __slots__ = ("prepare", "top_k", "finish", "future", "arrived")

    def __init__(self, prepare: Callable[[], np.ndarray], top_k: int, finish: Callable[[dict], Any] | None,
                 future: asyncio.Future, arrived: float):
        self.prepare = prepare  # () -> (C, H, W) pixels in [0, 1] (to_model_pixels); HTTPException if bad
        self.top_k = top_k
        self.finish = finish  # answer dict -> what the caller gets (e.g. its JSON bytes); None: the dict
        self.future = future
        self.arrived = arrived  # loop.time() when it was submitted


class Incoming:
    """A request still being received; `submit` hands its job over (see `Batcher.incoming`)."""

    __slots__ = ("batcher", "open")

    def __init__(self, batcher: Batcher):
        self.batcher = batcher
        self.open = True

    async def submit(self, prepare: Callable[[], np.ndarray], top_k: int,
                     finish: Callable[[dict], Any] | None = None) -> Any:
        if self.open:
            self.open = False
            self.batcher._incoming -= 1
        return await self.batcher.submit(prepare, top_k, finish)


class Batcher:
    def __init__(self, backend: Backend, meta: ModelMeta, max_batch: int = 64, wait_s: float = 0.002,
                 on_batch: Callable[[int], None] | None = None,
                 on_queue: Callable[[int], None] | None = None):
        self.backend, self.meta = backend, meta
        self.max_batch, self.wait_s = max_batch, wait_s
        self.on_batch = on_batch  # called with each batch's size, on the inference thread (metrics)
        self.on_queue = on_queue  # called with the number of jobs waiting, on the loop (metrics)
        self._pending: list[Job] = []
        self._incoming = 0  # requests whose body is still being read
        self._busy = False
        self._soon = False  # a _kick is scheduled for the loop's next turn
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # --- the event loop's side -----------------------------------------------------------------------------

    @asynccontextmanager
    async def incoming(self) -> AsyncIterator[Incoming]:
        """Count a request as on its way while its body is read, so a batch may wait for it."""
        slot = Incoming(self)
        self._incoming += 1
        try:
            yield slot
        finally:
            if slot.open:  # it never submitted (a bad request, or handed to another route)
                self._incoming -= 1
                self._kick()

    async def submit(self, prepare: Callable[[], np.ndarray], top_k: int,
                     finish: Callable[[dict], Any] | None = None) -> Any:
        """Queue one image and wait for its answer (or the HTTPException its preparation raised)."""
        loop = self._start()
        job = Job(prepare, top_k, finish, loop.create_future(), loop.time())
        self._pending.append(job)
        if not self._busy and not self._soon:
            self._soon = True
            loop.call_soon(self._kick)
        return await job.future

    def _kick(self) -> None:
        self._soon = False
        if self._busy or not self._pending:
            return
        if len(self._pending) < self.max_batch and self._incoming > 0 and self.wait_s > 0:
            deadline = self._pending[0].arrived + self.wait_s
            if self._loop.time() < deadline:
                if self._timer is None:
                    self._timer = self._loop.call_at(deadline, self._on_timer)
                return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        self._busy = True
        if self.on_queue:
            self.on_queue(len(self._pending))
        self._jobs.put(batch)

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()

    def _done(self, batch: list[Job], results: list[Any]) -> None:
        self._busy = False
        for job, r in zip(batch, results):
            if job.future.done():  # its caller went away (cancelled at shutdown)
                continue
            if isinstance(r, BaseException):
                job.future.set_exception(r)
            else:
                job.future.set_result(r)
        self._kick()
        if self.on_queue:
            self.on_queue(len(self._pending))

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._thread is None:  # first use, or first use since stop(): start afresh on this loop
            self._pending, self._busy, self._soon, self._timer = [], False, False, None
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name="cnnlab-inference", daemon=True)
            self._thread.start()
        return self._loop

    def stop(self, timeout: float = 10) -> None:
        """End the inference thread once the batches already handed to it are done."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            self._thread = None

    # --- the inference thread ----------------------------------------------------------------------------

    def _work(self) -> None:
        while (batch := self._jobs.get()) is not None:
            results = self.run(batch)
            try:
                self._loop.call_soon_threadsafe(self._done, batch, results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def run(self, batch: list[Job]) -> list[Any]:
        """Prepare every job, one forward pass for those that prepared, then each answer (or exception)."""
        results: list[Any] = [None] * len(batch)
        ok: list[int] = []
        xs: list[np.ndarray] = []
        for i, job in enumerate(batch):
            try:
                xs.append(job.prepare())
                ok.append(i)
            except Exception as e:  # noqa: BLE001 -- an HTTPException for a bad upload; a bug fails one job
                results[i] = e
        if xs:
            if self.on_batch:
                self.on_batch(len(xs))
            try:
                probs = self.backend.probabilities(normalize(np.stack(xs), self.meta))  # (B, K)
                for k in {batch[i].top_k for i in ok}:  # one formatting call per top_k asked for
                    rows = [r for r, i in enumerate(ok) if batch[i].top_k == k]
                    for r, answer in zip(rows, answers(self.meta, probs[rows], k)):
                        job = batch[ok[r]]
                        results[ok[r]] = job.finish(answer) if job.finish else answer
            except Exception as e:  # noqa: BLE001 -- a bug in the forward pass: every caller gets a 500
                for i in ok:
                    results[i] = e
        return results
