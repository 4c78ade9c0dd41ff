"""Threads the server can abandon, and a budget of pixels being decoded at once.

:class:`DaemonExecutor` runs blocking work (parsing a body, reading files, an explanation) on
daemon threads: unlike the event loop's thread pool, they never keep the process alive after
SIGTERM. :class:`PixelBudget` is a semaphore counted in pixels: whoever decodes images
acquires their pixel count first, so the images decoded at the same time fit in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from typing import Any, Callable


class DaemonExecutor:
    """A fixed pool of daemon threads: ``submit(fn, *args)`` -> ``concurrent.futures.Future``."""

    def __init__(self, workers: int, name: str):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, int(workers)))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        return future

    async def run(self, fn: Callable, *args: Any) -> Any:
        """``await`` ``fn(*args)`` run on a pool thread (the event loop stays free)."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # noqa: BLE001 -- handed to whoever awaits the future
                future.set_exception(err)


def call_with_timeout(pool: DaemonExecutor, timeout_s: float, fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` on ``pool``, or TimeoutError after ``timeout_s`` (the call is abandoned
    on its daemon thread: for I/O that has no timeout of its own, such as gs:// reads)."""
    future = pool.submit(fn, *args)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"no answer within {timeout_s:g} s") from None


class PixelBudget:
    """A semaphore counted in pixels: at most ``capacity`` pixels being decoded at once.

    ``with budget.hold(n):`` waits until ``n`` pixels fit (a request larger than the whole
    capacity waits for all of it), so the largest allowed request still runs, alone.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, pixels: int) -> int:
        n = min(max(0, int(pixels)), self.capacity)
        with self._cond:
            while self.in_use + n > self.capacity:
                self._cond.wait()
            self.in_use += n
            self.peak = max(self.peak, self.in_use)
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self.in_use -= n
            self._cond.notify_all()

    def hold(self, pixels: int):
        return _Held(self, pixels)


class _Held:
    def __init__(self, budget: PixelBudget, pixels: int):
        self.budget, self.pixels, self.n = budget, pixels, 0

    def __enter__(self):
        self.n = self.budget.acquire(self.pixels)
        return self

    def __exit__(self, *exc):
        self.budget.release(self.n)
