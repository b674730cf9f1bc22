"""The quality monitor's rare paths: whatever happens when an event reveals a problem, ends a
minute or starts a second. ``QualityMonitor.observe`` (monitor.py) does the per-event work
inline and calls into these; they build, number and hand out the incident records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from feature_service.book.orderbook import BookStatus, OrderBook
from feature_service.market.events import BookSnapshot, Kline, Trade
from feature_service.quality.checks import kline_violation
from feature_service.quality.config import US_PER_S, QualityConfig
from feature_service.quality.incidents import Incident, IncidentKind
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary
from feature_service.quality.tracking import NEVER, StreamTrack, SymbolTrack

US_PER_KLINE = 60_000_000


class IncidentChecks:
    """State and the rare-path checks shared with ``QualityMonitor``."""

    def __init__(
        self,
        config: QualityConfig | None = None,
        *,
        on_incident: Callable[[Incident], None] | None = None,
    ) -> None:
        self.config = config or QualityConfig()
        self._on_incident = on_incident
        self._symbols: dict[str, SymbolTrack] = {}
        self._records: list[Incident] = []
        self._minutes: list[MinuteSummary] = []
        self._seq = 0
        self.detected: Counter[tuple[str, str]] = Counter()  # (symbol, kind) -> incidents
        self.desync_started: list[str] = []  # symbols whose book just went out of sync

    def _boundary(self, sym: SymbolTrack, symbol: str, rx: int) -> None:
        """The event is outside the open minute or starts a new second (or both)."""
        minute = sym.minute_us
        if rx - minute >= US_PER_MINUTE or rx < minute:
            summary = sym.close_minute(symbol)
            if summary is not None:
                self._minutes.append(summary)
            minute = sym.minute_us = rx - rx % US_PER_MINUTE
        second = rx // US_PER_S
        if sym.second == NEVER:
            sym.second = second
        elif second > sym.second:
            sym.second = second
            r = sym.jumps.sample(sym.mid())
            if r is not None:
                self._anomaly(
                    sym,
                    IncidentKind.PRICE_JUMP,
                    symbol,
                    second * US_PER_S,
                    abs(r),
                    f"1 s mid log return {r:+.6f}",
                )
        sym.window_end = min((sym.second + 1) * US_PER_S, minute + US_PER_MINUTE)

    def _gap(self, st: StreamTrack, symbol: str, rx: int, gap: int) -> None:
        """A stream's first message, receive time going back, or a gap that may be a silence."""
        if st.last_rx == NEVER:
            st.last_rx = rx
            return
        if gap < 0:
            back = -gap / 1000.0
            self._point(
                IncidentKind.TIME_BACKWARDS,
                symbol,
                st.name,
                rx,
                back,
                f"receive time went back {back:.3f} ms",
            )
            return
        self._maybe_silent(st, symbol, rx, gap)
        if st.learned:
            st.gaps += 1
            st.mean_gap_us += (gap - st.mean_gap_us) / min(st.gaps, 32)
        st.last_rx = rx

    def _ex_backwards(self, st: StreamTrack, symbol: str, rx: int, ex: int) -> None:
        back = (st.last_ex - ex) / 1000.0
        self._point(
            IncidentKind.TIME_BACKWARDS,
            symbol,
            st.name,
            rx,
            back,
            f"exchange time went back {back:.3f} ms",
        )

    def _maybe_silent(self, st: StreamTrack, symbol: str, rx: int, gap: int) -> None:
        limit = st.silence_limit_us(self.config)
        if limit is None or gap <= limit:
            return
        name = st.name
        self._emit(
            Incident(
                IncidentKind.STREAM_SILENT,
                symbol,
                name,
                rx - gap,
                rx,
                gap / US_PER_S,
                f"no {name} message for {gap / US_PER_S:.1f} s (limit {limit / US_PER_S:.1f} s)",
                rx,
            )
        )

    def _skewed(self, st: StreamTrack, symbol: str, rx: int, skew_ms: float) -> None:
        if st.skew is None:
            st.skew = self._emit(
                Incident(
                    IncidentKind.CLOCK_SKEW,
                    symbol,
                    st.name,
                    rx,
                    None,
                    skew_ms,
                    "receive vs exchange time",
                    rx,
                )
            )
        else:
            st.skew.magnitude = max(st.skew.magnitude, skew_ms)
        st.skew_last_rx = rx

    def _unskewed(self, st: StreamTrack) -> None:
        inc, st.skew = st.skew, None
        assert inc is not None
        inc.detail = f"receive vs exchange time up to {inc.magnitude:.1f} ms"
        self._close(inc, st.skew_last_rx)

    def _seq_backwards(self, symbol: str, rx: int, seq: int, last_seq: int) -> None:
        self._point(
            IncidentKind.SEQ_BACKWARDS,
            symbol,
            "orderbook",
            rx,
            float(last_seq - seq),
            f"seq {seq} after {last_seq}",
        )

    def _snapshot(self, sym: SymbolTrack, event: BookSnapshot, rx: int) -> None:
        symbol, u, seq = event.symbol, event.update_id, event.seq
        if seq is not None:
            if seq < sym.last_seq:
                self._seq_backwards(symbol, rx, seq, sym.last_seq)
            sym.last_seq = max(sym.last_seq, seq)
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
                f"snapshot u {u} after {sym.last_u}" + (" (exchange restart)" if u == 1 else ""),
            )
        sym.last_u, sym.in_sequence = u, True

    def _out_of_sequence(self, sym: SymbolTrack, symbol: str, rx: int, u: int, last: int) -> None:
        """A delta whose u does not follow the last applied one."""
        if u <= last:
            self._point(
                IncidentKind.DUPLICATE,
                symbol,
                "orderbook",
                rx,
                1.0,
                f"delta u {u} already applied (last {last})",
            )
            return
        self._point(
            IncidentKind.U_GAP,
            symbol,
            "orderbook",
            rx,
            float(u - last - 1),
            f"delta u {u} after {last}: {u - last - 1} update(s) missing",
        )
        sym.in_sequence = False

    def _book_state(self, sym: SymbolTrack, symbol: str, book: OrderBook, rx: int) -> None:
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

    def _duplicate_trade(self, symbol: str, rx: int, tid: str) -> None:
        self._point(IncidentKind.DUPLICATE, symbol, "trade", rx, 1.0, f"trade {tid} again")

    def _trade_outside(
        self, sym: SymbolTrack, trade: Trade, bid: float, ask: float, rx: int
    ) -> None:
        price = trade.price
        below = bid and price < bid * self._below
        dist = (bid - price) / bid if below else (price - ask) / ask
        self._anomaly(
            sym,
            IncidentKind.TRADE_OUTSIDE_BOOK,
            trade.symbol,
            rx,
            dist,
            f"trade at {price} vs book {bid} / {ask}",
            stream="trade",
        )

    def _kline(self, sym: SymbolTrack, k: Kline, rx: int) -> None:
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
        sym.m_klines += 1
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

    def _anomaly(
        self,
        sym: SymbolTrack,
        kind: IncidentKind,
        symbol: str,
        t: int,
        magnitude: float,
        detail: str,
        *,
        stream: str = "orderbook",
        open_: bool = False,
    ) -> Incident:
        sym.m_anomalies += 1
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
