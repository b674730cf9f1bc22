"""Incremental technical indicators against TA-Lib, hand-computed cases and warm-up lengths."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import talib

from feature_service.features.frame import FeatureFrame
from feature_service.features.technical import (
    TECHNICAL_FEATURES,
    Bollinger,
    Ema,
    Macd,
    RsiWilder,
    TechnicalIndicators,
)

TOL = {"rtol": 1e-9, "atol": 1e-9}


def _random_walk(n: int = 3000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 30_000.0 + np.cumsum(rng.normal(0.0, 25.0, n))


def _series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "random_walk": _random_walk(),
        "constant": np.full(600, 42_000.5),
        "monotonic_up": np.linspace(100.0, 700.0, 600),
        "monotonic_down": np.linspace(700.0, 100.0, 600),
        "large_tiny_moves": 1e5 + np.cumsum(rng.normal(0.0, 1e-3, 2000)),
        "small_price": 1e-4 * (1.0 + np.cumsum(rng.normal(0.0, 1e-3, 1500))),
    }


SERIES = _series()


def _run(make: Callable[[], object], closes: np.ndarray, read: Callable[[object], float | None]):
    op = make()
    out = np.empty(len(closes))
    for i, close in enumerate(closes):
        op.update(float(close))  # type: ignore[attr-defined]
        value = read(op)
        out[i] = np.nan if value is None else value
    return out


def _first_valid(values: np.ndarray) -> int:
    return int(np.argmax(~np.isnan(values)))


def _assert_matches(ours: np.ndarray, ref: np.ndarray) -> None:
    assert _first_valid(ours) == _first_valid(ref)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    valid = ~np.isnan(ref)
    np.testing.assert_allclose(ours[valid], ref[valid], **TOL)


@pytest.mark.parametrize("name", list(SERIES))
def test_rsi_matches_talib(name: str) -> None:
    closes = SERIES[name]
    ours = _run(lambda: RsiWilder(14), closes, lambda op: op.value)
    _assert_matches(ours, talib.RSI(closes, 14))
    assert _first_valid(ours) == 14


@pytest.mark.parametrize("name", list(SERIES))
def test_ema_matches_talib(name: str) -> None:
    closes = SERIES[name]
    ours = _run(lambda: Ema(20), closes, lambda op: op.value)
    _assert_matches(ours, talib.EMA(closes, 20))
    assert _first_valid(ours) == 19


@pytest.mark.parametrize("name", list(SERIES))
def test_macd_signal_and_histogram_match_talib(name: str) -> None:
    closes = SERIES[name]
    _, ref_signal, ref_hist = talib.MACD(closes, 12, 26, 9)
    signal = _run(lambda: Macd(12, 26, 9), closes, lambda op: op.signal)
    hist = _run(lambda: Macd(12, 26, 9), closes, lambda op: op.histogram)
    _assert_matches(signal, ref_signal)
    _assert_matches(hist, ref_hist)
    assert _first_valid(signal) == 33


@pytest.mark.parametrize("name", list(SERIES))
def test_macd_line_matches_talib_from_bar_26(name: str) -> None:
    closes = SERIES[name]
    ref_line, _, _ = talib.MACD(closes, 12, 26, 9)
    line = _run(lambda: Macd(12, 26, 9), closes, lambda op: op.line)
    # talib.MACD hides the line until the signal exists (bar 34); from there it must match.
    np.testing.assert_allclose(line[33:], ref_line[33:], **TOL)
    # Before that, the line is TA-Lib's internal one: EMA12 seeded on closes 15..26 minus EMA26.
    aligned = np.full(len(closes), np.nan)
    aligned[14:] = talib.EMA(closes[14:], 12)
    aligned -= talib.EMA(closes, 26)
    _assert_matches(line, aligned)
    assert _first_valid(line) == 25


def test_macd_line_differs_from_naively_seeded_ema12() -> None:
    closes = SERIES["random_walk"]
    line = _run(lambda: Macd(12, 26, 9), closes, lambda op: op.line)
    naive = talib.EMA(closes, 12) - talib.EMA(closes, 26)
    assert abs(line[25] - naive[25]) > 1e-6


@pytest.mark.parametrize("name", list(SERIES))
def test_bollinger_bands_match_talib(name: str) -> None:
    closes = SERIES[name]
    ref_upper, ref_middle, ref_lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)
    upper = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.upper)
    middle = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.middle)
    lower = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.lower)
    _assert_matches(upper, ref_upper)
    _assert_matches(middle, ref_middle)
    _assert_matches(lower, ref_lower)
    assert _first_valid(upper) == 19


@pytest.mark.parametrize("name", [n for n in SERIES if n != "large_tiny_moves"])
def test_bollinger_width_matches_talib(name: str) -> None:
    closes = SERIES[name]
    ref_upper, ref_middle, ref_lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)
    ref_width = (ref_upper - ref_lower) / ref_middle
    width = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.width)
    valid = ~np.isnan(ref_width)
    np.testing.assert_allclose(width[valid], ref_width[valid], rtol=1e-9, atol=0.0)


def _exact_window_std(closes: np.ndarray, period: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(closes, period)
    return windows.std(axis=1)  # two-pass, no cancellation


def test_bollinger_std_is_exact_for_large_prices_with_tiny_moves() -> None:
    # TA-Lib's own std is ~5e-9 relative off here, so the width is checked against an exact
    # two-pass computation instead (and against TA-Lib only loosely).
    closes = SERIES["large_tiny_moves"]
    std = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.std)
    np.testing.assert_allclose(std[19:], _exact_window_std(closes, 20), rtol=1e-9, atol=0.0)
    ref_upper, ref_middle, ref_lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)
    width = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.width)
    ref_width = (ref_upper - ref_lower) / ref_middle
    np.testing.assert_allclose(width[19:], ref_width[19:], rtol=1e-6, atol=0.0)


def test_bollinger_does_not_drift_over_many_bars_and_a_regime_change() -> None:
    rng = np.random.default_rng(5)
    closes = np.concatenate(
        [
            1e6 + np.cumsum(rng.normal(0.0, 500.0, 10_000)),
            0.5 + np.cumsum(rng.normal(0.0, 1e-4, 10_000)),
        ]
    )
    std = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.std)
    np.testing.assert_allclose(std[19:], _exact_window_std(closes, 20), rtol=1e-9, atol=0.0)
    middle = _run(lambda: Bollinger(20, 2.0), closes, lambda op: op.middle)
    exact_mean = np.lib.stride_tricks.sliding_window_view(closes, 20).mean(axis=1)
    np.testing.assert_allclose(middle[19:], exact_mean, rtol=1e-12, atol=0.0)
    # The series is hard on purpose: a single running sum (what TA-Lib's SMA keeps) carries the
    # 1e6 regime's rounding into the 0.5 regime.
    naive_sum = 0.0
    for i, close in enumerate(closes):
        naive_sum += close - (closes[i - 20] if i >= 20 else 0.0)
    assert abs(naive_sum / 20 - exact_mean[-1]) / exact_mean[-1] > 1e-10


def test_bollinger_constant_window_after_moves_has_exactly_zero_width() -> None:
    bb = Bollinger(20, 2.0)
    for close in _random_walk(500):
        bb.update(float(close))
    for _ in range(20):
        bb.update(123.456)
    assert bb.bands() == (123.456, 123.456, 123.456, 0.0)


def test_bollinger_hand_computed() -> None:
    bb = Bollinger(3, 2.0)
    for close in (1.0, 2.0):
        bb.update(close)
        assert bb.bands() is None
    bb.update(3.0)
    std = math.sqrt(2.0 / 3.0)
    lower, middle, upper, width = bb.bands()  # type: ignore[misc]
    assert middle == pytest.approx(2.0, abs=1e-15)
    assert upper == pytest.approx(2.0 + 2.0 * std, rel=1e-15)
    assert lower == pytest.approx(2.0 - 2.0 * std, rel=1e-15)
    assert width == pytest.approx(4.0 * std / 2.0, rel=1e-15)
    bb.update(7.0)  # window 2, 3, 7: the 1 left
    assert bb.middle == pytest.approx(4.0, rel=1e-15)
    assert bb.std == pytest.approx(math.sqrt((4.0 + 1.0 + 9.0) / 3.0), rel=1e-15)


def test_bollinger_width_is_none_when_middle_is_zero() -> None:
    bb = Bollinger(20, 2.0)
    for i in range(20):
        bb.update(1.0 if i % 2 else -1.0)
    lower, middle, upper, width = bb.bands()  # type: ignore[misc]
    assert middle == 0.0
    assert upper == pytest.approx(2.0)
    assert lower == pytest.approx(-2.0)
    assert width is None


def test_ema_hand_computed() -> None:
    ema = Ema(3)  # k = 0.5
    for close in (1.0, 2.0):
        ema.update(close)
        assert ema.value is None and not ema.ready
    ema.update(3.0)
    assert ema.value == 2.0 and ema.ready
    ema.update(4.0)
    assert ema.value == 3.0
    ema.update(1.0)
    assert ema.value == 2.0


def test_rsi_hand_computed() -> None:
    rsi = RsiWilder(2)
    rsi.update(1.0)
    rsi.update(2.0)
    assert rsi.value is None
    rsi.update(1.0)  # changes +1, -1: averages 0.5 and 0.5
    assert rsi.value == 50.0
    rsi.update(3.0)  # gain (0.5 + 2) / 2 = 1.25, loss (0.5 + 0) / 2 = 0.25
    assert rsi.value == pytest.approx(100.0 * 1.25 / 1.5, rel=1e-15)


def test_rsi_without_any_move_is_zero_like_talib() -> None:
    closes = np.full(40, 100.0)
    rsi = RsiWilder(14)
    values = []
    for close in closes:
        rsi.update(float(close))
        values.append(rsi.value)
    assert values[13] is None
    assert values[14:] == [0.0] * 26
    assert list(talib.RSI(closes, 14)[14:]) == [0.0] * 26


def test_rsi_monotonic_series_saturate() -> None:
    up = _run(lambda: RsiWilder(14), SERIES["monotonic_up"], lambda op: op.value)
    down = _run(lambda: RsiWilder(14), SERIES["monotonic_down"], lambda op: op.value)
    assert np.all(up[14:] == 100.0)
    assert np.all(down[14:] == 0.0)


def test_rsi_keeps_its_value_when_prices_go_flat_after_moving() -> None:
    closes = np.concatenate([_random_walk(40), np.full(2000, 30_000.0)])
    ours = _run(lambda: RsiWilder(14), closes, lambda op: op.value)
    ref = talib.RSI(closes, 14)
    np.testing.assert_allclose(ours[14:], ref[14:], **TOL)
    assert 0.0 < ours[-1] < 100.0


@pytest.mark.parametrize(
    "make",
    [lambda: RsiWilder(14), lambda: Ema(20), lambda: Macd(12, 26, 9), lambda: Bollinger(20, 2.0)],
)
def test_reset_restarts_warm_up_and_reproduces_values(make: Callable[[], object]) -> None:
    closes = _random_walk(200)
    op = make()

    def snapshot() -> tuple[object, ...]:
        if isinstance(op, Macd):
            return (op.line, op.signal, op.histogram)
        if isinstance(op, Bollinger):
            return (op.bands(),)
        return (op.value,)  # type: ignore[attr-defined]

    first = []
    for close in closes:
        op.update(float(close))  # type: ignore[attr-defined]
        first.append(snapshot())
    assert op.ready  # type: ignore[attr-defined]
    op.reset()  # type: ignore[attr-defined]
    assert not op.ready  # type: ignore[attr-defined]
    second = []
    for close in closes:
        op.update(float(close))  # type: ignore[attr-defined]
        second.append(snapshot())
    assert first == second


@pytest.mark.parametrize(
    "make",
    [
        lambda: Ema(1),
        lambda: RsiWilder(1),
        lambda: Macd(26, 12, 9),
        lambda: Macd(12, 12, 9),
        lambda: Bollinger(1),
        lambda: Bollinger(20, -1.0),
    ],
)
def test_invalid_parameters_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_bundle_nulls_every_feature_while_warming_up() -> None:
    bundle = TechnicalIndicators()
    for close in _random_walk(14):
        bundle.update(float(close))
    out = FeatureFrame()
    bundle.compute(out)
    assert set(out.values) == set(TECHNICAL_FEATURES)
    assert all(out.values[name] is None for name in TECHNICAL_FEATURES)
    assert all(out.reasons[name] == "warming_up" for name in TECHNICAL_FEATURES)


def test_bundle_warm_up_order_follows_talib_lookbacks() -> None:
    closes = _random_walk(40)
    bundle = TechnicalIndicators()
    first_set: dict[str, int] = {}
    for i, close in enumerate(closes):
        bundle.update(float(close))
        out = FeatureFrame()
        bundle.compute(out)
        for name in TECHNICAL_FEATURES:
            if out.values[name] is not None:
                first_set.setdefault(name, i)
    assert first_set == {
        "rsi_14": 14,
        "ema_20": 19,
        "bb_upper": 19,
        "bb_lower": 19,
        "bb_width": 19,
        "macd_line": 25,
        "macd_signal": 33,
        "macd_histogram": 33,
    }


def test_bundle_values_equal_talib_after_warm_up() -> None:
    closes = _random_walk(500, seed=3)
    bundle = TechnicalIndicators()
    for close in closes:
        bundle.update(float(close))
    out = FeatureFrame()
    bundle.compute(out)
    line, signal, hist = talib.MACD(closes, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)
    expected = {
        "rsi_14": talib.RSI(closes, 14)[-1],
        "ema_20": talib.EMA(closes, 20)[-1],
        "macd_line": line[-1],
        "macd_signal": signal[-1],
        "macd_histogram": hist[-1],
        "bb_upper": upper[-1],
        "bb_lower": lower[-1],
        "bb_width": (upper[-1] - lower[-1]) / middle[-1],
    }
    for name, value in expected.items():
        assert out.values[name] == pytest.approx(value, rel=1e-9), name
    assert out.reasons == {}


def test_bundle_reports_zero_middle_as_zero_base() -> None:
    bundle = TechnicalIndicators()
    for _ in range(40):
        bundle.update(0.0)
    out = FeatureFrame()
    bundle.compute(out)
    assert out.values["bb_upper"] == 0.0
    assert out.values["bb_lower"] == 0.0
    assert out.values["bb_width"] is None
    assert out.reasons["bb_width"] == "zero_base"
    assert out.values["rsi_14"] == 0.0
    assert out.values["macd_histogram"] == 0.0
