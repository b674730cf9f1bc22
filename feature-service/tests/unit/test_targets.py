"""Targets: forward returns from the row exactly t + horizon later; unlabelled rows dropped."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_service.datasets.request import TargetConfig
from feature_service.datasets.targets import TARGET, TARGET_RETURN, add_targets, iter_targets

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def frame(
    seconds: list[int], mids: list[float | None], **extra: list[float | None]
) -> pd.DataFrame:
    ts = (T0 + pd.to_timedelta(seconds, unit="s")).as_unit("us")
    data: dict[str, object] = {"timestamp": ts, "symbol": "BTCUSDT", "interval_s": 1}
    data["mid_price"] = pd.array(mids, dtype="Float64").to_numpy(dtype=float, na_value=np.nan)
    for name, values in extra.items():
        data[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return pd.DataFrame(data)


def seconds_of(df: pd.DataFrame) -> list[int]:
    return [int((t - T0).total_seconds()) for t in df["timestamp"]]


def test_regression_uses_the_row_exactly_horizon_later_and_drops_the_tail() -> None:
    df = frame([0, 1, 2, 3, 4], [100.0, 101.0, 102.0, 99.0, 100.0])
    columns = list(df.columns)
    out, dropped = add_targets(df, TargetConfig(type="regression", horizon=2), interval_s=1)
    assert list(df.columns) == columns and len(df) == 5  # the input is left alone
    assert seconds_of(out) == [0, 1, 2]
    assert out[TARGET].tolist() == pytest.approx([0.02, -2 / 101, -2 / 102], abs=1e-15)
    assert out[TARGET_RETURN].tolist() == out[TARGET].tolist()
    assert dropped == 2  # t = 3 and 4 have no row at t + 2


def test_a_row_whose_future_falls_in_a_gap_is_dropped_not_filled() -> None:
    # t = 3 is missing: t = 2 must not borrow t = 4's mid (no asof / forward fill)
    df = frame([0, 1, 2, 4, 5], [10.0, 11.0, 12.0, 14.0, 15.0])
    out, dropped = add_targets(df, TargetConfig(type="regression", horizon=1), interval_s=1)
    assert seconds_of(out) == [0, 1, 4]
    assert out[TARGET].tolist() == pytest.approx([0.1, 1 / 11, 1 / 14], abs=1e-15)
    assert dropped == 2


def test_null_mid_at_either_end_drops_the_row() -> None:
    df = frame([0, 1, 2, 3], [10.0, None, 12.0, 15.0])
    out, dropped = add_targets(df, TargetConfig(type="regression", horizon=1), interval_s=1)
    # t = 0: future mid null; t = 1: own mid null; t = 3: no future
    assert seconds_of(out) == [2]
    assert out[TARGET].tolist() == pytest.approx([0.25])
    assert dropped == 3


def test_classification_threshold_boundary_is_flat() -> None:
    # independent pairs (t, t + 1); every other row has no t + 1 and is dropped
    df = frame(
        [0, 1, 10, 11, 20, 21, 30, 31],
        [1.0, 1.25, 1.0, 0.75, 1.0, 1.5, 1.0, 0.5],
    )
    cfg = TargetConfig(type="classification", horizon=1, threshold=0.25)
    out, dropped = add_targets(df, cfg, interval_s=1)
    assert seconds_of(out) == [0, 10, 20, 30]
    assert out[TARGET_RETURN].tolist() == [0.25, -0.25, 0.5, -0.5]  # exact in binary
    assert out[TARGET].tolist() == ["flat", "flat", "up", "down"]
    assert dropped == 4


def test_classification_default_threshold_is_a_tenth_of_a_percent() -> None:
    assert TargetConfig(type="classification", horizon=60).threshold == 0.001
    df = frame([0, 1, 2, 3], [1000.0, 1002.0, 1001.0, 1000.0])
    out, _ = add_targets(df, TargetConfig(type="classification", horizon=1), interval_s=1)
    # r = +0.002 (up), -0.000998 (flat), -0.000999 (flat)
    assert out[TARGET].tolist() == ["up", "flat", "flat"]


def test_risk_adjusted_divides_by_trailing_vol_times_sqrt_horizon() -> None:
    secs = list(range(9))
    mids = [100.0, 100.0, 100.0, 100.0, 104.0, 100.0, 90.0, 90.0, 100.0]
    vol = [0.01, 0.0, None, 1e-13, 0.02, 0.01, 0.01, 0.01, 0.01]
    df = frame(secs, mids, volatility_1m=vol)
    cfg = TargetConfig(type="risk_adjusted", horizon=4)
    out, dropped = add_targets(df, cfg, interval_s=1)
    # t = 2 has an unknown volatility (dropped); t = 5..8 have no t + 4
    assert seconds_of(out) == [0, 1, 3, 4]
    # r(0) = 104/100 - 1 = 0.04 over sigma 0.01 * sqrt(4) = 0.02 -> 2
    # r(1) = 0 with zero vol -> 0; r(3) = -0.1 with vol ~ 0 -> 0; r(4) = 100/104 - 1 over 0.04
    assert out[TARGET].tolist() == pytest.approx([2.0, 0.0, 0.0, (100 / 104 - 1) / 0.04])
    assert out[TARGET_RETURN].tolist() == pytest.approx([0.04, 0.0, -0.1, 100 / 104 - 1])
    assert dropped == 5


def test_risk_adjusted_needs_the_volatility_column() -> None:
    df = frame([0, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="volatility_1m"):
        add_targets(df, TargetConfig(type="risk_adjusted", horizon=1), interval_s=1)


def test_horizon_must_be_a_multiple_of_the_interval() -> None:
    df = frame([0, 3, 6], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="multiple"):
        add_targets(df, TargetConfig(type="regression", horizon=4), interval_s=3)


def test_minute_rows_with_a_five_minute_horizon() -> None:
    secs = [60 * i for i in range(8)]
    df = frame(secs, [float(100 + i) for i in range(8)])
    out, dropped = add_targets(df, TargetConfig(type="regression", horizon=300), interval_s=60)
    assert seconds_of(out) == [0, 60, 120]
    assert out[TARGET].tolist() == pytest.approx([105 / 100 - 1, 106 / 101 - 1, 107 / 102 - 1])
    assert dropped == 5


def test_unsorted_rows_are_refused() -> None:
    df = frame([0, 2, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="increasing"):
        add_targets(df, TargetConfig(type="regression", horizon=1), interval_s=1)


def test_targets_ignore_everything_at_or_before_the_row() -> None:
    rng = np.random.default_rng(3)
    secs = list(range(40))
    mids = list(100 + rng.standard_normal(40).cumsum())
    cfg = TargetConfig(type="regression", horizon=5)
    base, _ = add_targets(frame(secs, mids), cfg, interval_s=1)
    # change the mid at t = 20: only the rows whose t or t + 5 is 20 may change
    changed = list(mids)
    changed[20] += 7.0
    after, _ = add_targets(frame(secs, changed), cfg, interval_s=1)
    diff = [
        s
        for s, a, b in zip(seconds_of(base), base[TARGET], after[TARGET], strict=True)
        if not math.isclose(a, b, rel_tol=0, abs_tol=0)
    ]
    assert diff == [15, 20]


def test_empty_frame_gives_empty_targets() -> None:
    out, dropped = add_targets(frame([], []), TargetConfig(type="regression", horizon=1), 1)
    assert out.empty and dropped == 0
    assert {TARGET, TARGET_RETURN} <= set(out.columns)


@settings(max_examples=60, deadline=None)
@given(
    present=st.lists(st.booleans(), min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=5),
    horizon=st.integers(min_value=1, max_value=7),
    kind=st.sampled_from(["regression", "classification"]),
)
def test_batched_targets_equal_the_whole_frame(
    present: list[bool], cuts: list[int], horizon: int, kind: str
) -> None:
    secs = [i for i, keep in enumerate(present) if keep]
    mids = [100.0 + ((i * 37) % 11) - 5 for i in secs]
    df = frame(secs, mids)
    cfg = TargetConfig(type=kind, horizon=horizon, threshold=0.01)  # type: ignore[arg-type]
    whole, whole_dropped = add_targets(df, cfg, interval_s=1)
    bounds = sorted({0, len(df), *(min(c, len(df)) for c in cuts)})
    batches = [df.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    results = list(iter_targets(batches, cfg, interval_s=1))
    got = pd.concat([r[0] for r in results], ignore_index=True) if results else whole.iloc[0:0]
    assert sum(r[1] for r in results) == whole_dropped
    assert seconds_of(got) == seconds_of(whole)
    assert got[TARGET].tolist() == whole[TARGET].tolist()


def test_batches_must_advance_in_time() -> None:
    df = frame([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])
    cfg = TargetConfig(type="regression", horizon=1)
    with pytest.raises(ValueError, match="follow"):
        list(iter_targets([df.iloc[2:], df.iloc[:2]], cfg, interval_s=1))
