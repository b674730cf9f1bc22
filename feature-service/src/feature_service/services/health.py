"""Readiness checks behind GET /health: each says ``ok`` and, when not, why.

Truthful by construction: every check looks at the thing itself, with a short bound on any
wait, so /health never hangs on a blackholed dependency and never reports a part healthy that
is not (issue 9):

- ``bus``: connected, and (RabbitMQ) no heartbeat loss and no publish confirm stuck past the
  publish timeout: a blackholed broker keeps its socket open but answers nothing;
- ``raw_storage``: no batch waiting for a write retry (consumption is paused meanwhile);
- ``market_data``: every subscribed symbol had an event within ``market_data_stale_after_s``
  (counted from the start for a symbol never seen);
- ``metadata_store``: answers ``SELECT 1`` within ``health_timeout_s``;
- ``registry``, ``computation`` (vectors keep coming) and, with ws-gateway, ``subscriptions``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from feature_service.adapters.metadata.base import MetadataStoreError

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime


async def health_checks(runtime: Runtime) -> dict[str, dict[str, Any]]:
    settings = runtime.settings
    live = runtime.live
    now_us = live.clock.now_us()
    bus_health = dict(runtime.bus.health())
    checks: dict[str, dict[str, Any]] = {
        "bus": {"ok": bool(bus_health.get("connected")), **bus_health},
        "metadata_store": await metadata_check(runtime, settings.health_timeout_s),
        "registry": {
            "ok": runtime.registry.is_valid,
            "version": runtime.registry.version,
            "features": len(runtime.registry.features),
        },
        "raw_storage": raw_storage_check(runtime),
        "market_data": market_data_check(runtime, now_us),
    }
    last_vector = live.stats.last_vector_us
    age_s = None if last_vector is None else max(0.0, (now_us - last_vector) / 1e6)
    max_interval = max(settings.intervals)
    stale = sorted(
        symbol
        for symbol, by_interval in live.latest.items()
        if any(v.stale for v in by_interval.values())
    )
    last_event = live.stats.last_event_receive_us
    checks["computation"] = {
        # Before the first vector the service is starting, not broken.
        "ok": age_s is None or age_s <= 2 * max_interval + 5,
        "last_computation_age_s": age_s,
        "last_computation_ms": round(runtime.engine.last_computation_us / 1000.0, 4),
        "stale_symbols": stale,
        "data_age_s": None if last_event is None else max(0.0, (now_us - last_event) / 1e6),
    }
    if runtime.subscriptions is not None:
        checks["subscriptions"] = {"ok": True, **runtime.subscriptions.summary()}
    resyncer = getattr(runtime, "resyncer", None)
    if resyncer is not None:
        checks["book_resync"] = {"ok": True, **resyncer.summary()}
    checks["book_depth"] = runtime.depth_status()
    return checks


async def metadata_check(runtime: Runtime, timeout_s: float) -> dict[str, Any]:
    store = runtime.store
    try:
        async with asyncio.timeout(timeout_s):
            ok = await store.ping()
        reason = None if ok else "ping failed"
    except TimeoutError:
        ok, reason = False, f"no answer within {timeout_s:g} s"
    except MetadataStoreError as exc:
        ok, reason = False, str(exc)
    out: dict[str, Any] = {"ok": ok, "kind": store.kind}
    if reason is not None:
        out["reason"] = reason
    return out


def raw_storage_check(runtime: Runtime) -> dict[str, Any]:
    if not runtime.settings.raw_store_enabled:
        return {"ok": True, "enabled": False}
    writer = runtime.raw_writer
    paused_since = runtime.live.stats.storage_paused_since_us
    out: dict[str, Any] = {
        "ok": writer.healthy,
        "enabled": True,
        "pending_rows": writer.stats.pending_rows,
        "batches_failed": writer.stats.batches_failed,
        "batches_retried": writer.stats.batches_retried,
        # Paused either way while writes fail: a new delivery waits in the handler, or (with
        # every prefetch slot held by a message waiting for its write) none is delivered at all.
        "consumption_paused": paused_since is not None or not writer.healthy,
    }
    if not writer.healthy:
        out["reason"] = f"raw writes failing, retried with backoff: {writer.failure}"
    return out


def market_data_check(runtime: Runtime, now_us: int) -> dict[str, Any]:
    limit_s = runtime.settings.market_data_stale_after_s
    seen = runtime.live.stats.last_receive_by_symbol
    ages: dict[str, float] = {}
    for symbol in runtime.settings.symbols:
        last = seen.get(symbol, runtime.started_us)
        if last is not None:
            ages[symbol] = round(max(0.0, (now_us - last) / 1e6), 3)
    stopped = sorted(symbol for symbol, age in ages.items() if age > limit_s)
    out: dict[str, Any] = {
        "ok": not stopped,
        "stale_after_s": limit_s,
        "age_s": ages,
        "stopped": stopped,
    }
    if stopped:
        out["reason"] = f"no market data for {', '.join(stopped)} in over {limit_s:g} s"
    return out
