"""Candle features: hand-computed cases, warm-up edges, null reasons, and a pandas recomputation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feature_service.features.candles import CANDLE_FEATURES, compute_candles
from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.windows.klines import KlineHistory
from tests.fixtures.events import history_of, minute_kline


def features(history: KlineHistory) -> FeatureFrame:
    out = FeatureFrame()
    compute_candles(history, out)
    return out


def test_feature_names_are_the_catalog_candle_family() -> None:
    assert set(CANDLE_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "candles"}


def test_empty_history_nulls_every_feature_as_warming_up() -> None:
    out = features(KlineHistory())
    assert set(out.values) == set(CANDLE_FEATURES)
    assert all(v is None for v in out.values.values())
    assert set(out.reasons.values()) == {"warming_up"}


# --- returns_3_candles and roc ----------------------------------------------------------------


def test_returns_3_candles_hand_computed() -> None:
    out = features(history_of([100.0, 110.0, 121.0]))
    assert out.values["returns_3_candles"] == pytest.approx(0.21, rel=1e-15)


def test_returns_3_candles_uses_the_last_three() -> None:
    out = features(history_of([1.0, 2.0, 50.0, 80.0, 40.0]))
    assert out.values["returns_3_candles"] == pytest.approx(40.0 / 50.0 - 1.0)


def test_returns_3_candles_warming_up_and_zero_base() -> None:
    out = features(history_of([100.0, 110.0]))
    assert out.values["returns_3_candles"] is None
    assert out.reasons["returns_3_candles"] == "warming_up"
    out = features(history_of([0.0, 110.0, 121.0]))
    assert out.values["returns_3_candles"] is None
    assert out.reasons["returns_3_candles"] == "zero_base"


@pytest.mark.parametrize(("name", "span"), [("roc_5m", 5), ("roc_15m", 15), ("roc_1h", 60)])
def test_roc_needs_span_plus_one_candles(name: str, span: int) -> None:
    closes = [100.0 + 3.0 * i for i in range(span + 1)]
    out = features(history_of(closes[:-1]))
    assert out.values[name] is None
    assert out.reasons[name] == "warming_up"
    out = features(history_of(closes))
    assert out.values[name] == pytest.approx(closes[-1] / 100.0 - 1.0, rel=1e-15)
    closes.append(500.0)  # one more: the base moves to closes[1]
    out = features(history_of(closes))
    assert out.values[name] == pytest.approx(500.0 / closes[1] - 1.0, rel=1e-15)


def test_roc_zero_base_is_null() -> None:
    closes = [0.0] + [100.0] * 5
    out = features(history_of(closes))
    assert out.values["roc_5m"] is None
    assert out.reasons["roc_5m"] == "zero_base"
    assert out.values["returns_3_candles"] == 0.0  # its base is a non-zero close


# --- volatility_20_candles --------------------------------------------------------------------


def test_volatility_hand_computed_on_alternating_returns() -> None:
    # returns alternate +10% / -10%: 10 of +0.1 and 9 of -1/11... computed by hand below
    closes = [100.0]
    for i in range(19):
        closes.append(closes[-1] * (1.1 if i % 2 == 0 else 1.0 / 1.1))
    returns = [closes[i] / closes[i - 1] - 1.0 for i in range(1, 20)]
    mean = sum(returns) / 19
    expected = math.sqrt(sum((r - mean) ** 2 for r in returns) / 18)
    out = features(history_of(closes))
    assert out.values["volatility_20_candles"] == pytest.approx(expected, rel=1e-12)


def test_volatility_needs_exactly_20_candles_and_uses_the_last_20() -> None:
    rng = np.random.default_rng(2)
    closes = list(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 30))))
    out = features(history_of(closes[:19]))
    assert out.values["volatility_20_candles"] is None
    assert out.reasons["volatility_20_candles"] == "warming_up"
    for n in (20, 21, 30):
        last = np.array(closes[n - 20 : n])
        expected = (last[1:] / last[:-1] - 1.0).std(ddof=1)
        out = features(history_of(closes[:n]))
        assert out.values["volatility_20_candles"] == pytest.approx(expected, rel=1e-12)


def test_volatility_of_constant_closes_is_exactly_zero() -> None:
    out = features(history_of([250.5] * 25))
    assert out.values["volatility_20_candles"] == 0.0


def test_volatility_with_a_zero_close_in_the_window_is_null() -> None:
    closes = [100.0 + i for i in range(25)]
    closes[5] = 0.0  # index 5 is the first of the last 20 (5..24): the return after it is undefined
    out = features(history_of(closes))
    assert out.values["volatility_20_candles"] is None
    assert out.reasons["volatility_20_candles"] == "zero_base"
    closes[5] = 105.0
    closes[4] = 0.0  # just outside: only the return into candle 4 and out of it, both older
    out = features(history_of(closes))
    last = np.array(closes[5:])
    expected = (last[1:] / last[:-1] - 1.0).std(ddof=1)
    assert out.values["volatility_20_candles"] == pytest.approx(expected, rel=1e-12)


# --- volume_zscore ----------------------------------------------------------------------------


def test_volume_zscore_hand_computed() -> None:
    # previous 100 volumes: fifty 1.0 and fifty 3.0 -> mean 2, population std 1; newest 5
    volumes = [1.0, 3.0] * 50 + [5.0]
    out = features(history_of([100.0] * 101, volumes))
    assert out.values["volume_zscore"] == pytest.approx(3.0, rel=1e-15)


def test_volume_zscore_needs_101_candles_and_uses_the_previous_100() -> None:
    rng = np.random.default_rng(4)
    volumes = list(rng.lognormal(0.0, 1.0, 130))
    out = features(history_of([100.0] * 100, volumes[:100]))
    assert out.values["volume_zscore"] is None
    assert out.reasons["volume_zscore"] == "warming_up"
    for n in (101, 102, 130):
        previous = np.array(volumes[n - 101 : n - 1])
        expected = (volumes[n - 1] - previous.mean()) / previous.std(ddof=0)
        out = features(history_of([100.0] * n, volumes[:n]))
        assert out.values["volume_zscore"] == pytest.approx(expected, rel=1e-9)


def test_volume_zscore_is_null_when_previous_volumes_are_all_equal() -> None:
    out = features(history_of([100.0] * 101, [7.0] * 100 + [50.0]))
    assert out.values["volume_zscore"] is None
    assert out.reasons["volume_zscore"] == "zero_std"


def test_volume_zscore_all_volumes_zero_is_null() -> None:
    out = features(history_of([100.0] * 150, [0.0] * 150))
    assert out.values["volume_zscore"] is None
    assert out.reasons["volume_zscore"] == "zero_std"


# --- relative volume --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "span"), [("relative_volume_1h", 60), ("relative_volume_24h", 1440)]
)
def test_relative_volume_needs_span_candles_and_includes_the_newest(name: str, span: int) -> None:
    volumes = [float(1 + i % 7) for i in range(span + 3)]
    out = features(history_of([100.0] * (span - 1), volumes[: span - 1]))
    assert out.values[name] is None
    assert out.reasons[name] == "warming_up"
    for n in (span, span + 3):
        window = volumes[n - span : n]
        expected = volumes[n - 1] / (math.fsum(window) / span)
        out = features(history_of([100.0] * n, volumes[:n]))
        assert out.values[name] == pytest.approx(expected, rel=1e-12)


def test_relative_volume_hand_computed() -> None:
    volumes = [1.0] * 59 + [61.0]  # mean of the 60 = 2, newest 61
    out = features(history_of([100.0] * 60, volumes))
    assert out.values["relative_volume_1h"] == pytest.approx(30.5, rel=1e-15)


def test_relative_volume_all_zero_is_null() -> None:
    out = features(history_of([100.0] * 1440, [0.0] * 1440))
    for name in ("relative_volume_1h", "relative_volume_24h"):
        assert out.values[name] is None
        assert out.reasons[name] == "zero_mean"


def test_relative_volume_newest_zero_is_a_real_zero() -> None:
    out = features(history_of([100.0] * 60, [2.0] * 59 + [0.0]))
    assert out.values["relative_volume_1h"] == 0.0


# --- every feature at every step against pandas -----------------------------------------------


def _pandas_reference(closes: np.ndarray, volumes: np.ndarray) -> pd.DataFrame:
    c = pd.Series(closes)
    v = pd.Series(volumes)
    prev_v = v.shift(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = pd.DataFrame(
            {
                "volatility_20_candles": c.pct_change().rolling(19).std(ddof=1),
                "returns_3_candles": c / c.shift(2) - 1.0,
                "volume_zscore": (v - prev_v.rolling(100).mean()) / prev_v.rolling(100).std(ddof=0),
                "roc_5m": c / c.shift(5) - 1.0,
                "roc_15m": c / c.shift(15) - 1.0,
                "roc_1h": c / c.shift(60) - 1.0,
                "relative_volume_1h": v / v.rolling(60).mean(),
                "relative_volume_24h": v / v.rolling(1440).mean(),
            }
        )
    return ref


def test_every_feature_matches_pandas_at_every_step() -> None:
    rng = np.random.default_rng(9)
    n = 1700
    closes = 2_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))
    volumes = rng.lognormal(2.0, 1.0, n)
    volumes[rng.random(n) < 0.1] = 0.0
    ref = _pandas_reference(closes, volumes)
    history = KlineHistory()
    for i in range(n):
        history.add(minute_kline(i, float(closes[i]), float(volumes[i])))
        out = features(history)
        for name in CANDLE_FEATURES:
            expected = ref[name].iloc[i]
            got = out.values[name]
            if np.isnan(expected):
                assert got is None, (name, i)
                assert out.reasons[name] == "warming_up", (name, i)
            else:
                # pandas' rolling sums drift a little; 1e-8 is still far below any real change
                assert got == pytest.approx(expected, rel=1e-8, abs=1e-12), (name, i)
