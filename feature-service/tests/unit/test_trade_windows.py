"""TradeWindows: hand-computed windows, boundaries, eviction by t, exact zeros, precision, and a
randomized cross-check against a naive recomputation from plain arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feature_service.market.events import Side
from feature_service.windows.trades import TradeStats, TradeWindows
from tests.fixtures.events import trade_at

S = 1_000_000
T0 = 1_700_000_000 * S


def test_hand_computed_window() -> None:
    w = TradeWindows([3 * S])
    w.add(trade_at(T0 + S // 2, 100.0, 1.0, Side.BUY))
    w.add(trade_at(T0 + S, 101.0, 2.0, Side.SELL))
    w.add(trade_at(T0 + 2 * S + S // 2, 102.0, 0.5, Side.BUY))

    stats = w.stats(3 * S, T0 + 3 * S)

    assert stats == TradeStats(
        volume=3.5,
        buy_volume=1.5,
        sell_volume=2.0,
        notional=100.0 + 202.0 + 51.0,
        count=3,
        buy_count=2,
        sell_count=1,
    )


def test_window_is_closed_at_start_and_open_at_end() -> None:
    w = TradeWindows([3 * S])
    t = T0 + 10 * S
    w.add(trade_at(t - 3 * S - 1, 1.0, 1.0))  # just before the window
    w.add(trade_at(t - 3 * S, 2.0, 2.0))  # exactly at t - W: inside
    w.add(trade_at(t - 1, 3.0, 4.0))  # last microsecond: inside

    stats = w.stats(3 * S, t)

    assert stats.count == 2
    assert stats.volume == 6.0
    assert stats.notional == 2.0 * 2.0 + 3.0 * 4.0


def test_trade_received_at_or_after_t_is_not_counted_until_a_later_t() -> None:
    w = TradeWindows([3 * S])
    t = T0 + 5 * S
    w.add(trade_at(t - S, 10.0, 1.0))
    w.add(trade_at(t, 10.0, 7.0))  # received exactly at t: belongs to the next interval
    w.add(trade_at(t + S // 2, 10.0, 5.0))

    assert w.stats(3 * S, t).volume == 1.0
    assert w.stats(3 * S, t + 1).volume == 8.0
    assert w.stats(3 * S, t + S).volume == 13.0


def test_each_span_evicts_on_its_own() -> None:
    w = TradeWindows([3 * S, 15 * S, 60 * S])
    w.add(trade_at(T0, 100.0, 1.0, Side.BUY))
    w.add(trade_at(T0 + 10 * S, 100.0, 2.0, Side.SELL))
    w.add(trade_at(T0 + 50 * S, 100.0, 4.0, Side.BUY))
    t = T0 + 52 * S

    assert w.stats(3 * S, t).volume == 4.0
    assert w.stats(15 * S, t).volume == 4.0
    assert w.stats(60 * S, t).volume == 7.0
    assert w.stats(60 * S, t).sell_volume == 2.0
    # 60 s later only the 1 m window still holds the last trade... and then nothing
    assert w.stats(60 * S, T0 + 70 * S).volume == 6.0
    assert w.stats(60 * S, T0 + 111 * S).volume == 0.0


def test_quiet_market_evicts_by_t_not_by_last_trade() -> None:
    w = TradeWindows([3 * S, 60 * S])
    for i in range(10):
        w.add(
            trade_at(T0 + i * 100_000, 100.0 + i, 0.1 * (i + 1), Side.BUY if i % 2 else Side.SELL)
        )
    assert w.stats(3 * S, T0 + S).count == 10

    # No trade for two minutes: both windows must report nothing, not the old activity.
    quiet = w.stats(3 * S, T0 + 120 * S)
    assert quiet.count == 0
    assert quiet.volume == 0.0
    assert quiet.notional == 0.0
    assert w.stats(60 * S, T0 + 120 * S).count == 0


def test_emptied_window_sums_are_exact_zeros() -> None:
    w = TradeWindows([3 * S])
    # Even compensated, adding then removing these leaves -3.6e-16, not 0.0 (found by search).
    sizes = [123.456, 1e9, 1e17, 0.1, 1e9]
    for i, size in enumerate(sizes):
        w.add(trade_at(T0 + i * 1000, 65_000.1, size, Side.BUY))
    assert w.stats(3 * S, T0 + S).count == len(sizes)

    empty = w.stats(3 * S, T0 + 10 * S)

    for value in (empty.volume, empty.buy_volume, empty.sell_volume, empty.notional):
        assert value == 0.0
        assert math.copysign(1.0, value) == 1.0  # not -0.0 either

    # The next trade starts from clean sums, not from the residue of the previous ones.
    w.add(trade_at(T0 + 11 * S, 3.0, 0.1, Side.SELL))
    w.add(trade_at(T0 + 11 * S, 3.0, 0.2, Side.BUY))
    after = w.stats(3 * S, T0 + 12 * S)
    assert (after.sell_volume, after.buy_volume) == (0.1, 0.2)
    assert after.notional == 3.0 * 0.1 + 3.0 * 0.2


def test_side_that_leaves_the_window_sums_to_exact_zero() -> None:
    w = TradeWindows([3 * S])
    for i, size in enumerate([123.456, 1e9, 1e17, 0.1, 1e9]):  # see the test above
        w.add(trade_at(T0 + i * 1000, 100.0, size, Side.SELL))
    w.add(trade_at(T0 + 2 * S, 100.0, 0.5, Side.BUY))
    assert w.stats(3 * S, T0 + 2 * S + 1).sell_count == 5

    stats = w.stats(3 * S, T0 + 3 * S + 10_000)  # every sell has left, the buy remains

    assert stats.sell_volume == 0.0
    assert stats.sell_count == 0
    assert stats.buy_volume == 0.5
    assert stats.volume == 0.5
    assert stats.notional == 50.0


def test_huge_trade_leaving_does_not_leave_rounding_error_behind() -> None:
    w = TradeWindows([3 * S])
    w.add(trade_at(T0, 70_000.3, 1e9, Side.BUY))
    small = [0.001 * (k + 1) + 1e-7 * k for k in range(50)]
    for k, size in enumerate(small):
        w.add(trade_at(T0 + S + k, 70_000.7, size, Side.BUY))
    assert w.stats(3 * S, T0 + 2 * S).volume == pytest.approx(1e9 + sum(small), rel=1e-15)

    stats = w.stats(3 * S, T0 + 3 * S + 1)  # the huge trade has left

    assert stats.count == len(small)
    # A plain running sum would be off by ~1e9 * 2**-53 ~ 1e-7, i.e. 1e-7 relative here.
    assert stats.volume == pytest.approx(math.fsum(small), rel=1e-14)
    assert stats.notional == pytest.approx(math.fsum(70_000.7 * s for s in small), rel=1e-14)


def test_late_trade_is_restamped_and_counted() -> None:
    w = TradeWindows([3 * S])
    w.add(trade_at(T0 + 2 * S, 100.0, 1.0))
    w.add(trade_at(T0 + S, 100.0, 2.0))  # received earlier than the previous one

    assert w.late == 1
    # Kept with the previous trade's time: still in the window until that one leaves.
    assert w.stats(3 * S, T0 + 4 * S + S // 2).volume == 3.0
    assert w.stats(3 * S, T0 + 5 * S + 1).volume == 0.0


def test_unknown_span_raises_key_error() -> None:
    w = TradeWindows([3 * S])
    with pytest.raises(KeyError, match="not tracked"):
        w.stats(4 * S, T0)


def test_t_going_backwards_is_refused_by_stats_and_ignored_by_advance() -> None:
    w = TradeWindows([3 * S])
    w.add(trade_at(T0, 100.0, 1.0))
    assert w.stats(3 * S, T0 + S).volume == 1.0

    w.advance(T0)  # older: no-op
    assert w.now == T0 + S
    with pytest.raises(ValueError, match="backwards"):
        w.stats(3 * S, T0)
    assert w.stats(3 * S, T0 + S).volume == 1.0  # same t is fine


@pytest.mark.parametrize("spans", [[], [0], [-5, 3 * S]])
def test_invalid_spans_are_refused(spans: list[int]) -> None:
    with pytest.raises(ValueError):
        TradeWindows(spans)


def test_reset_forgets_trades() -> None:
    w = TradeWindows([3 * S, 15 * S])
    w.add(trade_at(T0, 100.0, 1.0))
    assert w.stats(15 * S, T0 + S).count == 1
    w.reset()
    assert w.stats(15 * S, T0 + 2 * S).count == 0
    w.add(trade_at(T0 + 2 * S, 50.0, 3.0, Side.SELL))
    assert w.stats(3 * S, T0 + 3 * S).sell_volume == 3.0


def test_buffer_is_compacted_once_trades_leave_the_longest_window() -> None:
    w = TradeWindows([1 * S, 2 * S])
    for i in range(5000):
        w.add(trade_at(T0 + i * 1000, 100.0, 1.0))  # 1000 trades a second
    assert w.stats(2 * S, T0 + 5 * S).count == 2000
    assert len(w) == 2000
    assert len(w._ts) < 5000  # the dead prefix was dropped
    assert w.stats(1 * S, T0 + 5 * S).count == 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_naive_recomputation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spans = [3 * S, 15 * S, 60 * S]
    n = 4000
    # Bursty arrivals with quiet gaps (some longer than every span), duplicate timestamps.
    gaps = rng.choice(
        [0, 1, 50_000, 400_000, 20 * S, 90 * S], size=n, p=[0.1, 0.3, 0.3, 0.25, 0.04, 0.01]
    )
    ts = T0 + np.cumsum(gaps)
    prices = 30_000.0 + np.cumsum(rng.normal(0.0, 5.0, n))
    sizes = rng.lognormal(-3.0, 2.0, n)  # spans several orders of magnitude
    buys = rng.random(n) < 0.5

    w = TradeWindows(spans)
    queries = np.sort(rng.integers(T0, int(ts[-1]) + 100 * S, size=600))
    queries[::7] = (queries[::7] // S) * S  # some on whole seconds
    queries.sort()
    added = 0
    for q in queries.tolist():
        # Add the trades received so far (sometimes one past q as well: the lazy guard).
        while added < n and ts[added] < q + (S if added % 5 == 0 else 0):
            w.add(
                trade_at(
                    int(ts[added]),
                    float(prices[added]),
                    float(sizes[added]),
                    Side.BUY if buys[added] else Side.SELL,
                )
            )
            added += 1
        for span in spans:
            got = w.stats(span, q)
            mask = (ts >= q - span) & (ts < q)
            vol_b = sizes[mask & buys]
            vol_s = sizes[mask & ~buys]
            assert got.count == int(mask.sum())
            assert got.buy_count == len(vol_b)
            assert got.buy_volume == pytest.approx(math.fsum(vol_b), rel=1e-12, abs=0.0)
            assert got.sell_volume == pytest.approx(math.fsum(vol_s), rel=1e-12, abs=0.0)
            assert got.volume == pytest.approx(math.fsum(sizes[mask]), rel=1e-12, abs=0.0)
            notional = math.fsum((prices[mask] * sizes[mask]).tolist())
            assert got.notional == pytest.approx(notional, rel=1e-12, abs=0.0)
