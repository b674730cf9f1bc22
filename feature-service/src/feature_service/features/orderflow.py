"""Order-flow families from taker-side trade volume.

``B`` and ``S`` are the taker-buy and taker-sell volume (base quantity) of the trades received
in ``[t - W, t)``, ``W`` the family's ``window`` parameter:
- signed_volume_{W} = B - S. Never null (0 with no trades).
- trade_count_{W} = number of trades (int). Never null.
- buy_sell_volume_ratio = B / S (W = 3 s by default; other windows are named
  ``buy_sell_volume_ratio_{W}``). Null ``no_trades`` with no trade, ``zero_denominator`` when
  there are trades but S = 0 (exactly: the window's sums are exact zeros for an absent side).
- net_aggressor_pressure = (B - S) / (B + S), in [-1, 1] (3 s by default, as above). Null
  ``no_trades``; ``zero_denominator`` when every trade had size 0.
"""

from __future__ import annotations

from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame
from feature_service.features.price import TradeWindowFamily
from feature_service.market.events import US_PER_S
from feature_service.windows.trades import TradeWindows

NO_TRADES = "no_trades"
ZERO_DENOMINATOR = "zero_denominator"


class SignedVolume(TradeWindowFamily):
    key = "signed_volume"
    group = "orderflow"
    templates: ClassVar = {"": "signed_volume_{window}"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        stats = ctx.trade_stats(self._span)
        out.set(self._name, stats.buy_volume - stats.sell_volume)


class TradeCount(TradeWindowFamily):
    key = "trade_count"
    group = "orderflow"
    templates: ClassVar = {"": "trade_count_{window}"}
    int_outputs = frozenset({""})

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        out.set(self._name, ctx.trade_stats(self._span).count)


class BuySellRatio(TradeWindowFamily):
    key = "buy_sell_volume_ratio"
    group = "orderflow"
    templates: ClassVar = {"": "buy_sell_volume_ratio_{window}"}
    short: ClassVar = {"": "buy_sell_volume_ratio"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        stats = ctx.trade_stats(self._span)
        if stats.count == 0:
            out.null(self._name, NO_TRADES)
        elif stats.sell_volume > 0.0:
            out.set(self._name, stats.buy_volume / stats.sell_volume)
        else:
            out.null(self._name, ZERO_DENOMINATOR)


class AggressorPressure(TradeWindowFamily):
    key = "net_aggressor_pressure"
    group = "orderflow"
    templates: ClassVar = {"": "net_aggressor_pressure_{window}"}
    short: ClassVar = {"": "net_aggressor_pressure"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        stats = ctx.trade_stats(self._span)
        if stats.count == 0:
            out.null(self._name, NO_TRADES)
            return
        buy = stats.buy_volume
        sell = stats.sell_volume
        total = buy + sell
        if total > 0.0:
            out.set(self._name, (buy - sell) / total)
        else:
            out.null(self._name, ZERO_DENOMINATOR)


FAMILIES: tuple[type[Family], ...] = (SignedVolume, TradeCount, BuySellRatio, AggressorPressure)

ORDERFLOW_FEATURES: tuple[str, ...] = (
    "signed_volume_3s",
    "signed_volume_15s",
    "signed_volume_1m",
    "buy_sell_volume_ratio",
    "trade_count_3s",
    "net_aggressor_pressure",
)
TRADE_SPANS_US: tuple[int, ...] = (3 * US_PER_S, 15 * US_PER_S, 60 * US_PER_S)


def compute_orderflow(trades: TradeWindows, t: int, out: FeatureFrame) -> None:
    """The bundled order-flow features as of ``t``, by the operators ``SymbolState`` runs."""
    from feature_service.features.library import run_group

    ctx = ComputeContext(trades=trades)
    ctx.at(t)
    run_group(ORDERFLOW_FEATURES, ctx, out)
