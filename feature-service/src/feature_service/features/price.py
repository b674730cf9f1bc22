"""Price features: the book's mid and spread, mid returns and volatility, trade VWAP and volume.

At close time ``t`` (microseconds, a whole second):
- mid_price = (best_bid + best_ask) / 2; spread_abs = best_ask - best_bid (quote currency);
  spread_rel = spread_abs / mid_price (a fraction). Null ``book_unusable`` when the book is.
- returns_1s/3s/1m = mid(t) / mid(t - W) - 1, where mid(t) is the current book mid and
  mid(t - W) the grid's mid as of that boundary. Null ``book_unusable`` when the current book is,
  ``insufficient_history`` when the grid does not know mid(t - W).
- vwap_3s/15s/1m = Σ p·v / Σ v over trades received in [t - W, t). Null ``no_trades``.
- volume_3s/15s/1m = Σ v (base quantity) over the same window; never null (0 = no trades).
- volatility_1m/5m = sample std (ddof=1) of the 1 s log returns ln(mid(k) / mid(k - 1 s)) for
  the W boundaries k = t - W + 1 s .. t (60 or 300 returns; mid(t) is the current mid). A return
  with an unknown end is skipped, so a book outage thins the sample instead of voiding it. Not a
  per-second figure scaled to W: it is the std of 1 s returns. Null ``insufficient_history``
  with fewer than 2 known returns.
"""

from __future__ import annotations

from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeWindows

BOOK_UNUSABLE = "book_unusable"
INSUFFICIENT_HISTORY = "insufficient_history"
NO_TRADES = "no_trades"
ZERO_DENOMINATOR = "zero_denominator"

RETURN_SPANS: tuple[tuple[str, int], ...] = (
    ("returns_1s", 1 * US_PER_S),
    ("returns_3s", 3 * US_PER_S),
    ("returns_1m", 60 * US_PER_S),
)
TRADE_SPANS: tuple[tuple[str, str, int], ...] = (  # (vwap name, volume name, span)
    ("vwap_3s", "volume_3s", 3 * US_PER_S),
    ("vwap_15s", "volume_15s", 15 * US_PER_S),
    ("vwap_1m", "volume_1m", 60 * US_PER_S),
)
VOLATILITY_SPANS: tuple[tuple[str, int], ...] = (("volatility_1m", 60), ("volatility_5m", 300))

TRADE_SPANS_US: tuple[int, ...] = tuple(span for _, _, span in TRADE_SPANS)
VOLATILITY_SPANS_S: tuple[int, ...] = tuple(span for _, span in VOLATILITY_SPANS)
MID_HORIZON_S = max(VOLATILITY_SPANS_S) + 1  # the grid must hold mid(t - 300 s) .. mid(t)

PRICE_FEATURES: tuple[str, ...] = (
    "mid_price",
    "spread_abs",
    "spread_rel",
    *(name for name, _ in RETURN_SPANS),
    *(name for name, _, _ in TRADE_SPANS),
    *(name for _, name, _ in TRADE_SPANS),
    *(name for name, _ in VOLATILITY_SPANS),
)


def compute_price(
    best_bid: float | None,
    best_ask: float | None,
    mids: MidGrid,
    t: int,
    trades: TradeWindows,
    out: FeatureFrame,
) -> None:
    """Set every price feature. ``best_bid`` / ``best_ask`` are None when the book is unusable;
    ``trades`` must track ``TRADE_SPANS_US`` and ``mids`` should hold boundaries up to ``t``."""
    mid: float | None = None
    if best_bid is None or best_ask is None:
        for name in ("mid_price", "spread_abs", "spread_rel"):
            out.null(name, BOOK_UNUSABLE)
        for name, _ in RETURN_SPANS:
            out.null(name, BOOK_UNUSABLE)
    else:
        mid = (best_bid + best_ask) / 2.0
        spread = best_ask - best_bid
        out.set("mid_price", mid)
        out.set("spread_abs", spread)
        if mid > 0.0:
            out.set("spread_rel", spread / mid)
        else:  # cannot happen with a usable book of positive prices; never divide by it
            out.null("spread_rel", ZERO_DENOMINATOR)
        for name, span in RETURN_SPANS:
            past = mids.at(t - span)
            if past is None:
                out.null(name, INSUFFICIENT_HISTORY)
            else:
                out.set(name, mid / past - 1.0)

    for vwap_name, volume_name, span in TRADE_SPANS:
        stats = trades.stats(span, t)
        out.set(volume_name, stats.volume)
        if stats.count == 0:
            out.null(vwap_name, NO_TRADES)
        elif stats.volume > 0.0:
            out.set(vwap_name, stats.notional / stats.volume)
        else:  # only zero-size trades
            out.null(vwap_name, ZERO_DENOMINATOR)

    for name, span_s in VOLATILITY_SPANS:
        std = mids.return_moments(span_s, t, mid).std(ddof=1)
        if std is None:
            out.null(name, INSUFFICIENT_HISTORY)
        else:
            out.set(name, std)
