"""The feature catalog: every feature's name, family, window and inputs, in vector order.

Names are the contract with the Feature Registry YAML (version 1.1.0) and with model consumers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    family: str
    lookback: str  # e.g. "0s", "3s", "1m", "24h"
    inputs: tuple[str, ...]  # orderbook / trades / kline / ticker / funding / clock
    dtype: str = "float"


def _f(name: str, family: str, lookback: str, *inputs: str, dtype: str = "float") -> FeatureSpec:
    return FeatureSpec(name, family, lookback, tuple(inputs), dtype)


CATALOG: tuple[FeatureSpec, ...] = (
    # price (book mids and trades)
    _f("mid_price", "price", "0s", "orderbook"),
    _f("spread_abs", "price", "0s", "orderbook"),
    _f("spread_rel", "price", "0s", "orderbook"),
    _f("returns_1s", "price", "1s", "orderbook"),
    _f("returns_3s", "price", "3s", "orderbook"),
    _f("returns_1m", "price", "1m", "orderbook"),
    _f("vwap_3s", "price", "3s", "trades"),
    _f("vwap_15s", "price", "15s", "trades"),
    _f("vwap_1m", "price", "1m", "trades"),
    _f("volume_3s", "price", "3s", "trades"),
    _f("volume_15s", "price", "15s", "trades"),
    _f("volume_1m", "price", "1m", "trades"),
    _f("volatility_1m", "price", "1m", "orderbook"),
    _f("volatility_5m", "price", "5m", "orderbook"),
    # candles (confirmed 1m klines)
    _f("volatility_20_candles", "candles", "20m", "kline"),
    _f("returns_3_candles", "candles", "3m", "kline"),
    _f("volume_zscore", "candles", "101m", "kline"),
    _f("roc_5m", "candles", "6m", "kline"),
    _f("roc_15m", "candles", "16m", "kline"),
    _f("roc_1h", "candles", "61m", "kline"),
    _f("relative_volume_1h", "candles", "1h", "kline"),
    _f("relative_volume_24h", "candles", "24h", "kline"),
    # order flow
    _f("signed_volume_3s", "orderflow", "3s", "trades"),
    _f("signed_volume_15s", "orderflow", "15s", "trades"),
    _f("signed_volume_1m", "orderflow", "1m", "trades"),
    _f("buy_sell_volume_ratio", "orderflow", "3s", "trades"),
    _f("trade_count_3s", "orderflow", "3s", "trades", dtype="int"),
    _f("net_aggressor_pressure", "orderflow", "3s", "trades"),
    # order book
    _f("depth_bid_top5", "orderbook", "0s", "orderbook"),
    _f("depth_bid_top10", "orderbook", "0s", "orderbook"),
    _f("depth_ask_top5", "orderbook", "0s", "orderbook"),
    _f("depth_ask_top10", "orderbook", "0s", "orderbook"),
    _f("depth_imbalance_top5", "orderbook", "0s", "orderbook"),
    _f("slope_bid", "orderbook", "0s", "orderbook"),
    _f("slope_ask", "orderbook", "0s", "orderbook"),
    _f("orderbook_churn_rate", "orderbook", "1m", "orderbook"),
    # perpetual
    _f("funding_rate", "perpetual", "0s", "funding", "ticker"),
    _f("time_to_funding", "perpetual", "0s", "funding", "ticker"),
    # temporal
    _f("time_of_day_sin", "temporal", "0s", "clock"),
    _f("time_of_day_cos", "temporal", "0s", "clock"),
    # technical (confirmed 1m klines, TA-Lib definitions)
    _f("rsi_14", "technical", "15m", "kline"),
    _f("ema_20", "technical", "20m", "kline"),
    _f("macd_line", "technical", "26m", "kline"),
    _f("macd_signal", "technical", "34m", "kline"),
    _f("macd_histogram", "technical", "34m", "kline"),
    _f("bb_upper", "technical", "20m", "kline"),
    _f("bb_lower", "technical", "20m", "kline"),
    _f("bb_width", "technical", "20m", "kline"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in CATALOG)
INT_FEATURES: frozenset[str] = frozenset(s.name for s in CATALOG if s.dtype == "int")
BY_NAME: dict[str, FeatureSpec] = {s.name: s for s in CATALOG}
