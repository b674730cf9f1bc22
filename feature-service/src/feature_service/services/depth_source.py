"""REST depth source (FEATURE_SERVICE_DEPTH_SOURCE=rest): a depth book where the stream has none.

ws-gateway only ever subscribes ``orderbook.1``; this polls Bybit's ``/v5/market/orderbook``
(``limit`` levels a side) for every tracked symbol and hands each answer to the service as an
input message of its own, an envelope like ws-gateway's with ``"feed": "rest"``:

    {"event_id", "event_type": "orderbook", "topic": "orderbook.{limit}.{SYMBOL}",
     "timestamp": <Bybit ts>, "received_at": <our receive time>, "feed": "rest",
     "payload": {"s", "b", "a", "u", "seq", "type": "snapshot", "topic"}, "trace_id"}

``ingest`` (the runtime's) stamps, parses and applies it like a consumed message and writes it to
the raw store like any input, so an offline replay sees the same snapshots at the same receive
times and reproduces the live vectors exactly. ``features/depth.py`` routes ``feed == "rest"``
snapshots to the depth book (depth features only; mid, spread and churn stay on the stream).

Cadence and rate: symbols are polled in turn, one request every ``period / len(symbols)``, where
``period`` is ``interval_s`` stretched so the source never exceeds ``max_rps`` (its own budget
within Bybit's IP limit of 600 requests per 5 s; the client's token bucket enforces it too).
A failed poll is counted, logged and skipped (the next one comes soon anyway); a 403 is a ban
(or a geo block): polling pauses for ``ban_pause_s`` (Bybit says at least 10 minutes).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from feature_service.adapters.clients.bybit_rest import (
    BybitBannedError,
    BybitRestError,
    OrderbookSnapshot,
)
from feature_service.logging import get_logger
from feature_service.market.errors import MessageRejected

log = get_logger(__name__)

BAN_PAUSE_S = 600.0
SOURCE = "rest-depth"  # the consumed-counter key, next to the queue names


class OrderbookClient(Protocol):
    async def get_orderbook(
        self, symbol: str, *, limit: int = 50, category: str | None = None
    ) -> OrderbookSnapshot: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class SymbolPolls:
    requests: int = 0
    failures: int = 0
    rejected: int = 0
    last_ok_at: float | None = None  # wall-clock epoch seconds
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "rejected": self.rejected,
            "last_ok_at": _iso_s(self.last_ok_at),
            "last_error": self.last_error,
        }


def _iso_s(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat()


def _naive_iso(epoch_ms: float) -> str:
    # ws-gateway's envelope form: ISO-8601 naive UTC.
    return datetime.fromtimestamp(epoch_ms / 1000.0, UTC).replace(tzinfo=None).isoformat()


def snapshot_envelope(snapshot: OrderbookSnapshot, limit: int, received_ms: float) -> bytes:
    """The input message for one REST answer (module doc)."""
    topic = f"orderbook.{limit}.{snapshot.symbol}"
    payload: dict[str, Any] = {
        "s": snapshot.symbol,
        "b": snapshot.bids,
        "a": snapshot.asks,
        "u": snapshot.u,
        "type": "snapshot",
        "topic": topic,
    }
    if snapshot.seq is not None:
        payload["seq"] = snapshot.seq
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "orderbook",
            "topic": topic,
            "timestamp": _naive_iso(snapshot.ts_ms),
            "received_at": _naive_iso(received_ms),
            "feed": "rest",
            "payload": payload,
            "trace_id": str(uuid.uuid4()),
        }
    )


class RestDepthSource:
    def __init__(
        self,
        client: OrderbookClient,
        symbols: list[str],
        ingest: Callable[[bytes], Any],
        *,
        limit: int = 50,
        interval_s: float = 1.0,
        max_rps: float = 10.0,
        ban_pause_s: float = BAN_PAUSE_S,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``ingest(body)``: apply and store one input message (raises MessageRejected)."""
        if not symbols:
            raise ValueError("the depth source needs at least one symbol")
        if interval_s <= 0 or max_rps <= 0:
            raise ValueError("interval_s and max_rps must be > 0")
        self.client = client
        self.symbols = list(dict.fromkeys(symbols))
        self.limit = limit
        # Never more than max_rps requests per second over all symbols.
        self.period_s = max(interval_s, len(self.symbols) / max_rps)
        self.ban_pause_s = ban_pause_s
        self.polls = {s: SymbolPolls() for s in self.symbols}
        self.banned_until: float | None = None
        self._ingest = ingest
        self._sleep = sleep
        self._wall = wall_clock

    def status(self) -> dict[str, Any]:
        return {
            "source": "bybit_rest",
            "levels": self.limit,
            "period_s": self.period_s,
            "banned_until": _iso_s(self.banned_until),
            "symbols": {s: p.as_dict() for s, p in self.polls.items()},
        }

    async def run(self) -> None:
        """Poll until cancelled."""
        gap = self.period_s / len(self.symbols)
        while True:
            for symbol in self.symbols:
                started = time.monotonic()
                await self.poll(symbol)
                await self._sleep(max(0.0, gap - (time.monotonic() - started)))

    async def poll(self, symbol: str) -> bool:
        """One request for ``symbol``; True when its snapshot was applied."""
        polls = self.polls[symbol]
        polls.requests += 1
        try:
            snapshot = await self.client.get_orderbook(symbol, limit=self.limit)
        except BybitBannedError as exc:
            polls.failures += 1
            polls.last_error = str(exc)
            await self._pause_for_ban(exc)
            return False
        except BybitRestError as exc:
            polls.failures += 1
            polls.last_error = str(exc)
            log.warning("depth_rest_failed", symbol=symbol, error=str(exc))
            return False
        body = snapshot_envelope(snapshot, self.limit, self._wall() * 1000.0)
        try:
            self._ingest(body)
        except MessageRejected as exc:
            polls.rejected += 1
            polls.last_error = f"rejected: {exc.reason.value}: {exc.detail}"
            log.warning("depth_rest_rejected", symbol=symbol, reason=exc.reason.value)
            return False
        polls.last_ok_at = self._wall()
        polls.last_error = None
        return True

    async def _pause_for_ban(self, exc: BybitBannedError) -> None:
        self.banned_until = self._wall() + self.ban_pause_s
        log.error(
            "depth_rest_banned",
            error=str(exc),
            pause_s=self.ban_pause_s,
            hint="HTTP 403: IP banned or geo-blocked; depth features fall back to null",
        )
        await self._sleep(self.ban_pause_s)
        # The client refuses every request once banned; after the pause it may try again.
        if hasattr(self.client, "banned"):
            self.client.banned = None
        self.banned_until = None

    async def aclose(self) -> None:
        await self.client.aclose()
