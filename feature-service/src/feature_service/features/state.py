"""SymbolState: every stateful operator of one symbol behind three calls.

``apply(event)`` advances state with one event; ``on_time(t)`` tells it that receive time has
reached ``t`` (it samples the 1 s mid grid); ``compute(t)`` returns the feature frame as of ``t``.
No I/O and no clock: the engine supplies ``t``, so live and offline runs compute the same values
from the same events.
"""

from __future__ import annotations

from feature_service.book.orderbook import OrderBook
from feature_service.features import depth as book_depth
from feature_service.features import orderbook as book_features
from feature_service.features import orderflow, price
from feature_service.features.candles import compute_candles
from feature_service.features.frame import FeatureFrame
from feature_service.features.orderbook import compute_orderbook
from feature_service.features.orderflow import compute_orderflow
from feature_service.features.perpetual import compute_perpetual
from feature_service.features.price import compute_price
from feature_service.features.technical import TechnicalIndicators
from feature_service.features.temporal import compute_temporal
from feature_service.market.events import (
    US_PER_S,
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Ticker,
    Trade,
)
from feature_service.windows.klines import KlineHistory
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeWindows

# Windows are sized from what the feature families read, so the two can never disagree.
TRADE_SPANS_US = tuple(sorted(set(price.TRADE_SPANS_US) | set(orderflow.TRADE_SPANS_US)))
CHURN_WINDOW_US = book_features.CHURN_WINDOW_S * US_PER_S


class SymbolState:
    __slots__ = (
        "book",
        "depth_age_us",
        "funding_rate",
        "klines",
        "last_trace_id",
        "mids",
        "next_funding_time",
        "rest_depth",
        "stream_depth",
        "symbol",
        "technical",
        "ticker",
        "trades",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = OrderBook(symbol, churn_window_us=2 * CHURN_WINDOW_US)
        # Depth of the stream's topic, and the REST depth book once one arrives (depth.py).
        self.stream_depth: int | None = None
        self.rest_depth: book_depth.RestDepthBook | None = None
        self.depth_age_us: int | None = None  # of the REST book, at the last compute
        self.trades = TradeWindows(TRADE_SPANS_US)
        self.mids = MidGrid(horizon_s=price.MID_HORIZON_S)
        self.klines = KlineHistory(maxlen=1500)
        self.technical = TechnicalIndicators()
        self.ticker: dict[str, float | int] = {}
        # Funding comes from the funding stream or the ticker; the most recently received wins.
        self.funding_rate: float | None = None
        self.next_funding_time: int | None = None
        self.last_trace_id: str | None = None

    # -- events --------------------------------------------------------------------------------
    def apply(self, event: MarketEvent) -> None:
        self.last_trace_id = event.trace_id or self.last_trace_id
        match event:
            case BookSnapshot() if event.feed == book_depth.REST_FEED:
                if self.rest_depth is None:
                    self.rest_depth = book_depth.RestDepthBook(self.symbol)
                self.rest_depth.apply(event)
            case BookDelta() | BookSnapshot():
                self.stream_depth = event.depth
                self.book.apply(event)
            case Trade():
                self.trades.add(event)
            case Kline():
                if self.klines.add(event):
                    self.technical.update(event.close)
            case Ticker():
                fields = event.fields
                self.ticker.update(fields)
                rate = fields.get("funding_rate")
                if rate is not None:
                    self.funding_rate = float(rate)
                next_time = fields.get("next_funding_time")
                if next_time is not None:
                    self.next_funding_time = int(next_time)
            case Funding():
                self.funding_rate = event.funding_rate
                if event.next_funding_time is not None:
                    self.next_funding_time = event.next_funding_time

    def on_time(self, t: int) -> None:
        """Record the current mid at every whole second up to ``t``: the mid as of a boundary is
        the book before any event received at or after it, which is the state right now."""
        self.mids.record_until(t - t % US_PER_S, self.book.mid())

    # -- features ------------------------------------------------------------------------------
    def compute(self, t: int) -> FeatureFrame:
        out = FeatureFrame()
        book = self.book
        usable = book.usable
        compute_price(book.best_bid(), book.best_ask(), self.mids, t, self.trades, out)
        compute_orderflow(self.trades, t, out)
        valid_since = book.valid_since
        history_s = (t - valid_since) / US_PER_S if usable and valid_since is not None else 0.0
        compute_orderbook(
            book.top_bids(10),
            book.top_asks(10),
            usable,
            book.best_changes_between(t - CHURN_WINDOW_US, t),
            history_s,
            out,
        )
        self.depth_age_us = book_depth.fill_depth(
            out, t, self.stream_depth, self.rest_depth, compute_orderbook
        )
        compute_candles(self.klines, out)
        self.technical.compute(out)
        compute_perpetual(self.funding_rate, self.next_funding_time, t, out)
        compute_temporal(t, out)
        return out

    def book_counters(self) -> dict[str, int]:
        s = self.book.stats
        return {
            "snapshots": s.snapshots,
            "deltas_applied": s.deltas_applied,
            "stale_skipped": s.stale_skipped,
            "gaps": s.gaps,
            "ignored_while_unsynced": s.ignored_while_unsynced,
            "crossed": s.crossed,
            "empty_snapshots": s.empty_snapshots,
        }
