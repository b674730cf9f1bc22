"""Price families: the book's mid and spread, mid returns and volatility, trade VWAP and volume.

At close time ``t`` (microseconds, a whole second), for a window ``W`` (a parameter):
- mid_price = (best_bid + best_ask) / 2; spread_abs = best_ask - best_bid (quote currency);
  spread_rel = spread_abs / mid_price (a fraction). Null ``book_unusable`` when the book is.
- returns_{W} = mid(t) / mid(t - W) - 1, where mid(t) is the current book mid and mid(t - W)
  the grid's mid as of that boundary. Null ``book_unusable`` when the current book is,
  ``insufficient_history`` when the grid does not know mid(t - W).
- vwap_{W} = Σ p·v / Σ v over trades received in [t - W, t). Null ``no_trades``.
- volume_{W} = Σ v (base quantity) over the same window; never null (0 = no trades).
- volatility_{W} = sample std (ddof=1) of the 1 s log returns ln(mid(k) / mid(k - 1 s)) for
  the W boundaries k = t - W + 1 s .. t (mid(t) is the current mid). A return with an unknown
  end is skipped, so a book outage thins the sample instead of voiding it. Not a per-second
  figure scaled to W: it is the std of 1 s returns. Null ``insufficient_history`` with fewer
  than 2 known returns.
"""

from __future__ import annotations

from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family, Param, Params, Requirements
from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeWindows

BOOK_UNUSABLE = "book_unusable"
INSUFFICIENT_HISTORY = "insufficient_history"
NO_TRADES = "no_trades"
ZERO_DENOMINATOR = "zero_denominator"

_WINDOW = (Param("window", "duration", 3),)


class BookTop(Family):
    key = "book_top"
    group = "price"
    inputs = ("orderbook",)
    templates: ClassVar = {o: o for o in ("mid_price", "spread_abs", "spread_rel")}
    short: ClassVar = templates

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        mid = ctx.mid
        if mid is None:
            for name in names.values():
                out.null(name, BOOK_UNUSABLE)
            return
        spread = ctx.ask - ctx.bid  # type: ignore[operator]
        if "mid_price" in names:
            out.set(names["mid_price"], mid)
        if "spread_abs" in names:
            out.set(names["spread_abs"], spread)
        if "spread_rel" in names:
            if mid > 0.0:
                out.set(names["spread_rel"], spread / mid)
            else:  # cannot happen with a usable book of positive prices; never divide by it
                out.null(names["spread_rel"], ZERO_DENOMINATOR)


class _Windowed(Family):
    params = (Param("window", "duration", 3, minimum=1, maximum=86400),)

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return int(params["window"])


class Returns(_Windowed):
    key = "returns"
    group = "price"
    inputs = ("orderbook",)
    templates: ClassVar = {"": "returns_{window}"}
    warmup = "W of book history"
    params = (Param("window", "duration", 1, minimum=1, maximum=3600),)
    __slots__ = ("_name", "_span")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = names[""]
        self._span = int(params["window"]) * US_PER_S

    def require(self, req: Requirements) -> None:
        req.mid_horizon_s = max(req.mid_horizon_s, int(self.p["window"]) + 1)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        mid = ctx.mid
        if mid is None:
            out.null(self._name, BOOK_UNUSABLE)
            return
        past = ctx.mids.at(ctx.t - self._span)  # type: ignore[union-attr]
        if past is None:
            out.null(self._name, INSUFFICIENT_HISTORY)
        else:
            out.set(self._name, mid / past - 1.0)


class Volatility(_Windowed):
    key = "volatility"
    group = "price"
    inputs = ("orderbook",)
    templates: ClassVar = {"": "volatility_{window}"}
    warmup = "W of book history (2 returns at least)"
    params = (Param("window", "duration", 60, minimum=2, maximum=3600),)
    __slots__ = ("_name", "_span_s")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = names[""]
        self._span_s = int(params["window"])

    def require(self, req: Requirements) -> None:
        req.mid_return_spans_s.add(self._span_s)
        req.mid_horizon_s = max(req.mid_horizon_s, self._span_s + 1)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        std = ctx.mids.return_moments(self._span_s, ctx.t, ctx.mid).std(ddof=1)  # type: ignore[union-attr]
        if std is None:
            out.null(self._name, INSUFFICIENT_HISTORY)
        else:
            out.set(self._name, std)


class TradeWindowFamily(_Windowed):
    """Base of the families that read one trade window (``window`` seconds)."""

    inputs = ("trades",)
    __slots__ = ("_name", "_span")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = next(iter(names.values()))
        self._span = int(params["window"]) * US_PER_S

    def require(self, req: Requirements) -> None:
        req.trade_spans_us.add(self._span)


class Vwap(TradeWindowFamily):
    key = "vwap"
    group = "price"
    templates: ClassVar = {"": "vwap_{window}"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        stats = ctx.trade_stats(self._span)
        if stats.count == 0:
            out.null(self._name, NO_TRADES)
        elif stats.volume > 0.0:
            out.set(self._name, stats.notional / stats.volume)
        else:  # only zero-size trades
            out.null(self._name, ZERO_DENOMINATOR)


class Volume(TradeWindowFamily):
    key = "volume"
    group = "price"
    templates: ClassVar = {"": "volume_{window}"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        out.set(self._name, ctx.trade_stats(self._span).volume)


FAMILIES: tuple[type[Family], ...] = (BookTop, Returns, Vwap, Volume, Volatility)

# The bundled registry's price features, in vector order.
PRICE_FEATURES: tuple[str, ...] = (
    "mid_price",
    "spread_abs",
    "spread_rel",
    "returns_1s",
    "returns_3s",
    "returns_1m",
    "vwap_3s",
    "vwap_15s",
    "vwap_1m",
    "volume_3s",
    "volume_15s",
    "volume_1m",
    "volatility_1m",
    "volatility_5m",
)
TRADE_SPANS_US: tuple[int, ...] = (3 * US_PER_S, 15 * US_PER_S, 60 * US_PER_S)
MID_HORIZON_S = 301  # the grid must hold mid(t - 300 s) .. mid(t)


def compute_price(
    best_bid: float | None,
    best_ask: float | None,
    mids: MidGrid,
    t: int,
    trades: TradeWindows,
    out: FeatureFrame,
) -> None:
    """The bundled price features on explicit inputs (``best_bid`` / ``best_ask`` None when the
    book is unusable), computed by the same operators ``SymbolState`` runs."""
    from feature_service.features.library import run_group

    ctx = ComputeContext(trades=trades, mids=mids)
    ctx.at(t)
    ctx.set_top(best_bid, best_ask)
    run_group(PRICE_FEATURES, ctx, out)
