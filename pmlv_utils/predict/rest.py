"""Batch prediction against a model server: bounded retries, then a dead letter; never a crash.

    policy = RetryPolicy(attempts=3, backoff_s=0.5, timeout_s=60)
    answers = predict_instances(session, url, instances, policy)
    # [{"prediction": {...}} or {"error": "HTTP 400: ..."}, ...] one per instance, in order

What happens to a request:

- 200 with one prediction per instance: done.
- 429, 502, 503, 504, a timeout or a refused connection: retried up to ``attempts`` times in all,
  waiting ``backoff_s``, then twice that, ... (at most ``max_backoff_s``; a ``Retry-After``
  header is honoured within that cap). Still failing: every instance of the request gets the
  error (the server is down or overloaded; asking again file by file would only multiply the
  wait).
- 500 (after the same retries) or another 4xx, for several instances: asked again one
  instance at a time, so only the instances the server cannot take get an error.
- after ``open_after`` requests in a row failed that way (down, silent, overloaded), the
  :class:`Breaker` opens: later requests are not sent (their instances get the error at once)
  except one probe every ``probe_after_s`` seconds; an answer closes it again. A job against a
  dead server therefore ends in minutes, not in ``attempts * timeout_s`` per batch.

The longest a request can take is about ``attempts * timeout_s`` plus the waits. The Beam
DoFn (:class:`pmlv_utils.predict.beam.RestPredictDoFn`) and :func:`predict_jsonl` (Vertex's
JSON-lines batch format; the output is written to a temporary file, then renamed) use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

from .. import safe_io

RETRY_STATUS = frozenset({429, 502, 503, 504})  # the server says "later"
SPLIT_STATUS = frozenset({500})  # plus every other 4xx: one instance may be the cause


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard a batch job tries one request before it dead-letters its instances."""

    attempts: int = 3  # tries of one request, the first included
    backoff_s: float = 0.5  # wait before the second try; doubled for each later one
    max_backoff_s: float = 8.0  # cap of a wait (a server's Retry-After included)
    timeout_s: float = 60.0  # per try: connecting and reading the answer
    open_after: int = 5  # failed requests in a row before the Breaker stops sending
    probe_after_s: float = 30.0  # while open, one request is let through this often

    def __post_init__(self):
        if self.attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError(f"RetryPolicy needs attempts >= 1, timeout_s > 0: {self}")

    def wait(self, attempt: int, response=None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        wait = self.backoff_s * 2 ** (attempt - 1)
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.strip().isdigit():
            wait = max(wait, float(retry_after))
        return min(wait, self.max_backoff_s)


class Breaker:
    """Stops sending to a server that failed ``policy.open_after`` requests in a row (a circuit
    breaker); lets one probe through every ``policy.probe_after_s`` seconds while open."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy, self.clock = policy, clock
        self.failures, self.last_try = 0, 0.0

    @property
    def open(self) -> bool:
        return self.failures >= self.policy.open_after

    def allow(self) -> bool:
        """True when a request may be sent now."""
        if not self.open or self.clock() - self.last_try >= self.policy.probe_after_s:
            self.last_try = self.clock()
            return True
        return False

    def record(self, answered: bool) -> None:
        self.failures = 0 if answered else self.failures + 1


def post_json(
    session: requests.Session,
    url: str,
    body: dict,
    policy: RetryPolicy = RetryPolicy(),
    headers: dict | None = None,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[requests.Response | None, str]:
    """POST ``body`` with bounded retries; ``(last response or None, error text)``.

    The error text is "" for a 2xx answer. ``on_retry(why)`` is called before each retry."""
    response, error = None, ""
    for attempt in range(1, policy.attempts + 1):
        try:
            response = session.post(url, json=body, headers=headers, timeout=policy.timeout_s)
            error = "" if response.ok else f"HTTP {response.status_code}: "
            error += "" if response.ok else safe_io.http_error_text(response)
            if response.ok or response.status_code not in RETRY_STATUS | SPLIT_STATUS:
                return response, error
        except requests.RequestException as err:  # timeout, refused, reset, bad answer
            response, error = None, f"{type(err).__name__}: {safe_io.short_error(err)}"
        if attempt < policy.attempts:
            if on_retry is not None:
                on_retry(error)
            sleep(policy.wait(attempt, response))
    return response, f"{error} (after {policy.attempts} tries)"


def _predictions(response: requests.Response, n: int) -> list | None:
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        return None
    return predictions if isinstance(predictions, list) and len(predictions) == n else None


def predict_instances(
    session: requests.Session,
    url: str,
    instances: Sequence[Any],
    policy: RetryPolicy = RetryPolicy(),
    extra: dict | None = None,
    headers: dict | None = None,
    on_request: Callable[[], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
    breaker: Breaker | None = None,
) -> list[dict]:
    """One ``{"prediction": p}`` or ``{"error": text}`` per instance, in order (see above).

    ``extra``: more fields of the request body (e.g. ``signature_name``); ``breaker``: shared
    by the calls of one job (none: every request is tried)."""
    instances = list(instances)
    if not instances:
        return []
    if breaker is not None and not breaker.allow():
        error = f"not sent: the server failed {breaker.failures} requests in a row"
        return [{"error": error} for _ in instances]
    if on_request is not None:
        on_request()
    body = {**(extra or {}), "instances": instances}
    response, error = post_json(session, url, body, policy, headers, on_retry)
    if breaker is not None:  # an answer that is not "later" / 5xx shows the server is there
        down = response is None or response.status_code in RETRY_STATUS | SPLIT_STATUS
        breaker.record(not down)
    if response is not None and response.ok:
        predictions = _predictions(response, len(instances))
        if predictions is not None:
            return [{"prediction": p} for p in predictions]
        error = (
            f"HTTP {response.status_code}: the answer has no list of {len(instances)} predictions"
        )
    code = response.status_code if response is not None else None
    splittable = code in SPLIT_STATUS or (
        code is not None and 400 <= code < 500 and code not in RETRY_STATUS | {408}
    )
    if len(instances) > 1 and splittable:
        return [
            answer
            for one in instances
            for answer in predict_instances(
                session, url, [one], policy, extra, headers, on_request, on_retry, breaker
            )
        ]
    return [{"error": error} for _ in instances]


def _read_instances(path: Path) -> list[tuple[int, Any, str]]:
    """``(line, instance, error)`` per non-blank line: a line that is not UTF-8 or not JSON
    keeps its error (its instance is None)."""
    rows = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
            if not raw.strip():
                continue
            try:
                rows.append((number, json.loads(raw.decode("utf-8")), ""))
            except UnicodeDecodeError:
                rows.append((number, None, f"line {number} is not UTF-8"))
            except ValueError as err:
                rows.append((number, None, f"line {number} is not JSON: {err}"[:200]))
    return rows


def predict_jsonl(
    predict_url: str,
    input_jsonl: str | os.PathLike,
    output_jsonl: str | os.PathLike,
    batch_size: int = 32,
    signature_name: str | None = None,
    timeout: float = 120.0,
    policy: RetryPolicy | None = None,
) -> dict:
    """Batch prediction from a JSON-lines file of instances (Vertex batch prediction's format).

    One output line per input line: ``{"instance", "prediction"}``, or ``{"instance",
    "error"}`` for an instance the server refused, a line that is not JSON or not UTF-8, or a
    request that still failed after the retries of ``policy`` (default: 3 tries of
    ``timeout`` s). The job always finishes; the output is written to a temporary file beside
    ``output_jsonl`` and renamed over it at the end, so it is never half written. Returns
    ``{"instances", "predictions", "errors", "requests", "retries", "seconds"}``.
    """
    policy = policy or RetryPolicy(timeout_s=timeout)
    rows = _read_instances(Path(input_jsonl))
    counts = {"instances": len(rows), "predictions": 0, "errors": 0, "requests": 0, "retries": 0}
    extra = {"signature_name": signature_name} if signature_name else {}
    breaker = Breaker(policy)
    start = time.perf_counter()

    def count(key):
        return lambda *_: counts.__setitem__(key, counts[key] + 1)

    target = Path(output_jsonl)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with requests.Session() as session, os.fdopen(fd, "w", encoding="utf-8") as out:
            for i in range(0, len(rows), batch_size):
                chunk = rows[i : i + batch_size]
                good = [instance for _, instance, error in chunk if not error]
                answers = iter(
                    predict_instances(
                        session,
                        predict_url,
                        good,
                        policy,
                        extra,
                        None,
                        count("requests"),
                        count("retries"),
                        breaker,
                    )
                )
                for _, instance, error in chunk:
                    answer = {"error": error} if error else next(answers)
                    counts["predictions" if "prediction" in answer else "errors"] += 1
                    out.write(json.dumps({"instance": instance, **answer}) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    counts["seconds"] = round(time.perf_counter() - start, 3)
    return counts
