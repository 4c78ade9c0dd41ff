"""Batching concurrent requests: :class:`MicroBatcher` runs the model on one thread.

While the model runs one batch, new requests queue up; they are then run together as the next
batch (merged per signature and scalar inputs), and each request gets its own slice back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from .service import PredictionService

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_BATCH_WAIT_MS = 5.0


@dataclass
class _Job:
    signature: str
    inputs: dict[str, Any]
    n: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future

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
    ):
        self.model, self.max_batch_size = model, int(max_batch_size)
        self.max_wait_s = max(0.0, float(max_wait_ms)) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self.calls = 0  # model calls, and instances they ran: instances / calls = mean batch size
        self.instances = 0
        self.arriving = 0  # predict requests received and not yet queued
        self._thread = threading.Thread(target=self._loop, name="model-batcher", daemon=True)
        self._thread.start()

    async def submit(self, signature: str, inputs: dict[str, Any], n: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(signature, inputs, n, loop, future))
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
        jobs, size = [job], job.n
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
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
            size += more.n
        return jobs

    def _run_group(self, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            job = jobs[0]
            try:
                _resolve(job, self._call(job.signature, job.inputs, job.n))
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
        try:
            outputs = self._call(
                jobs[0].signature, merged, sum(j.n for j in jobs), locate_errors=False
            )
        except Exception:  # one bad request must not fail the others: run each alone
            for j in jobs:
                self._run_group([j])
            return
        offset = 0
        for j in jobs:
            _resolve(j, {k: _rows(v, offset, j.n) for k, v in outputs.items()})
            offset += j.n

    def _call(self, signature, inputs, n, locate_errors=True):
        outputs = self.model.run(signature, inputs, locate_errors)
        self.calls += 1
        self.instances += n
        return outputs


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
