"""Every error body is the contract's ``{error, message, trace_id}``."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from feature_service.adapters.metadata.base import StoreUnavailable
from feature_service.logging import get_logger

log = get_logger(__name__)

_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


RETRY_AFTER_S = 5  # seconds a client should wait after a 503 (about one database timeout)


class ApiError(Exception):
    """Raised by routes for an expected failure with a message meant for the caller."""

    def __init__(self, status_code: int, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error = error or _ERROR_NAMES.get(status_code, "error")


def trace_id_of(request: Request) -> str:
    """The id the observability middleware gave the request (the caller's X-Trace-Id or new)."""
    state = request.scope.get("state") or {}
    return state.get("trace_id") or request.headers.get("x-trace-id") or str(uuid.uuid4())


def error_response(request: Request, status: int, error: str, message: str) -> JSONResponse:
    trace_id = trace_id_of(request)
    headers = {"X-Trace-Id": trace_id}
    if status == 401:
        headers["WWW-Authenticate"] = "ApiKey"
    return JSONResponse(
        status_code=status,
        content={"error": error, "message": message, "trace_id": trace_id},
        headers=headers,
    )


def allowed_methods(request: Request) -> str:
    """The methods the routes matching this path accept."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE or getattr(route, "path", None) == request.url.path:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status_code, exc.error, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = _ERROR_NAMES.get(exc.status_code, "error")
        response = error_response(request, exc.status_code, error, str(exc.detail))
        if exc.headers:  # e.g. Allow on a 405 (RFC 9110 requires it)
            response.headers.update(exc.headers)
        if exc.status_code == 405 and "allow" not in response.headers:
            response.headers["Allow"] = allowed_methods(request)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return error_response(request, 422, "validation_error", "; ".join(parts))

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        response = error_response(
            request, 503, "unavailable", f"{exc}; the service retries by itself, try again"
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return error_response(request, 500, "internal_error", "internal error; see the service log")
