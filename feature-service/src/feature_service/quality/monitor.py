"""QualityMonitor: every quality check over one event stream, pure (no I/O, no clock).

Feed it each event right after the symbol's book applied it: ``observe(event, book)``. The live
engine does so for every consumed event and the report's replay of stored raw data does the same
with its own ``OrderBook``, so both find the same incidents. Time only advances with the events
(receive time), which is what makes the two runs agree.

Output, taken with ``drain()``: finished per-minute summaries and incident records (an incident
that stays open, such as a desync, is recorded when it opens and again when it closes).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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
from feature_service.quality.checks import JumpDetector, kline_violation
from feature_service.quality.config import US_PER_S, QualityConfig
from feature_service.quality.incidents import Incident, IncidentKind
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary

US_PER_KLINE = 60_000_000
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


@dataclass(slots=True)
class _Stream:
    last_rx: int | None = None
    last_ex: int | None = None
    mean_gap_us: float = 0.0
    gaps: int = 0
    skew: Incident | None = None
    skew_last_rx: int = 0


@dataclass(slots=True)
class _Symbol:
    streams: dict[str, _Stream] = field(default_factory=dict)
    last_u: int | None = None
    last_seq: int | None = None
    in_sequence: bool = False
    book_status: BookStatus = BookStatus.NEVER_SYNCED
    desync: Incident | None = None
    crossed: Incident | None = None
    jumps: JumpDetector | None = None
    second: int | None = None
    mid: float | None = None
    trade_ids: set[str] = field(default_factory=set)
    trade_order: deque[str] = field(default_factory=deque)
    last_kline_start: int | None = None
    minute: MinuteSummary | None = None


class QualityMonitor:
    def __init__(
        self,
        config: QualityConfig | None = None,
        *,
        on_incident: Callable[[Incident], None] | None = None,
    ) -> None:
        self.config = config or QualityConfig()
        self._on_incident = on_incident
        self._symbols: dict[str, _Symbol] = {}
        self._records: list[Incident] = []
        self._minutes: list[MinuteSummary] = []
        self._seq = 0
        self._configured = {n: self.config.silence_us(n) for n in self.config.silence_s}
        self.detected: Counter[tuple[str, str]] = Counter()  # (symbol, kind) -> incidents
        self.desync_started: list[str] = []  # symbols whose book just went out of sync

    # -- input ---------------------------------------------------------------------------------
    def observe(self, event: MarketEvent, book: OrderBook | None = None) -> None:
        """One event, after ``book`` (the symbol's book, if any) applied it."""
        sym = self._symbols.get(event.symbol)
        if sym is None:
            sym = self._symbols[event.symbol] = _Symbol()
            sym.jumps = JumpDetector(self.config)
        rx = event.receive_ts
        stream = _STREAM_OF.get(type(event)) or event_type_of(event).value
        if stream == "orderbook" and getattr(event, "feed", None) == REST_FEED:
            # The REST depth source polls its own book (no u sequence with the stream's):
            # only its timing is watched, under a stream name of its own.
            stream = REST_STREAM
        minute = sym.minute
        if minute is None or rx - minute.minute_us >= US_PER_MINUTE or rx < minute.minute_us:
            minute = self._minute(sym, event.symbol, rx)
        skew_ms = (rx - event.exchange_ts) / 1000.0
        minute.count(stream, skew_ms, rx)
        if sym.second is None or rx // US_PER_S > sym.second:
            self._sample_mid(sym, event.symbol, rx)
        self._timing(sym, event, stream, rx, skew_ms)
        if stream == "orderbook":
            self._book_event(sym, event, rx)  # type: ignore[arg-type]
            if book is not None:
                if book.status is not sym.book_status or sym.crossed is not None:
                    self._book_state(sym, event.symbol, book, rx)
                sym.mid = book.mid()
        elif stream == "trade":
            self._trade(sym, event, book, rx)  # type: ignore[arg-type]
        elif stream == "kline":
            self._kline(sym, event, rx)  # type: ignore[arg-type]

    def flush(self, until_us: int) -> None:
        """Finish every minute that ended at or before ``until_us`` (the live timer; the end of a
        replay). Summaries depend only on events, so when they are finished changes nothing."""
        for sym in self._symbols.values():
            m = sym.minute
            if m is not None and m.minute_us + US_PER_MINUTE <= until_us:
                self._minutes.append(m)
                sym.minute = None

    def finish(self) -> None:
        """End of input: every minute is finished (open incidents stay open)."""
        for sym in self._symbols.values():
            if sym.minute is not None:
                self._minutes.append(sym.minute)
                sym.minute = None

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
                if st.last_rx is None or name not in ages:
                    continue
                age = t - st.last_rx
                ages[name] = age / 1000.0
                limit = self._silence_us(name, st)
                if limit is not None and age > limit:
                    reasons.append(f"{name}_stale")
        return QualityMask(not reasons, tuple(reasons), in_sync, ages)

    # -- checks --------------------------------------------------------------------------------
    def _minute(self, sym: _Symbol, symbol: str, rx: int) -> MinuteSummary:
        start = rx - rx % US_PER_MINUTE
        m = sym.minute
        if m is None or m.minute_us != start:
            if m is not None:
                self._minutes.append(m)
            m = sym.minute = MinuteSummary(symbol, start)
        return m

    def _silence_us(self, name: str, st: _Stream) -> int | None:
        configured = self._configured.get(name)
        if configured is not None:
            return configured
        cfg = self.config
        if st.gaps < cfg.cadence_warmup:
            return None
        return int(max(cfg.silence_floor_s * US_PER_S, cfg.silence_factor * st.mean_gap_us))

    def _timing(self, sym: _Symbol, event: MarketEvent, name: str, rx: int, skew_ms: float) -> None:
        st = sym.streams.get(name)
        if st is None:
            st = sym.streams[name] = _Stream()
        symbol = event.symbol
        if st.last_rx is not None:
            gap = rx - st.last_rx
            if gap < 0:
                self._point(
                    IncidentKind.TIME_BACKWARDS,
                    symbol,
                    name,
                    rx,
                    -gap / 1000.0,
                    f"receive time went back {-gap / 1000.0:.3f} ms",
                )
            else:
                limit = self._silence_us(name, st)
                if limit is not None and gap > limit:
                    self._emit(
                        Incident(
                            IncidentKind.STREAM_SILENT,
                            symbol,
                            name,
                            st.last_rx,
                            rx,
                            gap / US_PER_S,
                            f"no {name} message for {gap / US_PER_S:.1f} s "
                            f"(limit {limit / US_PER_S:.1f} s)",
                            rx,
                        )
                    )
                st.gaps += 1
                # Smoothed gap (1/32 weight): a slow-moving cadence, robust to single bursts.
                st.mean_gap_us += (gap - st.mean_gap_us) / min(st.gaps, 32)
        st.last_rx = rx if st.last_rx is None else max(st.last_rx, rx)
        ex = event.exchange_ts
        if st.last_ex is not None and ex < st.last_ex:
            back = (st.last_ex - ex) / 1000.0
            self._point(
                IncidentKind.TIME_BACKWARDS,
                symbol,
                name,
                rx,
                back,
                f"exchange time went back {back:.3f} ms",
            )
        st.last_ex = ex if st.last_ex is None else max(st.last_ex, ex)
        if abs(skew_ms) > self.config.skew_threshold_ms:
            if st.skew is None:
                st.skew = self._emit(
                    Incident(
                        IncidentKind.CLOCK_SKEW,
                        symbol,
                        name,
                        rx,
                        None,
                        abs(skew_ms),
                        "receive vs exchange time",
                        rx,
                    )
                )
            else:
                st.skew.magnitude = max(st.skew.magnitude, abs(skew_ms))
            st.skew_last_rx = rx
        elif st.skew is not None:
            inc, st.skew = st.skew, None
            inc.detail = f"receive vs exchange time up to {inc.magnitude:.1f} ms"
            self._close(inc, st.skew_last_rx)

    def _book_event(self, sym: _Symbol, event: BookSnapshot | BookDelta, rx: int) -> None:
        symbol, u, seq = event.symbol, event.update_id, event.seq
        if sym.last_seq is not None and seq is not None and seq < sym.last_seq:
            back = sym.last_seq - seq
            self._point(
                IncidentKind.SEQ_BACKWARDS,
                symbol,
                "orderbook",
                rx,
                float(back),
                f"seq {seq} after {sym.last_seq}",
            )
        if seq is not None:
            sym.last_seq = seq if sym.last_seq is None else max(sym.last_seq, seq)
        if isinstance(event, BookSnapshot):
            zeros = sum(1 for _, size in event.bids if size == 0) + sum(
                1 for _, size in event.asks if size == 0
            )
            if zeros:
                self._anomaly(
                    sym,
                    IncidentKind.ZERO_SIZE_LEVEL,
                    symbol,
                    rx,
                    float(zeros),
                    f"{zeros} zero-size level(s) in a snapshot",
                )
            if sym.last_u is not None and u < sym.last_u:
                self._point(
                    IncidentKind.U_RESET,
                    symbol,
                    "orderbook",
                    rx,
                    float(sym.last_u - u),
                    f"snapshot u {u} after {sym.last_u}"
                    + (" (exchange restart)" if u == 1 else ""),
                )
            sym.last_u, sym.in_sequence = u, True
            return
        if not sym.in_sequence or sym.last_u is None:
            return
        last = sym.last_u
        if u <= last:
            self._point(
                IncidentKind.DUPLICATE,
                symbol,
                "orderbook",
                rx,
                1.0,
                f"delta u {u} already applied (last {last})",
            )
        elif u > last + 1:
            self._point(
                IncidentKind.U_GAP,
                symbol,
                "orderbook",
                rx,
                float(u - last - 1),
                f"delta u {u} after {last}: {u - last - 1} update(s) missing",
            )
            sym.in_sequence = False
        else:
            sym.last_u = u

    def _book_state(self, sym: _Symbol, symbol: str, book: OrderBook, rx: int) -> None:
        status, before = book.status, sym.book_status
        sym.book_status = status
        if status is BookStatus.OUT_OF_SYNC and before is not BookStatus.OUT_OF_SYNC:
            sym.desync = self._emit(
                Incident(
                    IncidentKind.BOOK_DESYNC,
                    symbol,
                    "orderbook",
                    rx,
                    None,
                    0.0,
                    "book out of sync, waiting for a snapshot",
                    rx,
                )
            )
            self.desync_started.append(symbol)
        elif sym.desync is not None and status is not BookStatus.OUT_OF_SYNC:
            inc, sym.desync = sym.desync, None
            inc.magnitude = (rx - inc.start_us) / US_PER_S
            inc.detail = f"book out of sync for {inc.magnitude:.3f} s until a snapshot"
            self._close(inc, rx)
        if status is BookStatus.CROSSED and sym.crossed is None:
            bid, ask = book.top_of_book()
            depth = (bid - ask) / ask if bid is not None and ask else 0.0
            sym.crossed = self._anomaly(
                sym,
                IncidentKind.CROSSED_BOOK,
                symbol,
                rx,
                depth,
                f"best bid {bid} >= best ask {ask}",
                open_=True,
            )
        elif sym.crossed is not None and status is not BookStatus.CROSSED:
            inc, sym.crossed = sym.crossed, None
            self._close(inc, rx)

    def _trade(self, sym: _Symbol, trade: Trade, book: OrderBook | None, rx: int) -> None:
        tid = trade.trade_id
        if tid in sym.trade_ids:
            self._point(
                IncidentKind.DUPLICATE, trade.symbol, "trade", rx, 1.0, f"trade {tid} again"
            )
        else:
            sym.trade_ids.add(tid)
            sym.trade_order.append(tid)
            if len(sym.trade_order) > self.config.trade_id_memory:
                sym.trade_ids.discard(sym.trade_order.popleft())
        if book is None or not book.usable:
            return
        bid, ask = book.best_bid(), book.best_ask()
        tol = self.config.trade_outside_tolerance
        price = trade.price
        dist = 0.0
        if bid and price < bid * (1.0 - tol):
            dist = (bid - price) / bid
        elif ask and price > ask * (1.0 + tol):
            dist = (price - ask) / ask
        if dist:
            self._anomaly(
                sym,
                IncidentKind.TRADE_OUTSIDE_BOOK,
                trade.symbol,
                rx,
                dist,
                f"trade at {price} vs book {bid} / {ask}",
                stream="trade",
            )

    def _kline(self, sym: _Symbol, k: Kline, rx: int) -> None:
        violation = kline_violation(k)
        if violation is not None:
            size, text = violation
            self._anomaly(
                sym, IncidentKind.OHLC_INCONSISTENT, k.symbol, rx, size, text, stream="kline"
            )
        if not k.confirmed or k.interval != "1":
            return
        last = sym.last_kline_start
        if last is not None and k.start <= last:
            self._point(
                IncidentKind.DUPLICATE,
                k.symbol,
                "kline",
                rx,
                1.0,
                f"confirmed candle {k.start} again (last {last})",
            )
            return
        if sym.minute is not None:
            sym.minute.confirmed_klines += 1
        if last is not None and k.start > last + US_PER_KLINE:
            missing = (k.start - last) // US_PER_KLINE - 1
            self._emit(
                Incident(
                    IncidentKind.KLINE_MISSING,
                    k.symbol,
                    "kline",
                    last + US_PER_KLINE,
                    k.start,
                    float(missing),
                    f"{missing} confirmed 1 m candle(s) missing (candle times)",
                    rx,
                )
            )
        sym.last_kline_start = k.start

    def _sample_mid(self, sym: _Symbol, symbol: str, rx: int) -> None:
        second = rx // US_PER_S
        if sym.second is None:
            sym.second = second
            return
        if second <= sym.second:
            return
        sym.second = second
        assert sym.jumps is not None
        r = sym.jumps.sample(sym.mid)
        if r is not None:
            self._anomaly(
                sym,
                IncidentKind.PRICE_JUMP,
                symbol,
                second * US_PER_S,
                abs(r),
                f"1 s mid log return {r:+.6f}",
            )

    # -- recording -----------------------------------------------------------------------------
    def _anomaly(
        self,
        sym: _Symbol,
        kind: IncidentKind,
        symbol: str,
        t: int,
        magnitude: float,
        detail: str,
        *,
        stream: str = "orderbook",
        open_: bool = False,
    ) -> Incident:
        if sym.minute is not None:
            sym.minute.anomalies += 1
        return self._emit(
            Incident(kind, symbol, stream, t, None if open_ else t, magnitude, detail, t)
        )

    def _point(
        self, kind: IncidentKind, symbol: str, stream: str, t: int, magnitude: float, detail: str
    ) -> Incident:
        return self._emit(Incident(kind, symbol, stream, t, t, magnitude, detail, t))

    def _emit(self, inc: Incident) -> Incident:
        self._seq += 1
        inc.seq = self._seq
        self.detected[(inc.symbol, inc.kind.value)] += 1
        self._records.append(replace(inc))
        if inc.end_us is not None and self._on_incident is not None:
            self._on_incident(inc)
        return inc

    def _close(self, inc: Incident, end_us: int) -> None:
        inc.end_us = end_us
        self._records.append(replace(inc))
        if self._on_incident is not None:
            self._on_incident(inc)
