"""Order-book families from the top levels of the current book.

Inputs (all as of ``t``): the best bid and ask levels, best first, as ``(price, size)``, as many
as the deepest operator needs. When the book is unusable every feature is null ``book_unusable``.
- depth_bid_top{N}, depth_ask_top{N} = Σ size over the best N levels of that side (base
  quantity). Null ``insufficient_levels`` when fewer than N levels are held: a partial sum would
  look like thin liquidity rather than missing data.
- depth_imbalance_top{N} = (DbN - DaN) / (DbN + DaN), in [-1, 1]. Null ``insufficient_levels``
  as the depths, ``zero_denominator`` if both are 0.
- slope_bid, slope_ask (over up to 10 levels; other depths are ``slope_bid_top{N}``) =
  least-squares slope of level size on the level's relative distance from the touch,
  x = (best - p) / best for bids and (p - best) / best for asks (the touch itself is x = 0).
  Units: base quantity per unit of relative distance (a slope of 1e6 adds 1 unit of size per
  1e-6 = 0.01 bp further from the touch). Positive = liquidity grows away from the touch. Null
  ``insufficient_levels`` with fewer than 3 levels, ``zero_variance`` when every x is equal.
- orderbook_churn_rate (W = 60 s; others ``orderbook_churn_rate_{W}``) = (changes of the best
  bid or best ask received in [t - W, t)) / W, in changes per second. Null
  ``insufficient_history`` when the book has been continuously usable for less than W as of
  ``t`` (``(t - OrderBook.valid_since) / 1e6``): part of the window would be a period whose
  moves are unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family, Param, Params, Requirements
from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S, Level

BOOK_UNUSABLE = "book_unusable"
INSUFFICIENT_LEVELS = "insufficient_levels"
INSUFFICIENT_HISTORY = "insufficient_history"
ZERO_DENOMINATOR = "zero_denominator"
ZERO_VARIANCE = "zero_variance"

SLOPE_MIN_LEVELS = 3
MAX_LEVELS = 200  # Bybit's deepest public book


class _BookFamily(Family):
    group = "orderbook"
    inputs = ("orderbook",)
    reads_levels = True
    params = (Param("levels", "int", 10, minimum=1, maximum=MAX_LEVELS),)
    __slots__ = ("_n",)

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._n = int(params["levels"])

    def require(self, req: Requirements) -> None:
        req.book_levels = max(req.book_levels, self._n)


class Depth(_BookFamily):
    key = "depth"
    templates: ClassVar = {"bid": "depth_bid_top{levels}", "ask": "depth_ask_top{levels}"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        if not ctx.usable:
            for name in names.values():
                out.null(name, BOOK_UNUSABLE)
            return
        n = self._n
        if "bid" in names:
            _set_depth(out, names["bid"], ctx.bids, n)
        if "ask" in names:
            _set_depth(out, names["ask"], ctx.asks, n)


class DepthImbalance(_BookFamily):
    key = "depth_imbalance"
    templates: ClassVar = {"": "depth_imbalance_top{levels}"}
    params = (Param("levels", "int", 5, minimum=1, maximum=MAX_LEVELS),)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        name = self.names[""]
        n = self._n
        if not ctx.usable:
            out.null(name, BOOK_UNUSABLE)
        elif len(ctx.bids) < n or len(ctx.asks) < n:
            out.null(name, INSUFFICIENT_LEVELS)
        else:
            bid = _depth(ctx.bids, n)
            ask = _depth(ctx.asks, n)
            total = bid + ask
            if total > 0.0:
                out.set(name, (bid - ask) / total)
            else:
                out.null(name, ZERO_DENOMINATOR)


class Slope(_BookFamily):
    key = "slope"
    templates: ClassVar = {"bid": "slope_bid_top{levels}", "ask": "slope_ask_top{levels}"}
    short: ClassVar = {"bid": "slope_bid", "ask": "slope_ask"}
    params = (Param("levels", "int", 10, minimum=SLOPE_MIN_LEVELS, maximum=MAX_LEVELS),)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        if not ctx.usable:
            for name in names.values():
                out.null(name, BOOK_UNUSABLE)
            return
        if "bid" in names:
            _set_slope(out, names["bid"], ctx.bids, -1.0, self._n)
        if "ask" in names:
            _set_slope(out, names["ask"], ctx.asks, 1.0, self._n)


class Churn(Family):
    key = "orderbook_churn_rate"
    group = "orderbook"
    inputs = ("orderbook",)
    params = (Param("window", "duration", 60, minimum=1, maximum=3600),)
    templates: ClassVar = {"": "orderbook_churn_rate_{window}"}
    short: ClassVar = {"": "orderbook_churn_rate"}
    warmup = "W of continuously usable book"
    __slots__ = ("_name", "_w_s", "_w_us")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = names[""]
        self._w_s = int(params["window"])
        self._w_us = self._w_s * US_PER_S

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return int(params["window"])

    def require(self, req: Requirements) -> None:
        req.churn_window_us = max(req.churn_window_us, self._w_us)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        if not ctx.usable:
            out.null(self._name, BOOK_UNUSABLE)
            return
        history_s = ctx.book_history_s
        if history_s is None or history_s < self._w_s:
            out.null(self._name, INSUFFICIENT_HISTORY)
        else:
            t = ctx.t
            changes = ctx.churn.best_changes_between(t - self._w_us, t)  # type: ignore[union-attr]
            out.set(self._name, changes / self._w_s)


def _depth(levels: Sequence[Level], n: int) -> float:
    total = 0.0
    for i in range(n):
        total += levels[i][1]
    return total


def _set_depth(out: FeatureFrame, name: str, levels: Sequence[Level], n: int) -> None:
    if len(levels) < n:
        out.null(name, INSUFFICIENT_LEVELS)
    else:
        out.set(name, _depth(levels, n))


def _set_slope(
    out: FeatureFrame, name: str, levels: Sequence[Level], direction: float, top: int
) -> None:
    """``direction`` is +1 for asks (distance = p - best) and -1 for bids (best - p)."""
    n = min(len(levels), top)
    if n < SLOPE_MIN_LEVELS:
        out.null(name, INSUFFICIENT_LEVELS)
        return
    best = levels[0][0]
    if best <= 0.0:
        out.null(name, ZERO_DENOMINATOR)
        return
    scale = direction / best
    xs = [(levels[i][0] - best) * scale for i in range(n)]
    x_mean = sum(xs) / n
    y_mean = sum(levels[i][1] for i in range(n)) / n
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        dx = xs[i] - x_mean
        sxx += dx * dx
        sxy += dx * (levels[i][1] - y_mean)
    if sxx == 0.0:
        out.null(name, ZERO_VARIANCE)
        return
    out.set(name, sxy / sxx)


FAMILIES: tuple[type[Family], ...] = (Depth, DepthImbalance, Slope, Churn)

ORDERBOOK_FEATURES: tuple[str, ...] = (
    "depth_bid_top5",
    "depth_bid_top10",
    "depth_ask_top5",
    "depth_ask_top10",
    "depth_imbalance_top5",
    "slope_bid",
    "slope_ask",
    "orderbook_churn_rate",
)


class _FixedChurn:
    __slots__ = ("changes",)

    def __init__(self, changes: int) -> None:
        self.changes = changes

    def best_changes_between(self, start: int, end: int) -> int:
        return self.changes


def compute_orderbook(
    bids: Sequence[Level],
    asks: Sequence[Level],
    usable: bool,
    churn_changes: int,
    churn_history_s: float | None,
    out: FeatureFrame,
) -> None:
    """The bundled order-book features on explicit inputs (``churn_changes`` = best changes in
    the last 60 s), by the operators ``SymbolState`` runs."""
    from feature_service.features.library import run_group

    ctx = ComputeContext(churn=_FixedChurn(churn_changes))
    ctx.usable = usable
    ctx.bids = bids
    ctx.asks = asks
    ctx.book_history_s = churn_history_s
    run_group(ORDERBOOK_FEATURES, ctx, out)
