"""FeatureEngine: boundaries close on receive time, exactly once, before later events apply."""

from __future__ import annotations

import random

import pytest

from feature_service.engine.boundaries import IntervalClock
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector, interval_label, parse_interval
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.events import US_PER_S
from tests.fixtures.events import trade_at

S = US_PER_S
T0 = 1_737_936_000 * S  # 2025-01-27T00:00:00Z, a whole minute


def by_interval(vectors: list[FeatureVector], interval_s: int) -> list[FeatureVector]:
    return [v for v in vectors if v.interval_s == interval_s]


class TestIntervalClock:
    def test_step_is_gcd_and_closing_intervals_follow_divisibility(self) -> None:
        clock = IntervalClock([60, 15, 3, 1])
        assert clock.step_us == S
        assert clock.closing_at(T0 + 1 * S) == (1,)
        assert clock.closing_at(T0 + 3 * S) == (1, 3)
        assert clock.closing_at(T0 + 15 * S) == (1, 3, 15)
        assert clock.closing_at(T0 + 60 * S) == (1, 3, 15, 60)
        assert clock.closing_at(T0 + 30 * S) == (1, 3, 15)

    def test_gcd_step_skips_boundaries_no_interval_closes(self) -> None:
        clock = IntervalClock([15, 60])
        assert clock.step_us == 15 * S
        assert clock.closing_at(T0 + 45 * S) == (15,)

    def test_event_exactly_on_a_boundary_opens_the_next_interval(self) -> None:
        clock = IntervalClock([1])
        assert clock.first_boundary_after(T0) == T0 + S
        assert clock.first_boundary_after(T0 + 1) == T0 + S
        assert clock.first_boundary_after(T0 + S - 1) == T0 + S

    def test_rejects_non_positive_intervals(self) -> None:
        with pytest.raises(ValueError):
            IntervalClock([0, 1])


class TestFeatureEngine:
    def test_vector_at_t_sees_only_events_received_before_t(self) -> None:
        engine = FeatureEngine(intervals_s=[1])
        out: list[FeatureVector] = []
        out += engine.process(trade_at(T0 + S // 2, size=1.0))  # 0.5 s
        out += engine.process(trade_at(T0 + 1_200_000, size=2.0))  # 1.2 s closes 1 s
        out += engine.process(trade_at(T0 + 3 * S, size=4.0))  # exactly 3 s: closes 2 s, 3 s first
        out += engine.advance_to(T0 + 4 * S)
        volumes = {(v.timestamp - T0) // S: v.features["volume_3s"] for v in out}
        assert volumes == {1: 1.0, 2: 3.0, 3: 3.0, 4: 6.0}
        counts = {(v.timestamp - T0) // S: v.features["trade_count_3s"] for v in out}
        assert counts == {1: 1, 2: 2, 3: 2, 4: 2}

    def test_each_boundary_closes_once_per_interval_and_shares_the_computation(self) -> None:
        engine = FeatureEngine(intervals_s=[1, 3, 15, 60])
        engine.process(trade_at(T0 + 10, size=1.0))
        out = engine.advance_to(T0 + 60 * S)
        assert len(by_interval(out, 1)) == 60
        assert len(by_interval(out, 3)) == 20
        assert len(by_interval(out, 15)) == 4
        assert len(by_interval(out, 60)) == 1
        at_60 = [v for v in out if v.timestamp == T0 + 60 * S]
        assert sorted(v.interval_s for v in at_60) == [1, 3, 15, 60]
        assert all(v.features is at_60[0].features for v in at_60)
        # A second call for the same time closes nothing again.
        assert engine.advance_to(T0 + 60 * S) == []

    def test_quiet_market_reports_zero_activity_and_staleness(self) -> None:
        engine = FeatureEngine(intervals_s=[1], stale_after_s=5.0)
        engine.process(trade_at(T0 + 100, size=2.0))
        out = engine.advance_to(T0 + 10 * S)
        first, last = out[0], out[-1]
        assert first.features["volume_3s"] == 2.0
        assert not first.stale
        assert last.features["volume_3s"] == 0.0
        assert last.features["trade_count_3s"] == 0
        assert last.features["vwap_3s"] is None
        assert last.null_reasons["vwap_3s"]
        assert last.stale
        assert last.data_age_ms == pytest.approx((10 * S - 100) / 1000)

    def test_every_vector_has_every_catalog_key_in_order(self) -> None:
        engine = FeatureEngine(intervals_s=[1])
        engine.process(trade_at(T0 + 10, size=1.0))
        (vector,) = engine.advance_to(T0 + S)
        assert tuple(vector.features) == FEATURE_NAMES
        # No book, no candles yet: nulls carry reasons, never NaN or 0 stand-ins.
        assert vector.features["mid_price"] is None
        assert vector.null_reasons["mid_price"]
        assert vector.features["rsi_14"] is None
        assert set(vector.null_reasons) == {k for k, v in vector.features.items() if v is None}
        assert vector.trace_id == f"trace-{T0 + 10}"

    def test_null_reasons_are_counted(self) -> None:
        engine = FeatureEngine(intervals_s=[1, 3])
        engine.process(trade_at(T0 + 10, size=1.0))
        engine.advance_to(T0 + 3 * S)
        # 3 one-second vectors + 1 three-second vector, all without a book.
        assert sum(n for (name, _), n in engine.null_counts.items() if name == "mid_price") == 4

    def test_symbols_filter_and_per_symbol_clocks(self) -> None:
        engine = FeatureEngine(intervals_s=[1], symbols=["BTCUSDT"])
        other = trade_at(T0 + 10, size=1.0)
        other.symbol = "ETHUSDT"
        assert engine.process(other) == []
        assert engine.events_ignored == 1
        assert "ETHUSDT" not in engine.states

    def test_late_event_is_applied_and_counted(self) -> None:
        engine = FeatureEngine(intervals_s=[1])
        engine.process(trade_at(T0 + 2 * S, size=1.0))
        engine.process(trade_at(T0 + S, size=1.0))
        assert engine.late_events == 1
        assert engine.events_processed == 2

    def test_interval_labels(self) -> None:
        assert [interval_label(s) for s in (1, 3, 15, 60, 3600)] == ["1s", "3s", "15s", "1m", "1h"]
        assert [parse_interval(x) for x in ("1s", "3s", "15s", "1m", "60s", "1h")] == [
            1,
            3,
            15,
            60,
            60,
            3600,
        ]
        for bad in ("", "2", "0s", "-1s", "1d", "s"):
            with pytest.raises(ValueError):
                parse_interval(bad)


def test_timer_interleaving_does_not_change_vectors(sample_events: list) -> None:
    """The live timer may close boundaries at any moment between events; the vectors must be
    exactly those of a pure event-driven replay (what the offline engine does)."""
    events = sample_events
    offline = FeatureEngine()
    expected: list[FeatureVector] = []
    for event in events:
        expected += offline.process(event)

    rng = random.Random(7)
    live = FeatureEngine()
    got: list[FeatureVector] = []
    previous = events[0].receive_ts
    for event in events:
        # A timer firing somewhere between the previous event and this one.
        if rng.random() < 0.3 and event.receive_ts > previous:
            got += live.advance_to(rng.randrange(previous, event.receive_ts))
        got += live.process(event)
        previous = event.receive_ts
    assert len(got) == len(expected) > 100
    for a, b in zip(got, expected, strict=True):
        assert (a.symbol, a.timestamp, a.interval_s) == (b.symbol, b.timestamp, b.interval_s)
        assert a.features == b.features
        assert a.null_reasons == b.null_reasons
