"""Price features: hand-computed book, returns, VWAP / volume and volatility values; every null
path; the quiet-market trap; volatility against a numpy recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.features.price import (
    MID_HORIZON_S,
    PRICE_FEATURES,
    TRADE_SPANS_US,
    compute_price,
)
from feature_service.market.events import Side
from feature_service.windows.mids import MidGrid
from feature_service.windows.trades import TradeWindows
from tests.fixtures.events import trade_at

S = 1_000_000
T = 1_700_000_100 * S  # the vector's close time


def compute(
    bid: float | None,
    ask: float | None,
    mids: MidGrid | None = None,
    trades: TradeWindows | None = None,
    t: int = T,
) -> FeatureFrame:
    out = FeatureFrame()
    compute_price(
        bid,
        ask,
        mids if mids is not None else MidGrid(),
        t,
        trades if trades is not None else TradeWindows(TRADE_SPANS_US),
        out,
    )
    return out


def grid_of(mids: dict[int, float | None]) -> MidGrid:
    """A grid with ``mids`` keyed by seconds before T, recorded in time order."""
    grid = MidGrid(horizon_s=MID_HORIZON_S)
    for back in sorted(mids, reverse=True):
        grid.record(T - back * S, mids[back])
    return grid


def test_feature_names_are_the_catalog_price_family() -> None:
    assert set(PRICE_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "price"}


def test_every_price_feature_is_set() -> None:
    out = compute(None, None)
    assert set(out.values) == set(PRICE_FEATURES)


def test_mid_and_spread_hand_computed() -> None:
    out = compute(100.0, 102.0)

    assert out.values["mid_price"] == 101.0
    assert out.values["spread_abs"] == 2.0
    assert out.values["spread_rel"] == pytest.approx(2.0 / 101.0, rel=1e-15)


def test_unusable_book_nulls_book_features() -> None:
    grid = grid_of({1: 100.0, 3: 100.0, 60: 100.0})
    for bid, ask in ((None, None), (100.0, None), (None, 101.0)):
        out = compute(bid, ask, grid)
        for name in (
            "mid_price",
            "spread_abs",
            "spread_rel",
            "returns_1s",
            "returns_3s",
            "returns_1m",
        ):
            assert out.values[name] is None
            assert out.reasons[name] == "book_unusable"


def test_returns_hand_computed() -> None:
    grid = grid_of({60: 80.0, 3: 90.0, 1: 99.0})

    out = compute(99.0, 101.0, grid)  # mid(t) = 100

    assert out.values["returns_1s"] == pytest.approx(100.0 / 99.0 - 1.0, rel=1e-15)
    assert out.values["returns_3s"] == pytest.approx(100.0 / 90.0 - 1.0, rel=1e-15)
    assert out.values["returns_1m"] == pytest.approx(0.25, rel=1e-15)


def test_returns_null_when_the_past_mid_is_unknown() -> None:
    grid = grid_of({60: None, 3: 90.0, 1: 99.0})
    out = compute(99.0, 101.0, grid)
    assert out.values["returns_1m"] is None
    assert out.reasons["returns_1m"] == "insufficient_history"
    assert out.values["returns_3s"] is not None

    empty = compute(99.0, 101.0, MidGrid())
    for name in ("returns_1s", "returns_3s", "returns_1m"):
        assert empty.reasons[name] == "insufficient_history"


def test_vwap_and_volume_hand_computed() -> None:
    trades = TradeWindows(TRADE_SPANS_US)
    trades.add(trade_at(T - 50 * S, 200.0, 3.0))  # 1 m only
    trades.add(trade_at(T - 10 * S, 110.0, 1.0, Side.SELL))  # 15 s and 1 m
    trades.add(trade_at(T - 2 * S, 100.0, 1.0))  # all three
    trades.add(trade_at(T - 1, 103.0, 2.0, Side.SELL))  # all three
    trades.add(trade_at(T, 1_000.0, 50.0))  # received at t: next interval

    out = compute(None, None, trades=trades)

    assert out.values["volume_3s"] == 3.0
    assert out.values["vwap_3s"] == pytest.approx((100.0 + 206.0) / 3.0, rel=1e-15)
    assert out.values["volume_15s"] == 4.0
    assert out.values["vwap_15s"] == pytest.approx((110.0 + 100.0 + 206.0) / 4.0, rel=1e-15)
    assert out.values["volume_1m"] == 7.0
    assert out.values["vwap_1m"] == pytest.approx((600.0 + 110.0 + 100.0 + 206.0) / 7.0, rel=1e-15)


def test_no_trades_gives_zero_volume_and_null_vwap() -> None:
    out = compute(100.0, 101.0)
    for span in ("3s", "15s", "1m"):
        assert out.values[f"volume_{span}"] == 0.0
        assert out.values[f"vwap_{span}"] is None
        assert out.reasons[f"vwap_{span}"] == "no_trades"


def test_quiet_market_reports_no_activity_not_stale_values() -> None:
    trades = TradeWindows(TRADE_SPANS_US)
    for k in range(20):
        trades.add(trade_at(T - 200 * S + k * 1000, 100.0 + k, 1.0))
    busy = compute(None, None, trades=trades, t=T - 199 * S)
    assert busy.values["volume_1m"] == 20.0

    # The last trade is ~200 s old: every window must be empty at T.
    quiet = compute(None, None, trades=trades, t=T)

    for span in ("3s", "15s", "1m"):
        assert quiet.values[f"volume_{span}"] == 0.0
        assert quiet.reasons[f"vwap_{span}"] == "no_trades"


def test_zero_size_trades_give_null_vwap_with_zero_denominator() -> None:
    trades = TradeWindows(TRADE_SPANS_US)
    trades.add(trade_at(T - S, 100.0, 0.0))
    out = compute(None, None, trades=trades)
    assert out.values["volume_3s"] == 0.0
    assert out.reasons["vwap_3s"] == "zero_denominator"


def test_volatility_hand_computed_from_two_returns() -> None:
    grid = grid_of({2: 100.0, 1: 101.0})  # only these two boundaries are known
    r1 = math.log(101.0 / 100.0)
    r2 = math.log(99.0 / 101.0)  # to the current mid at t

    out = compute(98.0, 100.0, grid)

    # std (ddof=1) of two values is |a - b| / sqrt(2)
    assert out.values["volatility_1m"] == pytest.approx(abs(r1 - r2) / math.sqrt(2.0), rel=1e-12)
    assert out.values["volatility_5m"] == pytest.approx(abs(r1 - r2) / math.sqrt(2.0), rel=1e-12)


def test_volatility_window_edges() -> None:
    # mid(t - 60) .. mid(t) gives the 60 returns of the 1 m window; mid(t - 61) is outside it.
    grid = grid_of({61: 50.0, 60: 100.0, 59: 101.0, 1: 101.0})
    out = compute(99.0, 103.0, grid)  # current mid 101: returns ln(1.01) and 0 (101 -> 101)

    expected = float(np.std([math.log(101.0 / 100.0), 0.0], ddof=1))
    assert out.values["volatility_1m"] == pytest.approx(expected, rel=1e-12)
    expected_5m = float(np.std([math.log(100.0 / 50.0), math.log(101.0 / 100.0), 0.0], ddof=1))
    assert out.values["volatility_5m"] == pytest.approx(expected_5m, rel=1e-12)


def test_volatility_of_a_constant_mid_is_zero() -> None:
    grid = MidGrid(horizon_s=MID_HORIZON_S)
    grid.record_until(T - 400 * S, 100.0)
    grid.record_until(T, 100.0)
    out = compute(99.5, 100.5, grid)
    assert out.values["volatility_1m"] == 0.0
    assert out.values["volatility_5m"] == 0.0


def test_volatility_null_with_fewer_than_two_returns() -> None:
    one_return = grid_of({1: 100.0})
    out = compute(100.0, 102.0, one_return)
    assert out.reasons["volatility_1m"] == "insufficient_history"
    assert out.reasons["volatility_5m"] == "insufficient_history"

    no_book = compute(None, None, grid_of({2: 100.0, 1: 101.0}))
    assert no_book.reasons["volatility_1m"] == "insufficient_history"


def test_volatility_skips_the_return_to_an_unusable_current_book() -> None:
    grid = grid_of({3: 100.0, 2: 101.0, 1: 99.0})
    out = compute(None, None, grid)
    expected = float(np.std([math.log(101.0 / 100.0), math.log(99.0 / 101.0)], ddof=1))
    assert out.values["volatility_1m"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(11, 17))
def test_volatility_and_returns_match_numpy_over_an_engine_like_run(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_sec = T // S
    grid = MidGrid(horizon_s=MID_HORIZON_S)
    model: dict[int, float | None] = {}  # second -> mid as of that boundary
    level = 50_000.0
    mid: float | None = level
    sec = t_sec - 900
    quiet_until = sec
    while sec < t_sec:
        model[sec] = mid  # the book before any event received at or after this boundary
        if sec >= quiet_until:
            if rng.random() < 0.02:
                quiet_until = sec + int(rng.integers(2, 40))  # no event for a while
            # An event received in [sec, sec + 1): the engine samples the grid, then applies it.
            grid.record_until(sec * S, mid)
            level *= math.exp(rng.normal(0.0, 3e-4))
            roll = rng.random()
            if roll < 0.01:
                mid = None  # the book became unusable (gap, crossed, ...)
            elif mid is not None or roll < 0.2:
                mid = round(level, 1)
        sec += 1
    model[t_sec] = mid
    # The close samples the grid before computing; leave it at t - 1 s now and then (the grid
    # then takes the return ending at t from the current mid alone).
    if grid.last_boundary != (t_sec - 1) * S or rng.random() < 0.5:
        grid.record_until(t_sec * S, mid)
    bid, ask = (None, None) if mid is None else (mid - 0.05, mid + 0.05)

    out = compute(bid, ask, grid)

    current = None if bid is None or ask is None else (bid + ask) / 2.0
    for name, span in (("volatility_1m", 60), ("volatility_5m", 300)):
        series = [model[s] for s in range(t_sec - span, t_sec)] + [current]
        arr = np.array([np.nan if m is None else m for m in series], dtype=float)
        rets = np.log(arr[1:] / arr[:-1])
        rets = rets[~np.isnan(rets)]
        if len(rets) < 2:
            assert out.values[name] is None
        else:
            assert out.values[name] == pytest.approx(float(np.std(rets, ddof=1)), rel=1e-9)
    if current is not None:
        for name, back in (("returns_1s", 1), ("returns_3s", 3), ("returns_1m", 60)):
            past = model[t_sec - back]
            if past is None:
                assert out.reasons[name] == "insufficient_history"
            else:
                assert out.values[name] == pytest.approx(current / past - 1.0, rel=1e-12)
