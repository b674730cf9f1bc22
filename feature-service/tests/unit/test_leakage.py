"""Purge, embargo and the after-build leakage check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_service.datasets.leakage import (
    LeakageGuard,
    Split,
    check_no_leakage,
    embargo_for,
    timestamps_us,
    validate_registry_for_leakage,
)
from feature_service.datasets.request import DatasetBuildRequest, Period
from feature_service.registry.loader import FeatureDefinition, load_registry

T0 = pd.Timestamp("2024-01-01", tz="UTC")
T0_US = T0.value // 1000
S = 1_000_000


def rows(seconds: list[int] | range) -> pd.DataFrame:
    ts = (T0 + pd.to_timedelta(list(seconds), unit="s")).as_unit("us")
    return pd.DataFrame({"timestamp": ts, "mid_price": np.arange(len(ts), dtype=float)})


def period(a: int, b: int) -> Period:
    return Period(T0_US + a * S, T0_US + b * S)


def secs(split: Split) -> list[int]:
    return [int((t - T0_US) // S) for t in timestamps_us(split.frame)]


def three_splits() -> list[Split]:
    return [
        Split("train", rows(range(0, 10)), period(0, 10)),
        Split("validation", rows(range(10, 20)), period(10, 20)),
        Split("test", rows(range(20, 30)), period(20, 30)),
    ]


def test_purge_and_embargo_drop_exactly_the_leaking_rows() -> None:
    train, validation, test = LeakageGuard(horizon_s=3, embargo_s=2).purge_and_embargo(
        *three_splits()
    )
    # train keeps t + 3 <= 10; validation keeps t - 2 >= 10 and t + 3 <= 20; test t - 2 >= 20
    assert secs(train) == list(range(0, 8))
    assert (train.purged, train.embargoed) == (2, 0)
    assert secs(validation) == list(range(12, 18))
    assert (validation.purged, validation.embargoed) == (2, 2)
    assert secs(test) == list(range(22, 30))
    assert (test.purged, test.embargoed) == (0, 2)


def test_a_gap_before_the_next_split_reduces_the_purge() -> None:
    # train ends at 10 but validation starts at 12: only t + 3 > 12 is purged
    splits = [
        Split("train", rows(range(0, 10)), period(0, 10)),
        Split("validation", rows(range(12, 20)), period(12, 20)),
    ]
    train, validation = LeakageGuard(3, 0).apply(splits)
    assert secs(train) == list(range(0, 10))
    assert train.purged == 0
    assert secs(validation) == list(range(12, 20))


def test_guarding_batches_adds_up_to_guarding_the_whole_split() -> None:
    guard = LeakageGuard(3, 2)
    whole = guard.apply(three_splits())[1]
    full = three_splits()
    parts = []
    for chunk in (range(10, 13), range(13, 20)):
        piece = [full[0], Split("validation", rows(chunk), period(10, 20)), full[2]]
        parts.append(guard.apply(piece)[1])
    assert sum(p.purged for p in parts) == whole.purged
    assert sum(p.embargoed for p in parts) == whole.embargoed
    assert [s for p in parts for s in secs(p)] == secs(whole)


def test_a_split_shorter_than_the_embargo_is_emptied_and_counted() -> None:
    _, validation, test = LeakageGuard(3, 15).apply(three_splits())
    assert validation.records == 0 and validation.embargoed == 10 and validation.purged == 0
    assert test.records == 0 and test.embargoed == 10


def test_guard_needs_periods() -> None:
    with pytest.raises(ValueError, match="period"):
        LeakageGuard(1, 0).apply([Split("train", rows(range(3))), Split("test", rows([5]))])


def test_guard_rejects_a_non_positive_horizon() -> None:
    with pytest.raises(ValueError):
        LeakageGuard(0, 0)


def test_read_window_adds_warm_up_and_label_look_ahead() -> None:
    window = LeakageGuard(60, 3600).read_window(period(10_000, 20_000))
    assert window == period(10_000 - 3600, 20_000 + 60)


def test_check_passes_on_guarded_splits() -> None:
    guarded = LeakageGuard(3, 2).apply(three_splits())
    assert check_no_leakage(guarded, 3, 2) == []


def test_check_fails_on_a_deliberately_leaky_split() -> None:
    problems = check_no_leakage(three_splits(), horizon_s=3, embargo_s=2)
    text = "\n".join(problems)
    assert (
        "train row at 2024-01-01T00:00:09Z has a 3 s label window reaching into validation" in text
    )
    assert "validation: the row at 2024-01-01T00:00:10Z has a 2 s feature lookback" in text
    assert "test: the row at 2024-01-01T00:00:20Z" in text


def test_check_finds_rows_outside_their_period_and_overlaps() -> None:
    leaky = three_splits()
    leaky[0] = Split("train", rows(range(0, 15)), period(0, 10))  # 5 validation rows in train
    text = "\n".join(check_no_leakage(leaky, 1, 0))
    assert (
        "train: rows from 2024-01-01T00:00:00Z to 2024-01-01T00:00:14Z fall outside its period"
        in text
    )
    assert "train and validation overlap in time" in text
    # the purge (t + horizon <= validation start) cuts the strays off train's tail
    assert check_no_leakage(LeakageGuard(1, 0).apply(leaky), 1, 0) == []


def test_check_finds_overlap_and_disorder_without_periods() -> None:
    a = Split("train", rows([0, 5, 9]))
    b = Split("validation", rows([4, 12]))
    problems = check_no_leakage([a, b], 1, 0)
    assert any("overlap in time" in p for p in problems)
    c = Split("test", rows([3, 1]))
    assert any("not in strictly increasing" in p for p in check_no_leakage([c], 1, 0))


def test_check_without_periods_still_enforces_purge_plus_embargo_gap() -> None:
    a = Split("train", rows([0, 1, 2]))
    b = Split("validation", rows([6, 7]))  # 2 + horizon 2 = 4 <= 6 - embargo 3 = 3? no
    problems = check_no_leakage([a, b], horizon_s=2, embargo_s=3)
    assert problems == [
        "validation row at 2024-01-01T00:00:06Z has a 3 s feature lookback reaching data "
        "train used up to 2024-01-01T00:00:04Z (embargo)"
    ]
    assert check_no_leakage([a, b], horizon_s=2, embargo_s=2) == []


def test_check_without_periods_finds_a_label_window_reaching_the_next_split() -> None:
    a = Split("train", rows([0, 1, 2]))
    b = Split("validation", rows([3, 4]))
    assert check_no_leakage([a, b], horizon_s=2, embargo_s=0) == [
        "train row at 2024-01-01T00:00:02Z has a 2 s label window reaching into validation (purge)"
    ]
    assert check_no_leakage([a, b], horizon_s=1, embargo_s=0) == []


def test_empty_splits_are_ignored_by_the_check() -> None:
    empty = Split("validation", rows([]), period(10, 20))
    assert check_no_leakage([three_splits()[0], empty], 1, 0) == []


def test_embargo_is_the_longest_lookback_of_the_features_used() -> None:
    registry = load_registry()
    assert embargo_for(registry, None) == 86_400  # relative_volume_24h
    assert embargo_for(registry, ["mid_price", "returns_1m", "vwap_3s"]) == 60
    assert embargo_for(registry, ["mid_price"]) == 0
    # a risk-adjusted target reads volatility_1m (1 m lookback) from every row
    assert embargo_for(registry, ["mid_price"], "risk_adjusted") == 60
    assert embargo_for(registry, ["roc_1h"], "risk_adjusted") == 61 * 60


def test_guard_for_request_uses_horizon_and_selected_features() -> None:
    registry = load_registry()
    req = DatasetBuildRequest.model_validate(
        {
            "symbol": "BTCUSDT",
            "split_strategy": "time_based",
            "target_config": {"type": "regression", "horizon": 300},
            "feature_registry_version": registry.version,
            "features": ["mid_price", "volatility_5m"],
        }
    )
    guard = LeakageGuard.for_request(req, registry)
    assert (guard.horizon_s, guard.purge_s, guard.embargo_s) == (300, 300, 300)


def test_registry_leakage_validation() -> None:
    registry = load_registry()
    assert validate_registry_for_leakage(registry) == []
    bad = dataclasses.replace(
        registry,
        features=(
            FeatureDefinition("mid_price", ("orderbook",), 0, 0.0, False),
            FeatureDefinition("returns_1s", ("orderbook",), -1, 0.0, True),
        ),
    )
    assert validate_registry_for_leakage(bad) == [
        "feature mid_price: lookahead_forbidden must be true",
        "feature returns_1s: negative lookback -1 s",
    ]
    empty = dataclasses.replace(registry, features=(), errors=("missing 'version'",))
    assert validate_registry_for_leakage(empty) == [
        "registry: missing 'version'",
        "registry declares no features",
    ]


def test_timestamps_us_accepts_naive_other_zones_and_integers() -> None:
    expected = [T0_US, T0_US + S]
    aware = rows([0, 1])
    assert timestamps_us(aware).tolist() == expected
    naive = aware.assign(timestamp=aware["timestamp"].dt.tz_localize(None).astype("datetime64[ns]"))
    assert timestamps_us(naive).tolist() == expected
    tokyo = aware.assign(timestamp=aware["timestamp"].dt.tz_convert("Asia/Tokyo"))
    assert timestamps_us(tokyo).tolist() == expected
    ints = aware.assign(timestamp=np.array(expected, dtype=np.int64))
    assert timestamps_us(ints).tolist() == expected


@settings(max_examples=80, deadline=None)
@given(
    bounds=st.lists(st.integers(min_value=0, max_value=80), min_size=4, max_size=4),
    horizon=st.integers(min_value=1, max_value=12),
    embargo=st.integers(min_value=0, max_value=12),
    holes=st.sets(st.integers(min_value=0, max_value=99), max_size=30),
)
def test_guarded_rows_are_exactly_the_naive_rule(
    bounds: list[int], horizon: int, embargo: int, holes: set[int]
) -> None:
    a, b, c, d = sorted(bounds)
    gap = 3  # validation starts a little after train ends
    names_periods = [
        ("train", (a, b)),
        ("validation", (b + gap, c + gap)),
        ("test", (c + gap, d + 2 * gap)),
    ]
    data = [s for s in range(100) if s not in holes]
    splits = [
        Split(name, rows([s for s in data if lo <= s < hi]), period(lo, hi))
        for name, (lo, hi) in names_periods
    ]
    guarded = LeakageGuard(horizon, embargo).apply(splits)
    for i, (name, (lo, hi)) in enumerate(names_periods):
        nxt = names_periods[i + 1][1][0] if i + 1 < 3 else None
        expected = [
            s
            for s in data
            if lo <= s < hi
            and (i == 0 or s - embargo >= lo)
            and (nxt is None or s + horizon <= nxt)
        ]
        assert secs(guarded[i]) == expected, name
        before = sum(1 for s in data if lo <= s < hi)
        assert guarded[i].records + guarded[i].purged + guarded[i].embargoed == before
    assert check_no_leakage(guarded, horizon, embargo) == []
