"""Depth where the upstream gives none: which book feeds the depth features, and why they are null.

ws-gateway always subscribes ``orderbook.1.{SYMBOL}``: a book of one level a side. Mid, spread
and churn need no more, but the depth features do (``LEVELS_NEEDED``). Two things follow:

- The stream book's depth is known from its topic (``BookSnapshot.depth``). When it is below what
  a feature needs, the feature's null reason says so (``stream_depth_limited``) instead of the
  generic ``insufficient_levels``, which would suggest a momentarily thin book. Nothing else
  changes: a stream of depth 50 computes them from the stream as always.
- A REST depth book (snapshots marked ``feed == "rest"``, from Bybit's ``/v5/market/orderbook``,
  see ``services/depth_source.py``) may fill the gap. Once one has been received for a symbol,
  the depth features come from the latest REST snapshot received before ``t``, whatever the
  stream's depth; mid, spread and churn stay on the stream. A REST book older than
  ``MAX_REST_AGE_US`` no longer feeds them (null ``depth_stale``): the source has stopped. Its
  age at ``t`` goes into the vector (``depth_age_ms``).

The REST snapshots are ordinary stored inputs, so an offline replay routes them the same way
and reproduces the live vectors exactly. The age limit is a constant, not a setting, for the
same reason: a rebuild must not depend on how the live service was configured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from feature_service.book.orderbook import OrderBook
from feature_service.features.frame import FeatureFrame
from feature_service.features.orderbook import INSUFFICIENT_LEVELS
from feature_service.market.events import US_PER_S, BookSnapshot, Level

REST_FEED: Final = "rest"
STREAM_DEPTH_LIMITED: Final = "stream_depth_limited"
DEPTH_STALE: Final = "depth_stale"
MAX_REST_AGE_US: Final = 10 * US_PER_S
TOP_LEVELS: Final = 10

# Levels per side each depth feature needs (features/orderbook.py).
LEVELS_NEEDED: Final[dict[str, int]] = {
    "depth_bid_top5": 5,
    "depth_bid_top10": 10,
    "depth_ask_top5": 5,
    "depth_ask_top10": 10,
    "depth_imbalance_top5": 5,
    "slope_bid": 3,
    "slope_ask": 3,
}

# compute_orderbook's shape: (bids, asks, usable, churn_changes, churn_history_s, out).
BookFeatures = Callable[
    [Sequence[Level], Sequence[Level], bool, int, float | None, FeatureFrame], None
]


def limited_by(
    stream_depth: int | None, levels_needed: dict[str, int] = LEVELS_NEEDED
) -> list[str]:
    """The depth features a stream of ``stream_depth`` levels can never compute."""
    if stream_depth is None:
        return []
    return [name for name, need in levels_needed.items() if stream_depth < need]


class RestDepthBook:
    """One symbol's latest REST depth snapshot, as a book (for sorting and the usable check)."""

    __slots__ = ("book", "depth", "received_at")

    def __init__(self, symbol: str) -> None:
        self.book = OrderBook(symbol)
        self.received_at: int | None = None
        self.depth: int | None = None

    def apply(self, snapshot: BookSnapshot) -> None:
        self.book.apply(snapshot)
        self.received_at = snapshot.receive_ts
        self.depth = snapshot.depth


def fill_depth(
    out: FeatureFrame,
    t: int,
    stream_depth: int | None,
    rest: RestDepthBook | None,
    compute: BookFeatures,
    levels_needed: dict[str, int] = LEVELS_NEEDED,
    top_levels: int = TOP_LEVELS,
) -> int | None:
    """Finish the depth features of ``out`` (already computed from the stream book): from the
    REST book when there is one, else with the stream-depth reason where it applies. Returns
    the REST book's age at ``t`` in µs (None without a REST book). ``levels_needed`` names the
    depth features of the active registry version (default: the bundled ones)."""
    if rest is not None and rest.received_at is not None:
        age = t - rest.received_at
        if age > MAX_REST_AGE_US:
            for name in levels_needed:
                out.null(name, DEPTH_STALE)
            return age
        scratch = FeatureFrame(out.names, out.ints)
        book = rest.book
        compute(book.top_bids(top_levels), book.top_asks(top_levels), book.usable, 0, None, scratch)
        for name in levels_needed:
            value = scratch.values.get(name)
            if value is None:
                out.null(name, scratch.reasons.get(name, INSUFFICIENT_LEVELS))
            else:
                out.set(name, value)
        return age
    for name in limited_by(stream_depth, levels_needed):
        if out.values.get(name) is None and out.reasons.get(name) == INSUFFICIENT_LEVELS:
            out.null(name, STREAM_DEPTH_LIMITED)
    return None
