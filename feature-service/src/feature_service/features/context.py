"""ComputeContext: what the operators of one symbol read at a close time ``t``.

``SymbolState`` owns one context and refreshes it before each computation (no allocation per
vector); tests build one by hand. The trade statistics of a span are memoised for the current
``t``, so the four families reading the 3 s window pay for one ``TradeWindows.stats``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from feature_service.market.events import Level
from feature_service.windows.klines import KlineHistory
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeStats, TradeWindows


class ChurnSource(Protocol):
    def best_changes_between(self, start: int, end: int) -> int: ...


class ComputeContext:
    __slots__ = (
        "_stats",
        "ask",
        "asks",
        "bid",
        "bids",
        "book_history_s",
        "churn",
        "funding_rate",
        "klines",
        "mid",
        "mids",
        "next_funding_time",
        "t",
        "trades",
        "usable",
    )

    def __init__(
        self,
        *,
        trades: TradeWindows | None = None,
        mids: MidGrid | None = None,
        klines: KlineHistory | None = None,
        churn: ChurnSource | None = None,
    ) -> None:
        self.t = 0
        self.bid: float | None = None  # None when the book is unusable
        self.ask: float | None = None
        self.mid: float | None = None
        self.usable = False
        self.bids: Sequence[Level] = ()
        self.asks: Sequence[Level] = ()
        self.book_history_s: float | None = None
        self.funding_rate: float | None = None
        self.next_funding_time: int | None = None
        self.trades = trades
        self.mids = mids
        self.klines = klines
        self.churn = churn
        self._stats: dict[int, TradeStats] = {}

    def at(self, t: int) -> None:
        """Start a new computation at ``t`` (clears the memo)."""
        self.t = t
        self._stats.clear()

    def set_top(self, bid: float | None, ask: float | None) -> None:
        self.bid = bid
        self.ask = ask
        self.mid = None if bid is None or ask is None else (bid + ask) / 2.0

    def trade_stats(self, span_us: int) -> TradeStats:
        stats = self._stats.get(span_us)
        if stats is None:
            trades = self.trades
            if trades is None:
                raise KeyError("no trade windows in this context")
            stats = self._stats[span_us] = trades.stats(span_us, self.t)
        return stats
