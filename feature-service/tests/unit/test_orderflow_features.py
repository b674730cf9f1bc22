"""Order-flow features: hand-computed B and S, one-sided flow, empty windows, eviction by t."""

from __future__ import annotations

import pytest

from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.features.orderflow import (
    ORDERFLOW_FEATURES,
    TRADE_SPANS_US,
    compute_orderflow,
)
from feature_service.market.events import Side, Trade
from feature_service.windows.trades import TradeWindows
from tests.fixtures.events import trade_at

S = 1_000_000
T = 1_700_000_100 * S


def compute(trades: list[Trade], t: int = T) -> FeatureFrame:
    windows = TradeWindows(TRADE_SPANS_US)
    for tr in trades:
        windows.add(tr)
    out = FeatureFrame()
    compute_orderflow(windows, t, out)
    return out


def test_feature_names_are_the_catalog_orderflow_family() -> None:
    assert set(ORDERFLOW_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "orderflow"}


def test_hand_computed_mixed_flow() -> None:
    out = compute(
        [
            trade_at(T - 40 * S, size=10.0, side=Side.SELL),  # 1 m only
            trade_at(T - 12 * S, size=4.0, side=Side.BUY),  # 15 s and 1 m
            trade_at(T - 2 * S, size=3.0, side=Side.BUY),
            trade_at(T - S, size=1.0, side=Side.SELL),
            trade_at(T - 1, size=0.5, side=Side.SELL),
        ]
    )

    assert set(out.values) == set(ORDERFLOW_FEATURES)
    assert out.values["signed_volume_3s"] == 1.5  # 3 - 1.5
    assert out.values["signed_volume_15s"] == 5.5  # 7 - 1.5
    assert out.values["signed_volume_1m"] == -4.5  # 7 - 11.5
    assert out.values["buy_sell_volume_ratio"] == 2.0  # 3 / 1.5
    assert out.values["trade_count_3s"] == 3
    assert isinstance(out.values["trade_count_3s"], int)
    assert out.values["net_aggressor_pressure"] == pytest.approx(1.5 / 4.5, rel=1e-15)
    assert out.reasons == {}


def test_no_trades() -> None:
    out = compute([])
    for name in ("signed_volume_3s", "signed_volume_15s", "signed_volume_1m"):
        assert out.values[name] == 0.0
    assert out.values["trade_count_3s"] == 0
    assert out.reasons["buy_sell_volume_ratio"] == "no_trades"
    assert out.reasons["net_aggressor_pressure"] == "no_trades"
    assert out.values["buy_sell_volume_ratio"] is None
    assert out.values["net_aggressor_pressure"] is None


def test_buys_only_nulls_the_ratio_but_not_the_pressure() -> None:
    out = compute(
        [trade_at(T - S, size=2.0, side=Side.BUY), trade_at(T - S // 2, size=1.0, side=Side.BUY)]
    )
    assert out.values["buy_sell_volume_ratio"] is None
    assert out.reasons["buy_sell_volume_ratio"] == "zero_denominator"
    assert out.values["net_aggressor_pressure"] == 1.0
    assert out.values["signed_volume_3s"] == 3.0


def test_sells_only() -> None:
    out = compute([trade_at(T - S, size=2.0, side=Side.SELL)])
    assert out.values["buy_sell_volume_ratio"] == 0.0
    assert out.values["net_aggressor_pressure"] == -1.0
    assert out.values["signed_volume_3s"] == -2.0


def test_sell_that_left_the_window_no_longer_counts_as_a_denominator() -> None:
    # Sizes whose running sum does not return to 0.0 exactly: the ratio must still be null.
    trades = [
        trade_at(T - 5 * S + k, size=size, side=Side.SELL)
        for k, size in enumerate((1e17, 0.1, 1e9))
    ]
    trades.append(trade_at(T - S, size=1.0, side=Side.BUY))
    out = compute(trades)
    assert out.reasons["buy_sell_volume_ratio"] == "zero_denominator"
    assert out.values["net_aggressor_pressure"] == 1.0


def test_zero_size_trades_null_the_pressure() -> None:
    out = compute(
        [trade_at(T - S, size=0.0, side=Side.BUY), trade_at(T - S, size=0.0, side=Side.SELL)]
    )
    assert out.values["trade_count_3s"] == 2
    assert out.reasons["net_aggressor_pressure"] == "zero_denominator"
    assert out.reasons["buy_sell_volume_ratio"] == "zero_denominator"


def test_quiet_market_evicts_by_t() -> None:
    trades = [trade_at(T - 100 * S + k, size=1.0, side=Side.BUY) for k in range(5)]
    out = compute(trades)
    assert out.values["signed_volume_1m"] == 0.0
    assert out.values["trade_count_3s"] == 0
    assert out.reasons["net_aggressor_pressure"] == "no_trades"
