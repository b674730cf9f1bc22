"""Shared route dependencies: the runtime and API-key authentication."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, APIKeyQuery

from feature_service.api.errors import ApiError

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_query = APIKeyQuery(name="api_key", auto_error=False, description="API key (query form)")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Depends(_header)],
    query_key: Annotated[str | None, Depends(_query)],
) -> None:
    key = header_key or query_key
    if not key:
        raise ApiError(401, "missing API key: send it in the X-API-Key header")
    allowed: list[str] = request.app.state.settings.api_keys
    # Constant-time comparison against every configured key.
    if not any(secrets.compare_digest(key.encode(), k.encode()) for k in allowed):
        raise ApiError(401, "invalid API key")


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
