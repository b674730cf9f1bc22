"""KlineHistory: what it accepts, what it skips and counts, and its O(1) rolling statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feature_service.windows.klines import (
    MIN_MAXLEN,
    KlineHistory,
    RingBuffer,
    RollingMoments,
)
from tests.fixtures.events import KLINE_T0, MINUTE, history_of, minute_kline

T0 = KLINE_T0  # minute_kline(0) opens here


# --- accepting and skipping -------------------------------------------------------------------


def test_accepts_confirmed_one_minute_klines_in_order() -> None:
    history = KlineHistory()
    assert history.add(minute_kline(0, 100.0, 2.0))
    assert history.add(minute_kline(1, 101.0, 3.0))
    assert len(history) == 2
    assert list(history.closes) == [100.0, 101.0]
    assert list(history.volumes) == [2.0, 3.0]
    assert history.last_start == T0 + MINUTE
    assert history.stats.accepted == 2


def test_skips_and_counts_unconfirmed_other_interval_and_invalid() -> None:
    history = KlineHistory()
    assert not history.add(minute_kline(0, confirmed=False))
    assert not history.add(minute_kline(0, interval="5"))
    assert not history.add(minute_kline(0, close=math.nan))
    assert not history.add(minute_kline(0, close=math.inf))
    assert not history.add(minute_kline(0, volume=-1.0))
    assert len(history) == 0
    stats = history.stats
    assert (stats.unconfirmed, stats.other_interval, stats.invalid) == (1, 1, 3)
    assert stats.accepted == 0


def test_skips_duplicates_and_out_of_order_without_changing_state() -> None:
    history = KlineHistory()
    for minute, close in ((0, 100.0), (1, 101.0), (2, 102.0)):
        history.add(minute_kline(minute, close))
    assert not history.add(minute_kline(2, 999.0))  # same start: duplicate
    assert not history.add(minute_kline(1, 999.0))  # older start: out of order
    assert not history.add(minute_kline(0, 999.0))
    assert list(history.closes) == [100.0, 101.0, 102.0]
    assert history.last_start == T0 + 2 * MINUTE
    assert history.stats.duplicates == 1
    assert history.stats.out_of_order == 2
    assert history.stats.accepted == 3


def test_gap_is_counted_and_candle_accepted() -> None:
    history = KlineHistory()
    history.add(minute_kline(0, 100.0))
    history.add(minute_kline(1, 101.0))
    assert history.add(minute_kline(5, 110.0))  # minutes 2, 3, 4 missing
    assert history.add(minute_kline(7, 120.0))  # minute 6 missing
    assert list(history.closes) == [100.0, 101.0, 110.0, 120.0]
    assert history.stats.gaps == 2
    assert history.stats.missing_minutes == 4
    # "the last N candles" are the N most recent accepted ones, across the gap
    assert [k.close for k in history.last(2)] == [110.0, 120.0]


def test_maxlen_keeps_the_most_recent_candles() -> None:
    history = KlineHistory(maxlen=MIN_MAXLEN)
    total = MIN_MAXLEN + 250
    for i in range(total):
        history.add(minute_kline(i, float(i + 1)))
    assert len(history) == MIN_MAXLEN
    assert history.closes[0] == float(total - MIN_MAXLEN + 1)
    assert history.closes[-1] == float(total)
    assert [k.close for k in history.last(3)] == [float(total - 2), float(total - 1), float(total)]


def test_last_returns_oldest_first_and_clamps() -> None:
    history = history_of([1.0, 2.0, 3.0])
    assert [k.close for k in history.last(2)] == [2.0, 3.0]
    assert [k.close for k in history.last(10)] == [1.0, 2.0, 3.0]
    assert history.last(0) == []


def test_maxlen_below_longest_window_is_refused() -> None:
    assert MIN_MAXLEN == 1441
    with pytest.raises(ValueError):
        KlineHistory(maxlen=1440)


def test_reset_forgets_candles_and_accepts_an_older_start() -> None:
    history = history_of([float(c) for c in range(1, 150)])
    history.reset()
    assert len(history) == 0
    assert history.last_start is None
    assert history.volume_mean(60) is None
    assert history.add(minute_kline(0, 5.0, 2.0))
    assert list(history.closes) == [5.0]


# --- rolling statistics -----------------------------------------------------------------------


def _random_candles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    volumes = rng.lognormal(1.0, 1.5, n)  # heavy-tailed like real volume
    volumes[rng.random(n) < 0.05] = 0.0
    volumes[rng.integers(0, n, 5)] *= 1e6  # a few enormous spikes
    return closes, volumes


def test_rolling_statistics_match_numpy_at_every_step() -> None:
    closes, volumes = _random_candles(4000, seed=1)
    history = KlineHistory()
    for i in range(len(closes)):
        history.add(minute_kline(i, float(closes[i]), float(volumes[i])))
        n = i + 1
        for span in (60, 1440):
            got = history.volume_mean(span)
            if n < span:
                assert got is None
            else:
                assert got == pytest.approx(math.fsum(volumes[n - span : n]) / span, rel=1e-9)
        prev = history.previous_volume_stats()
        if n < 101:
            assert prev is None
        else:
            window = volumes[n - 101 : n - 1]
            assert prev is not None
            assert prev[0] == pytest.approx(window.mean(), rel=1e-9)
            assert prev[1] == pytest.approx(window.std(ddof=0), rel=1e-9)
        vol = history.return_std()
        if n < 20:
            assert vol is None
        else:
            last = closes[n - 20 : n]
            returns = last[1:] / last[:-1] - 1.0
            assert vol == pytest.approx(returns.std(ddof=1), rel=1e-9)


def test_mean_of_an_all_zero_window_is_exactly_zero_after_a_spike_left() -> None:
    volumes = [1e12, *([0.37] * 59), *([0.0] * 60)]
    history = history_of([100.0] * len(volumes), volumes)
    assert history.volume_mean(60) == 0.0


def test_std_of_equal_previous_volumes_is_exactly_zero_after_a_spike_left() -> None:
    volumes = [1e12, 3.3, 7.1, *([2.5] * 100), 9.0]
    history = history_of([100.0] * len(volumes), volumes)
    stats = history.previous_volume_stats()
    assert stats == (2.5, 0.0)


def test_return_std_is_none_when_a_base_close_in_the_window_is_zero() -> None:
    closes = [100.0 + i for i in range(30)]
    closes[12] = 0.0  # base of the return of candle 13, inside the last 20 (indices 10..29)
    history = history_of(closes)
    assert history.return_std() is None
    for i in range(30, 38):  # candle 12 leaves the returns window once index 31 arrives
        history.add(minute_kline(i, 100.0 + i))
    last = np.array(list(history.closes)[-20:])
    assert history.return_std() == pytest.approx((last[1:] / last[:-1] - 1.0).std(ddof=1))


def test_volume_mean_refuses_an_untracked_span() -> None:
    with pytest.raises(KeyError):
        KlineHistory().volume_mean(30)


# --- building blocks --------------------------------------------------------------------------


def test_ring_buffer_indexes_like_a_list_of_the_last_items() -> None:
    ring: RingBuffer[int] = RingBuffer(4)
    for i in range(1, 7):
        ring.append(i)
    assert len(ring) == 4
    assert list(ring) == [3, 4, 5, 6]
    assert (ring[0], ring[-1], ring[-4]) == (3, 6, 3)
    assert ring[1:3] == [4, 5]
    assert ring[-2:] == [5, 6]
    assert ring.from_end(0) == 6 and ring.from_end(3) == 3
    with pytest.raises(IndexError):
        ring[4]
    with pytest.raises(IndexError):
        ring[-5]
    ring.clear()
    assert len(ring) == 0 and list(ring) == []


def test_ring_buffer_tail_is_the_slice_of_a_plain_list_for_every_length_and_skip() -> None:
    for capacity in (1, 3, 5):
        ring: RingBuffer[int] = RingBuffer(capacity)
        appended: list[int] = []
        for i in range(2 * capacity + 2):
            held = appended[-capacity:]
            for skip in range(capacity + 1):
                for n in range(capacity + 2):
                    end = len(held) - skip
                    expected = held[max(0, end - n) : max(0, end)]
                    assert ring.tail(n, skip) == expected, (capacity, i, n, skip)
            ring.append(i)
            appended.append(i)


def test_rolling_moments_with_lag_exclude_the_newest_items() -> None:
    ring: RingBuffer[float] = RingBuffer(6)
    moments = RollingMoments(ring, size=3, lag=1)
    for x in (1.0, 2.0, 4.0, 8.0, 16.0):
        ring.append(x)
        moments.on_append()
    # window = 2, 4, 8 (the 16 is the lagged-out newest)
    assert moments.n == 3
    assert moments.mean() == pytest.approx(14.0 / 3.0)
    assert moments.variance(ddof=0) == pytest.approx(np.var([2.0, 4.0, 8.0]))
    assert moments.variance(ddof=1) == pytest.approx(np.var([2.0, 4.0, 8.0], ddof=1))


def test_rolling_moments_refuse_a_ring_too_small_for_the_window() -> None:
    with pytest.raises(ValueError):
        RollingMoments(RingBuffer(3), size=3, lag=0)


def test_a_huge_volume_spike_leaves_no_trace_once_it_left_the_window() -> None:
    rng = np.random.default_rng(8)
    volumes = [*rng.uniform(1.0, 2.0, 50), 3e13, *rng.uniform(1.0, 2.0, 101)]
    history = history_of([100.0] * len(volumes), volumes)
    # the spike is 102 candles back: out of the previous-100 window and of the 60 window
    previous = np.array(volumes[-101:-1])
    stats = history.previous_volume_stats()
    assert stats is not None
    assert stats[0] == pytest.approx(previous.mean(), rel=1e-12)
    assert stats[1] == pytest.approx(previous.std(ddof=0), rel=1e-11)
    assert history.volume_mean(60) == pytest.approx(np.mean(volumes[-60:]), rel=1e-12)


def test_rolling_moments_stay_exact_while_values_decay_geometrically() -> None:
    # The variance shrinks ~1e-9x inside one window length: a periodic recompute alone would
    # leave the variance with a relative error around 1e-7.
    ring: RingBuffer[float] = RingBuffer(101)
    moments = RollingMoments(ring, size=100)
    values = [1e6 * 0.81**i * (1.0 + 0.1 * (i % 3)) for i in range(400)]
    for i, x in enumerate(values):
        ring.append(x)
        moments.on_append()
        window = np.array(values[max(0, i - 99) : i + 1])
        assert moments.variance(ddof=0) == pytest.approx(window.var(), rel=1e-10)
        assert moments.mean() == pytest.approx(window.mean(), rel=1e-12)
