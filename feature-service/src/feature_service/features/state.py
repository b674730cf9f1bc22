"""SymbolState: every stateful operator of one symbol, built from a ``FeaturePlan``, behind
three calls.

``apply(event)`` advances state with one event; ``on_time(t)`` tells it that receive time has
reached ``t`` (it samples the 1 s mid grid); ``compute(t)`` returns the feature frame as of ``t``.
No I/O and no clock: the engine supplies ``t``, so live and offline runs compute the same values
from the same events.
"""

from __future__ import annotations

from collections.abc import Sequence

from feature_service.book.orderbook import OrderBook
from feature_service.features import depth as book_depth
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame
from feature_service.features.library import FeaturePlan
from feature_service.features.normalization import Normalizer
from feature_service.market.events import (
    US_PER_S,
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    Level,
    MarketEvent,
    Ticker,
    Trade,
)
from feature_service.windows.klines import KlineHistory
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeWindows

DEFAULT_CHURN_WINDOW_US = 60 * US_PER_S
KLINE_MIN_LEN = 1500  # candles kept even when no operator needs that many (warm starts, docs)


class SymbolState:
    __slots__ = (
        "_ctx",
        "_kline_ops",
        "_levels",
        "_norms",
        "_ops",
        "book",
        "depth_age_us",
        "funding_rate",
        "klines",
        "last_trace_id",
        "mids",
        "next_funding_time",
        "plan",
        "rest_depth",
        "stream_depth",
        "symbol",
        "ticker",
        "trades",
    )

    def __init__(self, symbol: str, plan: FeaturePlan = BUNDLED_PLAN) -> None:
        self.symbol = symbol
        self.plan = plan
        req = plan.requirements
        # Windows are sized from what the plan's operators read, so the two can never disagree.
        churn_us = req.churn_window_us or DEFAULT_CHURN_WINDOW_US
        self.book = OrderBook(symbol, churn_window_us=2 * churn_us)
        # Depth of the stream's topic, and the REST depth book once one arrives (depth.py).
        self.stream_depth: int | None = None
        self.rest_depth: book_depth.RestDepthBook | None = None
        self.depth_age_us: int | None = None  # of the REST book, at the last compute
        self.trades = TradeWindows(req.trade_spans_us or (US_PER_S,))
        self.mids = MidGrid(horizon_s=req.mid_horizon_s, return_spans_s=req.mid_return_spans_s)
        self.klines = KlineHistory(
            maxlen=max(KLINE_MIN_LEN, req.kline_len + 1),
            volume_mean_spans=req.kline_volume_means,
            previous_volume_spans=req.kline_previous_volumes,
            return_spans=req.kline_return_stds,
        )
        self._levels = req.book_levels
        self.adopt(plan.build(), plan.normalizers())
        self.ticker: dict[str, float | int] = {}
        # Funding comes from the funding stream or the ticker; the most recently received wins.
        self.funding_rate: float | None = None
        self.next_funding_time: int | None = None
        self.last_trace_id: str | None = None

    def adopt(self, ops: list[Family], norms: list[Normalizer]) -> None:
        """Run these operators and normalisers, reading this state's windows."""
        self._ops = ops
        self._kline_ops = [op for op in ops if op.uses_klines]
        self._norms = norms
        self._ctx = ComputeContext(trades=self.trades, mids=self.mids, klines=self.klines)
        self._ctx.churn = self.book

    @property
    def operators(self) -> list[Family]:
        return self._ops

    @property
    def normalizers(self) -> list[Normalizer]:
        return self._norms

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
                    close = event.close
                    for op in self._kline_ops:
                        op.update(close)
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
        mids = self.mids
        last = mids._last  # last recorded second: the engine calls this for every event, and
        # only the first event of a new second writes (record_until ignores the others), so
        # the book's mid is only read then.
        if last is None or t // US_PER_S > last:
            mids.record_until(t - t % US_PER_S, self.book.mid())

    # -- features ------------------------------------------------------------------------------
    def compute(self, t: int) -> FeatureFrame:
        plan = self.plan
        out = FeatureFrame(plan.names, plan.int_names)
        ctx = self._ctx
        ctx.at(t)
        book = self.book
        usable = book.usable
        ctx.usable = usable
        ctx.set_top(book.best_bid(), book.best_ask())
        levels = self._levels
        if levels:
            ctx.bids = book.top_bids(levels)
            ctx.asks = book.top_asks(levels)
        valid_since = book.valid_since
        ctx.book_history_s = (
            (t - valid_since) / US_PER_S if usable and valid_since is not None else 0.0
        )
        ctx.funding_rate = self.funding_rate
        ctx.next_funding_time = self.next_funding_time
        for op in self._ops:
            op.compute(ctx, out)
        self.depth_age_us = book_depth.fill_depth(
            out,
            t,
            self.stream_depth,
            self.rest_depth,
            self._level_features,
            plan.levels_needed,
            max(levels, book_depth.TOP_LEVELS),
        )
        for norm in self._norms:
            norm.apply(t, out)
        return out

    def _level_features(
        self,
        bids: Sequence[Level],
        asks: Sequence[Level],
        usable: bool,
        _churn_changes: int,
        _churn_history_s: float | None,
        out: FeatureFrame,
    ) -> None:
        """The plan's level-reading operators on another book's levels (the REST depth book)."""
        ctx = ComputeContext()
        ctx.usable = usable
        ctx.bids = bids
        ctx.asks = asks
        for op in self._ops:
            if op.reads_levels:
                op.compute(ctx, out)

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
