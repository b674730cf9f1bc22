"""Feature families as objects: names derived from family + parameters and parsed back, lookbacks
from parameters, and parameterised operators against independent references (TA-Lib for the
indicators at other periods, brute force for trade windows, book depth and candle windows)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import talib

from feature_service.features.catalog import BUNDLED_PLAN, FEATURE_NAMES
from feature_service.features.library import FAMILIES, FeaturePlan, resolve
from feature_service.features.state import SymbolState
from feature_service.market.events import Side
from tests.fixtures.events import book_snapshot, minute_kline, trade_at

S = 1_000_000
T0 = 1_700_000_000 * S


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_every_bundled_name_parses_to_a_family_that_derives_it_again(name: str) -> None:
    d = resolve(name)
    again = resolve(name, d.family, d.spec()["params"])
    assert again.name == name == d.name


@pytest.mark.parametrize(
    ("family", "params", "name", "lookback_s"),
    [
        ("vwap", {"window": "30s"}, "vwap_30s", 30),
        ("volume", {"window": "2m"}, "volume_2m", 120),
        ("signed_volume", {"window": 45}, "signed_volume_45s", 45),
        ("trade_count", {"window": "1m"}, "trade_count_1m", 60),
        ("buy_sell_volume_ratio", {"window": "15s"}, "buy_sell_volume_ratio_15s", 15),
        ("returns", {"window": "5m"}, "returns_5m", 300),
        ("volatility", {"window": "15m"}, "volatility_15m", 900),
        ("depth", {"levels": 20}, "depth_bid_top20", 0),
        ("slope", {"levels": 5}, "slope_bid_top5", 0),
        ("rsi", {"period": 7}, "rsi_7", 8 * 60),
        ("ema", {"period": 50}, "ema_50", 50 * 60),
        ("macd", {"fast": 5, "slow": 13, "signal": 4}, "macd_signal_5_13_4", 16 * 60),
        ("bollinger", {"period": 10, "k": 2.5}, "bb_upper_10_2p5", 10 * 60),
        ("roc", {"window": "30m"}, "roc_30m", 31 * 60),
        ("relative_volume", {"window": "4h"}, "relative_volume_4h", 4 * 3600),
        ("candle_volatility", {"candles": 10}, "volatility_10_candles", 10 * 60),
        ("volume_zscore", {"candles": 50}, "volume_zscore_50", 51 * 60),
    ],
)
def test_names_and_lookbacks_are_derived_from_family_and_params(
    family: str, params: dict[str, object], name: str, lookback_s: int
) -> None:
    output_hint = name if len(FAMILIES[family].templates) > 1 else None
    d = resolve(output_hint, family, params)
    assert d.name == name
    assert d.lookback_s == lookback_s
    assert resolve(name) == d  # the name alone means the same


@pytest.mark.parametrize(
    ("name", "family", "params", "fragment"),
    [
        ("vwap_30s", "vwapp", None, "unknown family"),
        (None, "vwap", {"span": "30s"}, "unknown parameters"),
        (None, "rsi", {"period": 1}, "out of range"),
        ("vwap_15s", "vwap", {"window": "30s"}, "does not match"),
        ("roc_60m", None, None, "is written 'roc_1h'"),
        ("future_price", None, None, "unknown feature"),
        (None, "macd", {"fast": 26, "slow": 12}, "fast < slow"),
        (None, "roc", {"window": "90s"}, "whole minutes"),
    ],
)
def test_bad_definitions_say_why(
    name: str | None, family: str | None, params: dict[str, object] | None, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        resolve(name, family, params)


def test_plan_requirements_size_the_windows_from_the_operators() -> None:
    plan = FeaturePlan.from_names(["vwap_30s", "volatility_10m", "depth_ask_top20", "rsi_7"])
    req = plan.requirements
    assert req.trade_spans_us == {30 * S}
    assert req.mid_return_spans_s == {600} and req.mid_horizon_s == 601
    assert req.book_levels == 20
    assert plan.inputs == {"trades", "orderbook", "kline"}
    assert plan.max_lookback_s == 600


def test_bundled_plan_is_the_48_catalog_features_in_order() -> None:
    assert len(BUNDLED_PLAN.names) == 48
    assert BUNDLED_PLAN.int_names == {"trade_count_3s"}


# -- parameterised operators against independent references ----------------------------------


def _closes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))


def _state_with_klines(names: list[str], closes: np.ndarray, volumes: np.ndarray) -> SymbolState:
    state = SymbolState("BTCUSDT", FeaturePlan.from_names(names))
    for i, (c, v) in enumerate(zip(closes, volumes, strict=True)):
        state.apply(minute_kline(i, float(c), float(v)))
    return state


@pytest.mark.parametrize("period", [2, 7, 30])
def test_rsi_and_ema_at_other_periods_equal_talib(period: int) -> None:
    closes = _closes(300, seed=period)
    names = [f"rsi_{period}", f"ema_{period}"]
    state = _state_with_klines(names, closes, np.ones_like(closes))
    values = state.compute(T0).values
    assert values[f"rsi_{period}"] == pytest.approx(talib.RSI(closes, period)[-1], rel=1e-9)
    assert values[f"ema_{period}"] == pytest.approx(talib.EMA(closes, period)[-1], rel=1e-9)


def test_macd_and_bollinger_with_other_parameters_equal_talib() -> None:
    closes = _closes(200, seed=5)
    names = [
        "macd_line_5_13_4",
        "macd_signal_5_13_4",
        "macd_histogram_5_13_4",
        "bb_upper_10_1p5",
        "bb_lower_10_1p5",
        "bb_width_10_1p5",
    ]
    values = _state_with_klines(names, closes, np.ones_like(closes)).compute(T0).values
    line, signal, hist = talib.MACD(closes, 5, 13, 4)
    upper, middle, lower = talib.BBANDS(closes, 10, 1.5, 1.5, 0)
    assert values["macd_line_5_13_4"] == pytest.approx(line[-1], rel=1e-9)
    assert values["macd_signal_5_13_4"] == pytest.approx(signal[-1], rel=1e-9)
    assert values["macd_histogram_5_13_4"] == pytest.approx(hist[-1], rel=1e-9, abs=1e-12)
    assert values["bb_upper_10_1p5"] == pytest.approx(upper[-1], rel=1e-9)
    assert values["bb_lower_10_1p5"] == pytest.approx(lower[-1], rel=1e-9)
    width = (upper[-1] - lower[-1]) / middle[-1]
    assert values["bb_width_10_1p5"] == pytest.approx(width, rel=1e-6)


def test_candle_windows_at_other_lengths_equal_brute_force() -> None:
    closes = _closes(200, seed=8)
    volumes = np.random.default_rng(9).lognormal(3.0, 0.5, 200)
    names = [
        "volatility_10_candles",
        "returns_7_candles",
        "volume_zscore_50",
        "roc_30m",
        "relative_volume_2h",
    ]
    values = _state_with_klines(names, closes, volumes).compute(T0).values
    last10 = closes[-10:]
    assert values["volatility_10_candles"] == pytest.approx(
        (last10[1:] / last10[:-1] - 1.0).std(ddof=1), rel=1e-9
    )
    assert values["returns_7_candles"] == pytest.approx(closes[-1] / closes[-7] - 1.0, rel=1e-12)
    prev = volumes[-51:-1]
    assert values["volume_zscore_50"] == pytest.approx(
        (volumes[-1] - prev.mean()) / prev.std(), rel=1e-9
    )
    assert values["roc_30m"] == pytest.approx(closes[-1] / closes[-31] - 1.0, rel=1e-12)
    assert values["relative_volume_2h"] == pytest.approx(
        volumes[-1] / volumes[-120:].mean(), rel=1e-9
    )


@pytest.mark.parametrize("window_s", [1, 7, 30, 90])
def test_trade_windows_at_other_lengths_equal_brute_force(window_s: int) -> None:
    rng = random.Random(window_s)
    w = window_s
    names = [
        resolve(None, fam, {"window": w}).name
        for fam in ("vwap", "volume", "signed_volume", "trade_count")
    ]
    state = SymbolState("BTCUSDT", FeaturePlan.from_names(names))
    trades = []
    ts = T0
    for _ in range(400):
        ts += rng.randint(0, 600_000)
        trade = trade_at(ts, rng.uniform(99, 101), rng.uniform(0, 2), rng.choice(list(Side)))
        trades.append(trade)
        state.apply(trade)
    t = (ts // S + 1) * S
    got = state.compute(t).values
    inside = [x for x in trades if t - w * S <= x.receive_ts < t]
    buy = sum(x.size for x in inside if x.side is Side.BUY)
    sell = sum(x.size for x in inside if x.side is Side.SELL)
    volume = sum(x.size for x in inside)
    assert got[names[3]] == len(inside)
    assert got[names[1]] == pytest.approx(volume, rel=1e-12, abs=1e-12)
    assert got[names[2]] == pytest.approx(buy - sell, rel=1e-9, abs=1e-12)
    if inside:
        vwap = sum(x.price * x.size for x in inside) / volume
        assert got[names[0]] == pytest.approx(vwap, rel=1e-12)


def test_depth_top_n_and_slope_over_other_depths_equal_brute_force() -> None:
    bids = [(100.0 - 0.5 * i, 1.0 + 0.1 * i * i) for i in range(25)]
    asks = [(100.5 + 0.5 * i, 2.0 + 0.3 * i) for i in range(25)]
    names = ["depth_bid_top20", "depth_ask_top20", "depth_imbalance_top20", "slope_ask_top5"]
    state = SymbolState("BTCUSDT", FeaturePlan.from_names(names))
    state.apply(book_snapshot(1, bids, asks, T0 - S))
    got = state.compute(T0).values
    db = sum(s for _, s in bids[:20])
    da = sum(s for _, s in asks[:20])
    assert got["depth_bid_top20"] == pytest.approx(db, rel=1e-12)
    assert got["depth_ask_top20"] == pytest.approx(da, rel=1e-12)
    assert got["depth_imbalance_top20"] == pytest.approx((db - da) / (db + da), rel=1e-12)
    x = np.array([(p - asks[0][0]) / asks[0][0] for p, _ in asks[:5]])
    y = np.array([s for _, s in asks[:5]])
    assert got["slope_ask_top5"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert list(state.compute(T0 + S).complete()) == names


def test_a_plan_publishes_exactly_its_names_in_its_order() -> None:
    names = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["vwap_30s", "rsi_7"]
    state = SymbolState("BTCUSDT", FeaturePlan.from_names(names))
    vector = state.compute(T0).complete()
    assert list(vector) == names
