"""What every request passes before the routes: the Host allowlist and the concurrency limit.

- :class:`HostGuard` (ASGI middleware): the ``Host`` header must name an allowed host
  (loopback names by default, any port), else 421. A web page that rebinds its own DNS name to
  127.0.0.1 reaches the server with ``Host: evil.example``, and is refused (DNS rebinding).
- :class:`Admission`: at most ``max_concurrent`` requests being read, parsed or run; one more
  is answered 429 with ``Retry-After`` at once, before its body is read.
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterable

from .requests import RequestError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ANY_HOST = "*"
DEFAULT_MAX_CONCURRENT = 32


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port, lower case (``[::1]`` keeps brackets)."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    """ASGI middleware: 421 unless the request's Host is allowed (``"*"`` allows any)."""

    def __init__(self, app, allowed_hosts: Iterable[str] = LOOPBACK_HOSTS):
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}
        self.any = ANY_HOST in self.allowed

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        return header is not None and host_name(header) in self.allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.any:
            return await self.app(scope, receive, send)
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]
        if len(hosts) == 1 and self.allows(hosts[0]):
            return await self.app(scope, receive, send)
        shown = hosts[0][:80] if hosts else None
        message = (
            f"Host {shown!r} is not served here; allowed: {sorted(self.allowed)} "
            "(start the server with --allowed_host NAME)"
            if hosts
            else "a request needs one Host header"
        )
        await _send_json(send, 421 if hosts else 400, {"error": message})


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class Admission:
    """At most ``max_concurrent`` requests in progress (event-loop only, so no lock)."""

    def __init__(self, max_concurrent: int = DEFAULT_MAX_CONCURRENT):
        self.max_concurrent = max(1, int(max_concurrent))
        self.active = 0
        self.refused = 0

    @contextlib.contextmanager
    def admit(self):
        if self.active >= self.max_concurrent:
            self.refused += 1
            raise RequestError(
                429,
                f"the server is busy ({self.active} requests in progress); retry later",
                {"Retry-After": "1"},
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
