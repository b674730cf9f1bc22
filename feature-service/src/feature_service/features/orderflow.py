"""Order-flow features from taker-side trade volume.

``B`` and ``S`` are the taker-buy and taker-sell volume (base quantity) of the trades received
in ``[t - W, t)``:
- signed_volume_3s/15s/1m = B - S. Never null (0 with no trades).
- buy_sell_volume_ratio = B / S over 3 s. Null ``no_trades`` with no trade, ``zero_denominator``
  when there are trades but S = 0 (exactly: the window's sums are exact zeros for an absent side).
- trade_count_3s = number of trades over 3 s (int). Never null.
- net_aggressor_pressure = (B - S) / (B + S) over 3 s, in [-1, 1]. Null ``no_trades``;
  ``zero_denominator`` when every trade had size 0.
"""

from __future__ import annotations

from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S
from feature_service.windows.trades import TradeWindows

NO_TRADES = "no_trades"
ZERO_DENOMINATOR = "zero_denominator"

SIGNED_VOLUME_SPANS: tuple[tuple[str, int], ...] = (
    ("signed_volume_3s", 3 * US_PER_S),
    ("signed_volume_15s", 15 * US_PER_S),
    ("signed_volume_1m", 60 * US_PER_S),
)
SHORT_SPAN_US = 3 * US_PER_S  # ratio, count and pressure

TRADE_SPANS_US: tuple[int, ...] = tuple(span for _, span in SIGNED_VOLUME_SPANS)

ORDERFLOW_FEATURES: tuple[str, ...] = (
    *(name for name, _ in SIGNED_VOLUME_SPANS),
    "buy_sell_volume_ratio",
    "trade_count_3s",
    "net_aggressor_pressure",
)


def compute_orderflow(trades: TradeWindows, t: int, out: FeatureFrame) -> None:
    """Set every order-flow feature as of ``t``; ``trades`` must track ``TRADE_SPANS_US``."""
    for name, span in SIGNED_VOLUME_SPANS:
        stats = trades.stats(span, t)
        out.set(name, stats.buy_volume - stats.sell_volume)

    stats = trades.stats(SHORT_SPAN_US, t)
    buy = stats.buy_volume
    sell = stats.sell_volume
    out.set("trade_count_3s", stats.count)
    if stats.count == 0:
        out.null("buy_sell_volume_ratio", NO_TRADES)
        out.null("net_aggressor_pressure", NO_TRADES)
        return
    if sell > 0.0:
        out.set("buy_sell_volume_ratio", buy / sell)
    else:
        out.null("buy_sell_volume_ratio", ZERO_DENOMINATOR)
    total = buy + sell
    if total > 0.0:
        out.set("net_aggressor_pressure", (buy - sell) / total)
    else:
        out.null("net_aggressor_pressure", ZERO_DENOMINATOR)
