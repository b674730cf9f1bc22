"""Split strategies: time-based, walk-forward (all folds), random (testing only)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from feature_service.datasets.leakage import LeakageGuard, check_no_leakage, timestamps_us
from feature_service.datasets.request import (
    DatasetBuildRequest,
    Period,
    WalkForwardConfig,
    walk_forward_windows,
)
from feature_service.datasets.splits import (
    random_split,
    time_based_split,
    walk_forward_counts,
    walk_forward_folds,
    walk_forward_warnings,
)

T0 = pd.Timestamp("2024-01-01", tz="UTC")
H = 3600
DAY = 86_400


def grid(start_s: int, end_s: int, step_s: int, skip: range | None = None) -> pd.DataFrame:
    seconds = [s for s in range(start_s, end_s, step_s) if skip is None or s not in skip]
    ts = (T0 + pd.to_timedelta(seconds, unit="s")).as_unit("us")
    return pd.DataFrame(
        {"timestamp": ts, "symbol": "BTCUSDT", "mid_price": np.linspace(100, 200, len(ts))}
    )


def at(seconds: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def first_last(frame: pd.DataFrame) -> tuple[int, int]:
    ts = frame["timestamp"]
    return int((ts.iloc[0] - T0).total_seconds()), int((ts.iloc[-1] - T0).total_seconds())


def time_request(bounds_h: tuple[int, int, int, int, int, int]) -> DatasetBuildRequest:
    names = [f"{s}_period_{e}" for s in ("train", "validation", "test") for e in ("start", "end")]
    fields = {n: at(h * H).to_pydatetime() for n, h in zip(names, bounds_h, strict=True)}
    return DatasetBuildRequest(
        symbol="BTCUSDT",
        split_strategy="time_based",
        target_config={"type": "regression", "horizon": 300},  # type: ignore[arg-type]
        feature_registry_version="1.1.0",
        feature_interval="1m",
        **fields,
    )


def test_time_based_split_exact_rows_after_purge_and_embargo() -> None:
    df = grid(-H, 10 * H, 60)  # warm-up hour before train, label rows after test
    splits = time_based_split(df, time_request((0, 4, 4, 6, 6, 8)), LeakageGuard(300, 3600))
    # train [0, 4h): t + 5 min <= 4h keeps t <= 3h55m
    assert first_last(splits.train.frame) == (0, 4 * H - 300)
    assert (splits.train.records, splits.train.purged, splits.train.embargoed) == (236, 4, 0)
    # validation [4h, 6h): t >= 5h (1 h embargo) and t <= 5h55m (purge before test)
    assert first_last(splits.validation.frame) == (5 * H, 6 * H - 300)
    assert (splits.validation.records, splits.validation.purged) == (56, 4)
    assert splits.validation.embargoed == 60
    # test [6h, 8h): t >= 7h, nothing after it to purge against
    assert first_last(splits.test.frame) == (7 * H, 8 * H - 60)
    assert (splits.test.records, splits.test.purged, splits.test.embargoed) == (60, 0, 60)
    assert splits.counts() == {"train": 236, "validation": 56, "test": 60}
    assert splits.warnings == []
    assert check_no_leakage(splits, 300, 3600) == []
    info = splits.info()
    assert info["test"]["period_start"] == "2024-01-01T06:00:00Z"
    assert info["test"]["period_end"] == "2024-01-01T08:00:00Z"
    assert info["test"]["records"] == 60


def test_time_based_split_with_gaps_between_periods() -> None:
    df = grid(0, 10 * H, 60)
    req = time_request((0, 3, 4, 6, 7, 9))
    splits = time_based_split(df, req, LeakageGuard(300, 1800))
    # the purge is against the next split's start (4h), past train's end (3h): nothing purged
    assert first_last(splits.train.frame) == (0, 3 * H - 60)
    assert splits.train.purged == 0
    assert first_last(splits.validation.frame) == (4 * H + 1800, 6 * H - 60)
    assert first_last(splits.test.frame) == (7 * H + 1800, 9 * H - 60)
    assert check_no_leakage(splits, 300, 1800) == []


def test_empty_test_split_is_explained_t255() -> None:
    df = grid(0, 10 * H, 60)
    splits = time_based_split(df, time_request((0, 4, 4, 6, 6, 8)), LeakageGuard(300, DAY))
    assert splits.test.records == 0 and splits.validation.records == 0
    assert splits.test.empty_reason == "embargo"
    assert (
        "test split is empty: all its 120 rows fell inside the embargo of 86400 s after "
        "validation (the longest feature lookback)"
    ) in splits.warnings
    assert splits.info()["test"]["empty_reason"] == "embargo"


def test_split_with_no_data_in_its_period() -> None:
    df = grid(0, 6 * H, 60)  # nothing after 6h
    splits = time_based_split(df, time_request((0, 4, 4, 5, 7, 8)), LeakageGuard(60, 0))
    assert splits.test.empty_reason == "no_data_in_period"
    assert splits.warnings == [
        "test split is empty: no feature rows in its period "
        "[2024-01-01T07:00:00Z, 2024-01-01T08:00:00Z) (no data)"
    ]


def test_split_emptied_by_the_purge() -> None:
    df = grid(0, 10 * H, 60)
    splits = time_based_split(df, time_request((0, 1, 1, 6, 6, 8)), LeakageGuard(2 * H, 0))
    assert splits.train.records == 0 and splits.train.empty_reason == "purge"
    assert splits.warnings[0] == (
        "train split is empty: all its 60 rows were purged, their 7200 s label window "
        "reaching into validation"
    )


def test_time_based_split_needs_every_period() -> None:
    req = time_request((0, 4, 4, 6, 6, 8)).model_copy(update={"test_period_end": None})
    with pytest.raises(ValueError, match="test"):
        time_based_split(grid(0, H, 60), req, LeakageGuard(60, 0))


def wf_config(days: int, train: int, val: int, step: int, **kw: object) -> WalkForwardConfig:
    return WalkForwardConfig(
        train_window_days=train,
        validation_window_days=val,
        step_days=step,
        start_date=T0.to_pydatetime(),
        end_date=(T0 + pd.Timedelta(days=days)).to_pydatetime(),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("days", "train", "val", "step", "expected"),
    [
        (60, 30, 7, 7, 4),  # fold k fits while 7k + 37 <= 60: k = 0..3
        (44, 30, 7, 7, 2),  # the second fold ends exactly on end_date
        (43, 30, 7, 7, 1),
        (36, 30, 7, 7, 0),  # shorter than one fold
        (37, 30, 7, 7, 1),  # exactly one fold
        (60, 30, 7, 3, 8),  # 3k + 37 <= 60: k = 0..7
        (90, 20, 10, 30, 3),  # step longer than the fold: disjoint folds k = 0..2
    ],
)
def test_walk_forward_fold_count(days: int, train: int, val: int, step: int, expected: int) -> None:
    assert len(walk_forward_windows(wf_config(days, train, val, step))) == expected


def test_walk_forward_windows_boundaries() -> None:
    windows = walk_forward_windows(wf_config(60, 30, 7, 7))
    t0 = T0.to_pydatetime()
    for k, (train, val) in enumerate(windows):
        assert train.start == t0 + timedelta(days=7 * k)
        assert train.end == val.start == t0 + timedelta(days=7 * k + 30)
        assert val.end == t0 + timedelta(days=7 * k + 37)


def test_walk_forward_folds_rows_and_test_fold() -> None:
    df = grid(0, 60 * DAY, H)  # hourly rows
    folds = walk_forward_folds(df, wf_config(60, 30, 7, 7, min_train_samples=700), 2 * H, 6 * H)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    for k, fold in enumerate(folds):
        # 720 hourly train rows, the last purged (t + 2h > validation start)
        assert (fold.train.records, fold.train.purged) == (719, 1)
        assert first_last(fold.train.frame) == (7 * k * DAY, (7 * k + 30) * DAY - 2 * H)
        # 168 validation rows, the first 6 inside the embargo
        assert (fold.validation.records, fold.validation.embargoed) == (162, 6)
        assert first_last(fold.validation.frame) == (
            (7 * k + 30) * DAY + 6 * H,
            (7 * k + 37) * DAY - H,
        )
        assert not fold.skipped
        assert check_no_leakage(fold, 2 * H, 6 * H) == []
    assert [f.is_test for f in folds] == [False, False, False, True]
    assert folds[3].validation.name == "test"
    assert folds[3].info()["role"] == "test"
    assert walk_forward_counts(folds) == {"train": 4 * 719, "validation": 3 * 162, "test": 162}
    assert walk_forward_warnings(folds) == []


def test_walk_forward_skips_folds_short_of_min_train_samples() -> None:
    df = grid(0, 60 * DAY, H, skip=range(0, 10 * DAY))  # no data for the first 10 days
    folds = walk_forward_folds(df, wf_config(60, 30, 7, 7, min_train_samples=700), 2 * H, 6 * H)
    # fold 0 train holds days 10..30 (480 rows), fold 1 days 10..37 (648), both minus the purge
    assert [f.skipped for f in folds] == [True, True, False, False]
    assert [f.train.records for f in folds] == [479, 647, 719, 719]
    assert folds[0].skip_reason == (
        "479 train rows after the purge, fewer than min_train_samples 700"
    )
    assert walk_forward_warnings(folds) == [
        "fold 0 skipped: 479 train rows after the purge, fewer than min_train_samples 700",
        "fold 1 skipped: 647 train rows after the purge, fewer than min_train_samples 700",
    ]
    assert [f.is_test for f in folds] == [False, False, False, True]
    assert walk_forward_counts(folds) == {"train": 2 * 719, "validation": 162, "test": 162}


def test_walk_forward_test_fold_is_the_last_fold_not_skipped() -> None:
    df = grid(0, 51 * DAY, H)  # the data stops where fold 3's validation window starts
    folds = walk_forward_folds(df, wf_config(60, 30, 7, 7, min_train_samples=700), H, 0)
    assert [f.skipped for f in folds] == [False, False, False, True]
    assert folds[3].skip_reason == "no validation rows left (see the fold's warnings)"
    assert folds[3].validation.empty_reason == "no_data_in_period"
    assert [f.is_test for f in folds] == [False, False, True, False]


def test_walk_forward_all_folds_skipped() -> None:
    df = grid(0, 60 * DAY, H)
    folds = walk_forward_folds(df, wf_config(60, 30, 7, 7, min_train_samples=10_000), H, 0)
    assert all(f.skipped for f in folds) and not any(f.is_test for f in folds)
    assert walk_forward_warnings(folds)[-1] == "every walk-forward fold was skipped"


def test_walk_forward_fold_with_an_embargoed_validation_is_skipped() -> None:
    df = grid(0, 60 * DAY, H)
    folds = walk_forward_folds(df, wf_config(60, 30, 1, 7, min_train_samples=0), H, DAY)
    assert all(f.skipped for f in folds)
    assert folds[0].skip_reason == "no validation rows left (see the fold's warnings)"
    assert folds[0].warnings == [
        "validation split is empty: all its 24 rows fell inside the embargo of 86400 s after "
        "train (the longest feature lookback)"
    ]


def test_walk_forward_overlapping_validation_windows_are_flagged() -> None:
    df = grid(0, 60 * DAY, H)
    folds = walk_forward_folds(df, wf_config(60, 30, 7, 3, min_train_samples=0), H, 0)
    assert len(folds) == 8 and folds[7].is_test
    assert folds[7].warnings == [
        "the validation windows of folds [5, 6] overlap the test window (step_days is shorter "
        "than validation_window_days): do not select models on those folds"
    ]


def test_walk_forward_without_a_test_fold() -> None:
    df = grid(0, 60 * DAY, H)
    cfg = wf_config(60, 30, 7, 7, min_train_samples=0, last_fold_as_test=False)
    folds = walk_forward_folds(df, cfg, H, 0)
    assert not any(f.is_test for f in folds)
    assert walk_forward_counts(folds)["test"] == 0


def test_random_split_counts_order_and_reproducibility() -> None:
    df = grid(0, 100, 1)
    a = random_split(df, (0.6, 0.2), seed=7)
    assert a.counts() == {"train": 60, "validation": 20, "test": 20}
    all_ts: list[int] = []
    for split in a:
        ts = timestamps_us(split.frame)
        assert np.all(np.diff(ts) > 0), split.name  # time order kept inside each split
        all_ts.extend(ts.tolist())
    assert sorted(all_ts) == timestamps_us(df).tolist()  # a partition: no row lost or repeated
    b = random_split(df, (0.6, 0.2), seed=7)
    for x, y in zip(a, b, strict=True):
        assert x.frame["timestamp"].tolist() == y.frame["timestamp"].tolist()
    c = random_split(df, (0.6, 0.2), seed=8)
    assert c.train.frame["timestamp"].tolist() != a.train.frame["timestamp"].tolist()
    assert "not leak-free" in a.warnings[0]
    assert check_no_leakage(a, 1, 0)  # interleaved splits fail the leakage check


def test_random_split_within_a_period_and_explicit_test_fraction() -> None:
    df = grid(0, 100, 1)
    start = T0.value // 1000
    splits = random_split(df, (0.5, 0.25, 0.25), seed=1, period=Period(start, start + 40_000_000))
    assert splits.counts() == {"train": 20, "validation": 10, "test": 10}
    assert max(first_last(s.frame)[1] for s in splits) < 40


@pytest.mark.parametrize("fractions", [(0.7, 0.4), (0.5, 0.2, 0.2), (0.5,), (-0.1, 0.5)])
def test_random_split_rejects_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        random_split(grid(0, 10, 1), fractions, seed=0)
