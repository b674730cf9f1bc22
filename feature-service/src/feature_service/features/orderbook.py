"""Order-book features from the top levels of the current book.

Inputs (all as of ``t``): the best 10 bid and ask levels, best first, as ``(price, size)``; more
are ignored. ``usable`` is the book's state; when False every feature is null ``book_unusable``.
- depth_bid_top5/top10, depth_ask_top5/top10 = Σ size over the best N levels of that side
  (base quantity). Null ``insufficient_levels`` when fewer than N levels are held: a partial
  sum would look like thin liquidity rather than missing data.
- depth_imbalance_top5 = (Db5 - Da5) / (Db5 + Da5), in [-1, 1]. Null ``insufficient_levels`` as
  the depths, ``zero_denominator`` if both are 0.
- slope_bid, slope_ask = least-squares slope of level size on the level's relative distance from
  the touch, x = (best - p) / best for bids and (p - best) / best for asks, over up to 10 levels
  (the touch itself is x = 0). Units: base quantity per unit of relative distance (a slope of
  1e6 adds 1 unit of size per 1e-6 = 0.01 bp further from the touch). Positive = liquidity
  grows away from the touch. Null ``insufficient_levels`` with fewer than 3 levels,
  ``zero_variance`` when every x is equal.
- orderbook_churn_rate = (changes of the best bid or best ask received in [t - 60 s, t)) / 60,
  in changes per second. ``churn_changes`` is that count (``OrderBook.best_changes_between``)
  and ``churn_history_s`` how long the book has been continuously usable as of ``t``
  (``(t - OrderBook.valid_since) / 1e6``). Null ``insufficient_history`` when that is under
  60 s (or None): part of the window would be a period whose moves are unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

from feature_service.features.frame import FeatureFrame
from feature_service.market.events import Level

BOOK_UNUSABLE = "book_unusable"
INSUFFICIENT_LEVELS = "insufficient_levels"
INSUFFICIENT_HISTORY = "insufficient_history"
ZERO_DENOMINATOR = "zero_denominator"
ZERO_VARIANCE = "zero_variance"

TOP_LEVELS = 10
SLOPE_MIN_LEVELS = 3
CHURN_WINDOW_S = 60

DEPTHS: tuple[tuple[str, str, int], ...] = (  # (bid name, ask name, levels)
    ("depth_bid_top5", "depth_ask_top5", 5),
    ("depth_bid_top10", "depth_ask_top10", 10),
)

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


def compute_orderbook(
    bids: Sequence[Level],
    asks: Sequence[Level],
    usable: bool,
    churn_changes: int,
    churn_history_s: float | None,
    out: FeatureFrame,
) -> None:
    """Set every order-book feature (see the module docstring for the inputs)."""
    if not usable:
        for name in ORDERBOOK_FEATURES:
            out.null(name, BOOK_UNUSABLE)
        return

    for bid_name, ask_name, n in DEPTHS:
        _set_depth(out, bid_name, bids, n)
        _set_depth(out, ask_name, asks, n)

    if len(bids) < 5 or len(asks) < 5:
        out.null("depth_imbalance_top5", INSUFFICIENT_LEVELS)
    else:
        bid5 = _depth(bids, 5)
        ask5 = _depth(asks, 5)
        total = bid5 + ask5
        if total > 0.0:
            out.set("depth_imbalance_top5", (bid5 - ask5) / total)
        else:
            out.null("depth_imbalance_top5", ZERO_DENOMINATOR)

    _set_slope(out, "slope_bid", bids, -1.0)
    _set_slope(out, "slope_ask", asks, 1.0)

    if churn_history_s is None or churn_history_s < CHURN_WINDOW_S:
        out.null("orderbook_churn_rate", INSUFFICIENT_HISTORY)
    else:
        out.set("orderbook_churn_rate", churn_changes / CHURN_WINDOW_S)


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


def _set_slope(out: FeatureFrame, name: str, levels: Sequence[Level], direction: float) -> None:
    """``direction`` is +1 for asks (distance = p - best) and -1 for bids (best - p)."""
    n = min(len(levels), TOP_LEVELS)
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
