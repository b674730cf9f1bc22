"""A metadata store with every call bounded in time and connection failures made explicit.

Wraps any ``MetadataStore``: each coroutine method runs under ``asyncio.timeout(timeout_s)``, and
a timeout, a refused or dropped connection or a driver connection error becomes
``StoreUnavailable``; constraint errors and ``KeyError``/``ValueError`` pass through as they
are. So a blackholed database costs a caller at most ``timeout_s`` (never a 60 s hang), and
the next call after the database is back simply works (the driver's pool replaces dead
connections).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from feature_service.adapters.metadata.base import (
    MetadataStore,
    StoreNotConnected,
    StoreUnavailable,
)
from feature_service.logging import get_logger

log = get_logger(__name__)

_UNAVAILABLE = (
    TimeoutError,
    OSError,
    StoreNotConnected,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    sqlite3.OperationalError,
)
# Lifecycle calls keep their own bounds (migrations may take long; close must not raise).
_UNBOUNDED = frozenset({"connect", "close", "upgrade", "downgrade", "migration_status"})


class GuardedStore:
    def __init__(self, inner: MetadataStore, timeout_s: float = 5.0) -> None:
        self.inner = inner
        self.timeout_s = timeout_s

    @property
    def kind(self) -> Any:
        return self.inner.kind

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in _UNBOUNDED or not asyncio.iscoroutinefunction(attr):
            return attr
        return self._bounded(name, attr)

    def _bounded(
        self, name: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        timeout_s = self.timeout_s

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                async with asyncio.timeout(timeout_s):
                    return await method(*args, **kwargs)
            except _UNAVAILABLE as exc:
                detail = (
                    f"no answer within {timeout_s:g} s"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.warning("metadata_store_unavailable", call=name, error=detail)
                raise StoreUnavailable(f"metadata store unavailable ({detail})") from exc

        return call
