"""HTTP observability: the request's trace id, its latency histogram and its metrics-table row.

Pure ASGI (no ``BaseHTTPMiddleware``: that one runs the endpoint in another task and would lose
the trace context). An incoming ``X-Trace-Id`` is honoured when it looks like an id; otherwise a
new one is made. It is bound to every log line of the request, returned as ``X-Trace-Id`` and in
error bodies, and kept on the request's ``state`` for routes that hand it on (dataset builds).
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feature_service.logging import TRACE_ID, new_trace_id

_TRACE_RE = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
UNMATCHED = "unmatched"


def accept_trace_id(value: str | None) -> str:
    """The caller's id when it is a plausible one (bounded, no spaces or control bytes)."""
    if value and _TRACE_RE.match(value):
        return value
    return new_trace_id()


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-trace-id":
                incoming = value.decode("latin-1")
                break
        trace = accept_trace_id(incoming)
        scope.setdefault("state", {})["trace_id"] = trace
        token = TRACE_ID.set(trace)
        status = [500]
        header = (b"x-trace-id", trace.encode("latin-1"))

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-trace-id"]
                headers.append(header)
                message["headers"] = headers
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            elapsed = time.perf_counter() - started
            _record(scope, status[0], elapsed, trace)
            TRACE_ID.reset(token)


def _record(scope: Scope, status: int, elapsed_s: float, trace: str) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None) or UNMATCHED
    method = scope.get("method", "GET")
    runtime = _runtime_of(scope)
    if runtime is None:
        return
    runtime.telemetry.http.observe((method, template, str(status)), elapsed_s)
    writer = getattr(runtime, "metrics_writer", None)
    if writer is not None:
        symbol = None
        for key, value in _query_pairs(scope):
            if key == "symbol":
                symbol = value[:20]
                break
        writer.api_request(template, method, elapsed_s * 1000.0, status, symbol, trace)


def _runtime_of(scope: Scope) -> Any:
    app = scope.get("app")
    state = getattr(app, "state", None)
    return getattr(state, "runtime", None)


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"")
    return parse_qsl(raw.decode("latin-1")) if raw else []
