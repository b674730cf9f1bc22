"""Book recovery: when a symbol's book goes out of sync, ask ws-gateway for a fresh snapshot.

Bybit sends an order book snapshot only when the topic is (re)subscribed, and ws-gateway
subscribes only when a subscription row is created, so the request is: cancel this service's
order book subscription of the symbol and create it again (``WsGatewayClient.resubscribe``).
The book applies the snapshot as soon as it arrives and is usable from then on.

Throttling, so a flapping stream does not hammer the gateway: requests for a symbol while one
is scheduled or running are merged into it; a desync within ``flap_window_s`` of the last
resync doubles that symbol's minimum spacing (up to ``max_interval_s``), a quiet spell resets
it. The first desync of a quiet symbol is sent at once. A failed request (gateway down) is
retried with the same spacing for as long as the book stays out of sync.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from feature_service.adapters.clients.ws_gateway import Subscription
from feature_service.logging import get_logger

log = get_logger(__name__)


class ResubscribeClient(Protocol):
    async def resubscribe(
        self, channel_type: str, symbol: str, requesting_service: str
    ) -> Subscription: ...


@dataclass(slots=True)
class _SymbolResync:
    interval_s: float
    last_sent: float | None = None
    task: asyncio.Task[None] | None = None
    # A desync reported while a request is on the wire may come after that request's snapshot
    # was applied (the gateway publishes it before its REST answer returns): it needs a request
    # of its own, not to be merged into one already answered.
    in_flight: bool = False
    again: bool = False


@dataclass(slots=True)
class ResyncStats:
    requested: int = 0
    sent: int = 0
    merged: int = 0  # requests folded into one already scheduled or running
    delayed: int = 0  # sent later than asked because of the spacing
    failed: int = 0
    skipped_synced: int = 0  # the book recovered on its own before the request went out


class BookResyncer:
    def __init__(
        self,
        client: ResubscribeClient,
        requesting_service: str,
        *,
        is_synced: Callable[[str], bool] = lambda symbol: False,
        min_interval_s: float = 2.0,
        max_interval_s: float = 60.0,
        flap_window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_sent: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.requesting_service = requesting_service
        self.is_synced = is_synced
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.flap_window_s = flap_window_s
        self._clock = clock
        self._sleep = sleep
        self._on_sent = on_sent
        self._symbols: dict[str, _SymbolResync] = {}
        self.stats = ResyncStats()
        self.requested_at: dict[str, float] = {}  # last request time per symbol (monotonic)

    def request(self, symbol: str) -> None:
        """The book of ``symbol`` is out of sync (called synchronously by the engine)."""
        self.stats.requested += 1
        now = self._clock()
        self.requested_at[symbol] = now
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = _SymbolResync(self.min_interval_s)
        if st.task is not None and not st.task.done():
            if st.in_flight:
                st.again = True
            else:
                self.stats.merged += 1
            return
        self._space(st, now)
        st.task = asyncio.get_running_loop().create_task(
            self._run(symbol, st), name=f"book-resync-{symbol}"
        )

    def _space(self, st: _SymbolResync, now: float) -> None:
        if st.last_sent is not None:
            if now - st.last_sent < self.flap_window_s:
                st.interval_s = min(self.max_interval_s, st.interval_s * 2)
            else:
                st.interval_s = self.min_interval_s

    async def _run(self, symbol: str, st: _SymbolResync) -> None:
        while True:
            if st.last_sent is not None:
                wait = st.last_sent + st.interval_s - self._clock()
                if wait > 0:
                    self.stats.delayed += 1
                    await self._sleep(wait)
            if self.is_synced(symbol):
                self.stats.skipped_synced += 1
                return
            st.last_sent = self._clock()
            st.in_flight = True
            try:
                sub = await self.client.resubscribe("orderbook", symbol, self.requesting_service)
            except Exception as exc:  # gateway down or refusing: retry while still out of sync
                self.stats.failed += 1
                st.again = False  # the retry below is that request
                log.warning("book_resync_failed", symbol=symbol, error=repr(exc))
                continue
            finally:
                st.in_flight = False
            self.stats.sent += 1
            if self._on_sent is not None:
                self._on_sent(symbol)
            log.info(
                "book_resync_requested",
                symbol=symbol,
                topic=sub.topic,
                subscription_id=sub.id,
                spacing_s=st.interval_s,
            )
            if not st.again:
                return
            st.again = False
            self._space(st, self._clock())

    async def stop(self) -> None:
        tasks = [st.task for st in self._symbols.values() if st.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        return {
            "requested": self.stats.requested,
            "sent": self.stats.sent,
            "merged": self.stats.merged,
            "delayed": self.stats.delayed,
            "failed": self.stats.failed,
            "skipped_synced": self.stats.skipped_synced,
        }
