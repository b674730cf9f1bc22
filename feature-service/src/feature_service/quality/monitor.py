"""QualityMonitor: every quality check over one event stream, pure (no I/O, no clock).

Feed it each event right after the symbol's book applied it: ``observe(event, book)``. The live
engine does so for every consumed event and the report's replay of stored raw data does the same
with its own ``OrderBook``, so both find the same incidents. Time only advances with the events
(receive time), which is what makes the two runs agree.

Output, taken with ``drain()``: finished per-minute summaries and incident records (an incident
that stays open, such as a desync, is recorded when it opens and again when it closes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from feature_service.book.orderbook import BookStatus, OrderBook
from feature_service.market.events import (
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Ticker,
    Trade,
    event_type_of,
)
from feature_service.quality.config import QualityConfig
from feature_service.quality.episodes import IncidentChecks
from feature_service.quality.incidents import Incident
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary
from feature_service.quality.tracking import (
    BOOK,
    KLINE,
    NEVER,
    OTHER,
    TRADE,
    StreamTrack,
    SymbolTrack,
)

REST_FEED = "rest"  # BookSnapshot.feed of the REST depth source (features/depth.py)
REST_STREAM = "orderbook_rest"
_STREAM_OF: dict[type, str] = {
    BookSnapshot: "orderbook",
    BookDelta: "orderbook",
    Trade: "trade",
    Kline: "kline",
    Ticker: "ticker",
    Funding: "funding",
}
STREAMS: tuple[str, ...] = ("orderbook", "trade", "kline", "ticker", "funding")
_KIND_OF = {"orderbook": BOOK, "trade": TRADE, "kline": KLINE}
SYNCED = BookStatus.SYNCED


@dataclass(slots=True)
class QualityMask:
    """Per vector: how fresh each input stream was and whether the book was in sync."""

    ok: bool
    reasons: tuple[str, ...]
    book_in_sync: bool
    age_ms: dict[str, float | None]

    def to_message(self) -> dict[str, object]:
        return {
            "reasons": list(self.reasons),
            "book_in_sync": self.book_in_sync,
            "age_ms": self.age_ms,
        }


class QualityMonitor(IncidentChecks):
    def __init__(
        self,
        config: QualityConfig | None = None,
        *,
        on_incident: Callable[[Incident], None] | None = None,
    ) -> None:
        super().__init__(config, on_incident=on_incident)
        cfg = self.config
        self._configured = {n: cfg.silence_us(n) for n in cfg.silence_s}
        self._skew_us = _skew_limit_us(cfg.skew_threshold_ms)
        self._below = 1.0 - cfg.trade_outside_tolerance  # a trade below best bid x this
        self._above = 1.0 + cfg.trade_outside_tolerance
        self._trade_memory = cfg.trade_id_memory

    # -- input ---------------------------------------------------------------------------------
    def observe(self, event: MarketEvent, book: OrderBook | None = None) -> None:
        """One event, after ``book`` (the symbol's book, if any) applied it.

        The engine calls this for every event, so the common case is a few attribute updates
        and compares inline here; whatever finds a problem, ends a minute or starts a second
        goes to a method of ``IncidentChecks``."""
        symbol = event.symbol
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = SymbolTrack(self.config)
        rx = event.receive_ts
        ex = event.exchange_ts
        cls = type(event)
        st = sym.by_type.get(cls)
        if st is None or (st.kind == BOOK and event.feed == REST_FEED):  # type: ignore[attr-defined]
            st = self._stream(sym, event)
        if not sym.minute_us <= rx < sym.window_end:
            self._boundary(sym, symbol, rx)
        d = rx - ex
        m = st.m_d
        if not m:
            st.m_first = rx
            sym.m_streams.append(st)
        m.append(d)
        st.m_last = rx
        # Timing: silence and cadence, time going backwards, clock skew.
        gap = rx - st.last_rx
        if 0 <= gap <= st.quick_limit_us:
            st.last_rx = rx
            if st.learned:
                g = st.gaps = st.gaps + 1
                # Smoothed gap (1/32 weight): a slow-moving cadence, robust to single bursts.
                st.mean_gap_us += (gap - st.mean_gap_us) / (g if g < 32 else 32)
        else:
            self._gap(st, symbol, rx, gap)
        if ex > st.last_ex:
            st.last_ex = ex
        elif ex < st.last_ex:
            self._ex_backwards(st, symbol, rx, ex)
        limit = self._skew_us
        if -limit < d < limit:
            if st.skew is not None:
                self._unskewed(st)
        else:
            self._skewed(st, symbol, rx, abs(d) / 1000.0)
        # Per kind.
        kind = st.kind
        if kind == BOOK:
            if cls is BookDelta:
                seq = event.seq  # type: ignore[attr-defined]
                if seq is not None:
                    if seq > sym.last_seq:
                        sym.last_seq = seq
                    elif seq < sym.last_seq:
                        self._seq_backwards(symbol, rx, seq, sym.last_seq)
                if sym.in_sequence:
                    u = event.update_id  # type: ignore[attr-defined]
                    last_u: int = sym.last_u  # type: ignore[assignment]
                    if u == last_u + 1:
                        sym.last_u = u
                    else:
                        self._out_of_sequence(sym, symbol, rx, u, last_u)
            else:
                self._snapshot(sym, event, rx)  # type: ignore[arg-type]
            if book is not None:
                status = book.status
                if status is not sym.book_status or sym.crossed is not None:
                    self._book_state(sym, symbol, book, rx)
                if status is SYNCED:
                    # A usable book's best prices, as the book keeps them (``_prev_best_*`` is
                    # the best bid / ask whenever it is SYNCED): no SortedList lookup.
                    sym.bid = book._prev_best_bid
                    sym.ask = book._prev_best_ask
                else:
                    sym.bid = None
        elif kind == TRADE:
            tid = event.trade_id  # type: ignore[attr-defined]
            ids = sym.trade_ids
            if tid in ids:
                self._duplicate_trade(symbol, rx, tid)
            else:
                ids.add(tid)
                order = sym.trade_order
                order.append(tid)
                if len(order) > self._trade_memory:
                    ids.discard(order.popleft())
            if book is not None and book.status is SYNCED:
                # Against the tolerance band first; the distance only for a trade outside it.
                bid, ask = book._prev_best_bid, book._prev_best_ask
                price = event.price  # type: ignore[attr-defined]
                if (bid and price < bid * self._below) or (ask and price > ask * self._above):
                    self._trade_outside(sym, event, bid, ask, rx)  # type: ignore[arg-type]
        elif kind == KLINE:
            self._kline(sym, event, rx)  # type: ignore[arg-type]

    def _stream(self, sym: SymbolTrack, event: MarketEvent) -> StreamTrack:
        """The event's stream (created on its first message)."""
        cls = type(event)
        name = _STREAM_OF.get(cls) or event_type_of(event).value
        if name == "orderbook" and getattr(event, "feed", None) == REST_FEED:
            # The REST depth source polls its own book (no u sequence with the stream's):
            # only its timing is watched, under a stream name of its own.
            name = REST_STREAM
        st = sym.streams.get(name)
        if st is None:
            kind = OTHER if name == REST_STREAM else _KIND_OF.get(name, OTHER)
            fixed = self._configured.get(name)
            st = sym.streams[name] = StreamTrack(name, kind, fixed, self.config)
        if name != REST_STREAM:
            sym.by_type[cls] = st
        return st

    def flush(self, until_us: int) -> None:
        """Finish every minute that ended at or before ``until_us`` (the live timer; the end of a
        replay). Summaries depend only on events, so when they are finished changes nothing."""
        for symbol, sym in self._symbols.items():
            if sym.minute_us != NEVER and sym.minute_us + US_PER_MINUTE <= until_us:
                self._minutes.append(sym.close_minute(symbol))  # type: ignore[arg-type]

    def finish(self) -> None:
        """End of input: every minute is finished (open incidents stay open)."""
        for symbol, sym in self._symbols.items():
            summary = sym.close_minute(symbol)
            if summary is not None:
                self._minutes.append(summary)

    def drain(self) -> tuple[list[MinuteSummary], list[Incident]]:
        minutes, records = self._minutes, self._records
        self._minutes, self._records = [], []
        return minutes, records

    def open_incidents(self) -> list[Incident]:
        out: list[Incident] = []
        for sym in self._symbols.values():
            for inc in (sym.desync, sym.crossed, *(s.skew for s in sym.streams.values())):
                if inc is not None:
                    out.append(inc)
        return sorted(out, key=lambda i: i.seq)

    # -- the mask ------------------------------------------------------------------------------
    def mask(self, symbol: str, t: int, book: OrderBook | None) -> QualityMask:
        sym = self._symbols.get(symbol)
        reasons: list[str] = []
        in_sync = book is not None and book.usable
        if not in_sync:
            status = book.status.value if book is not None else "missing"
            reasons.append(f"orderbook_{status}")
        ages: dict[str, float | None] = dict.fromkeys(STREAMS)
        if sym is not None:
            for name, st in sym.streams.items():
                if st.last_rx == NEVER or name not in ages:
                    continue
                age = t - st.last_rx
                ages[name] = age / 1000.0
                limit = st.silence_limit_us(self.config)
                if limit is not None and age > limit:
                    reasons.append(f"{name}_stale")
        return QualityMask(not reasons, tuple(reasons), in_sync, ages)


def _skew_limit_us(threshold_ms: float) -> int:
    """The smallest |receive - exchange| in µs that is skew, i.e. whose ``d / 1000.0`` is above
    the threshold in ms (the per-event test then compares integers, with the same outcome)."""
    if not math.isfinite(threshold_ms):
        return 1 << 62 if threshold_ms > 0 else 0
    d = max(0, int(threshold_ms * 1000) - 2)
    while d / 1000.0 <= threshold_ms:
        d += 1
    return d
