"""The idempotent sequencer: drops redelivered or duplicated messages and keeps receive stamps
monotonic, before anything reaches the feature engine.

Dedup is per stream (event type and symbol, the raw store's kind and symbol) by the raw store's
``message_key`` over a window of dedup time (``market.keys``): exactly what the raw reader
drops, so live state and an offline rebuild see the same events. Memory is bounded twice: by
the time window and by a per-stream key count.
"""

from __future__ import annotations

from feature_service.market.events import MarketEvent
from feature_service.market.keys import DEFAULT_DEDUP_WINDOW_US, RecentKeys

# A redelivered copy arrives within about one prefetch window of its original in consumption
# order, so far fewer keys than this suffice; the bound only caps memory on huge streams.
DEFAULT_MAX_KEYS_PER_STREAM = 500_000


class Sequencer:
    __slots__ = (
        "_last_stamp",
        "_max_keys",
        "_streams",
        "_window",
        "accepted",
        "duplicates",
        "restamped",
    )

    def __init__(
        self,
        *,
        window_us: int = DEFAULT_DEDUP_WINDOW_US,
        max_keys_per_stream: int = DEFAULT_MAX_KEYS_PER_STREAM,
    ) -> None:
        self._window = window_us
        self._max_keys = max_keys_per_stream
        self._streams: dict[type, dict[str, RecentKeys]] = {}  # event type -> symbol -> keys
        self._last_stamp = 0
        # Counters (plain attributes: the hot path increments them).
        self.accepted = 0
        self.duplicates = 0
        self.restamped = 0  # receive stamps raised to keep them monotonic

    def stamp(self, now_us: int) -> int:
        """A receive stamp never older than the previous one (the engine's ordering invariant
        even if the clock source steps back)."""
        if now_us < self._last_stamp:
            self.restamped += 1
            return self._last_stamp
        self._last_stamp = now_us
        return now_us

    def accept(self, event: MarketEvent, key: str) -> bool:
        """False for a message already seen in this event's stream (a duplicate)."""
        # Hot path (every consumed event): dedup_time and the stream lookup inlined.
        t = event.gateway_ts
        if t is None:
            t = event.exchange_ts if event.exchange_ts is not None else event.receive_ts
        by_symbol = self._streams.get(type(event))
        recent = None if by_symbol is None else by_symbol.get(event.symbol)
        if recent is None:
            recent = self._recent(type(event), event.symbol)
        if recent.seen(key, t):
            self.duplicates += 1
            return False
        self.accepted += 1
        return True

    def forget(self, event: MarketEvent, key: str) -> None:
        by_symbol = self._streams.get(type(event))
        recent = None if by_symbol is None else by_symbol.get(event.symbol)
        if recent is not None:
            recent.forget(key)

    def remember(self, event_type: type, symbol: str, key: str, t_dedup: int) -> None:
        """Prime the window with a message handled before (warm start: what the raw store holds
        from the last minutes, so a redelivery of it after a restart is recognised)."""
        self._recent(event_type, symbol).seen(key, t_dedup)

    def _recent(self, event_type: type, symbol: str) -> RecentKeys:
        by_symbol = self._streams.setdefault(event_type, {})
        recent = by_symbol.get(symbol)
        if recent is None:
            recent = by_symbol[symbol] = RecentKeys(self._window, self._max_keys)
        return recent

    def keys_held(self) -> int:
        return sum(len(r) for by_symbol in self._streams.values() for r in by_symbol.values())

    def heap_bytes(self) -> int:
        """Approximate heap held by the dedup windows (bounded by window and key count)."""
        return sum(r.heap_bytes() for by in self._streams.values() for r in by.values())
