"""Batching concurrent requests: :class:`MicroBatcher` runs the model on one thread.

While the model runs one batch, new requests queue up; they are then run together as the next
batch (merged per signature and scalar inputs), and each request gets its own slice back.
A batch is also capped in pixels (``max_batch_pixels``: a request above it runs in slices),
and may hold a shared :class:`~pmlv_utils.serving.workers.PixelBudget` while it decodes, so
the images decoded at once fit in memory. The server runs two: one for small requests, one
("large") for requests of big images, so a big image never delays a small request.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .service import PredictionService
from .workers import PixelBudget

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_BATCH_WAIT_MS = 5.0


@dataclass
class _Job:
    signature: str
    inputs: dict[str, Any]
    n: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    pixels: Sequence[int] = ()  # per instance

    @property
    def key(self):  # jobs with the same key can be concatenated
        scalars = tuple(
            sorted((k, repr(v)) for k, v in self.inputs.items() if not isinstance(v, list))
        )
        return self.signature, scalars


class MicroBatcher:
    """One model thread; requests that arrive together are run as one batch.

    The thread takes everything queued. If more predict requests are arriving (counted by
    :meth:`tracking`: received and being read or parsed, not yet queued) it waits up to
    ``max_wait_ms`` for them, so a busy server merges concurrent requests into larger, cheaper
    model calls. A lone request never waits: nothing else is arriving.
    """

    def __init__(
        self,
        model: PredictionService,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
        max_batch_pixels: int | None = None,
        budget: PixelBudget | None = None,
        name: str = "model-batcher",
    ):
        self.model, self.max_batch_size = model, int(max_batch_size)
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000.0
        self.max_batch_pixels, self.budget = max_batch_pixels, budget
        self._queue: queue.Queue = queue.Queue()
        self.calls = 0  # model calls, and instances they ran: instances / calls = mean batch size
        self.instances = 0
        self.arriving = 0  # predict requests received and not yet queued
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    async def submit(
        self, signature: str, inputs: dict[str, Any], n: int, pixels: Sequence[int] = ()
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(signature, inputs, n, loop, future, tuple(pixels)))
        return await future

    @contextlib.contextmanager
    def tracking(self):
        """Count a request as arriving while it is read and parsed (before :meth:`submit`)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    def close(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            groups: dict[Any, list[_Job]] = {}
            for j in self._collect(job):
                groups.setdefault(j.key, []).append(j)
            for group in groups.values():
                self._run_group(group)

    def _collect(self, job: _Job) -> list[_Job]:
        """``job`` and the jobs queued (or arriving within the wait) up to the batch size."""
        jobs, size, pixels = [job], job.n, sum(job.pixels)
        deadline = time.monotonic() + self.max_wait_s
        cap = self.max_batch_pixels
        while size < self.max_batch_size and (cap is None or pixels < cap):
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if self.arriving <= 0 or wait <= 0:
                    break  # nobody else is coming (soon enough)
                try:
                    more = self._queue.get(timeout=min(wait, 0.0005))
                except queue.Empty:
                    continue
            if more is None:
                self._queue.put(None)
                break
            jobs.append(more)
            size, pixels = size + more.n, pixels + sum(more.pixels)
        return jobs

    def _run_group(self, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            job = jobs[0]
            try:
                _resolve(job, self._call(job.signature, job.inputs, job.n, True, job.pixels))
            except Exception as err:  # noqa: BLE001 -- handed to the request, which answers 4xx/5xx
                _resolve(job, error=err)
            return
        merged = {
            k: (
                sum((j.inputs[k] for j in jobs), [])
                if isinstance(jobs[0].inputs[k], list)
                else jobs[0].inputs[k]
            )
            for k in jobs[0].inputs
        }
        pixels = [p for j in jobs for p in (j.pixels or [0] * j.n)]
        try:
            outputs = self._call(jobs[0].signature, merged, sum(j.n for j in jobs), False, pixels)
        except Exception:  # one bad request must not fail the others: run each alone
            for j in jobs:
                self._run_group([j])
            return
        offset = 0
        for j in jobs:
            _resolve(j, {k: _rows(v, offset, j.n) for k, v in outputs.items()})
            offset += j.n

    def _call(self, signature, inputs, n, locate_errors=True, pixels: Sequence[int] = ()):
        """One model call, or consecutive slices of at most ``max_batch_pixels`` pixels, each
        holding the pixel budget while it runs."""
        outputs = []
        for start, stop in pixel_slices(pixels or [0] * n, self.max_batch_pixels):
            part = {k: v[start:stop] if isinstance(v, list) else v for k, v in inputs.items()}
            held = sum(pixels[start:stop]) if pixels else 0
            if self.budget is not None:
                with self.budget.hold(held):
                    outputs.append(self.model.run(signature, part, locate_errors))
            else:
                outputs.append(self.model.run(signature, part, locate_errors))
        self.calls += len(outputs)
        self.instances += n
        return outputs[0] if len(outputs) == 1 else _concat(outputs)


def pixel_slices(pixels: Sequence[int], cap: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` consecutive slices of at most ``cap`` pixels (one image at
    least per slice: an image over the cap runs alone)."""
    if cap is None:
        return [(0, len(pixels))]
    slices, start, total = [], 0, 0
    for i, p in enumerate(pixels):
        if i > start and total + p > cap:
            slices.append((start, i))
            start, total = i, 0
        total += p
    slices.append((start, len(pixels)))
    return slices


def _concat(outputs: list[dict]) -> dict:
    """The outputs of consecutive slices as one batch (a scalar output is shared)."""
    first = outputs[0]
    return {
        k: (np.concatenate([o[k] for o in outputs]) if getattr(first[k], "ndim", 0) else first[k])
        for k in first
    }


def _rows(value, offset: int, n: int):
    """A job's slice of a batched output (a scalar output is shared)."""
    return value[offset : offset + n] if getattr(value, "ndim", 0) else value


def _resolve(job: _Job, result=None, error: Exception | None = None) -> None:
    def settle():
        if job.future.done():  # the client went away
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    job.loop.call_soon_threadsafe(settle)
