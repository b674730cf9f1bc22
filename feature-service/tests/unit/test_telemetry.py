"""Telemetry structures: histogram buckets, sliding minute counts, what the live path reports."""

from __future__ import annotations

import random

import pytest

from feature_service.engine.vector import FeatureVector
from feature_service.telemetry import US_PER_MIN, Histogram, MinuteRing, Telemetry
from tests.fixtures.events import trade

T0 = (1_795_600_000_000_000 // US_PER_MIN) * US_PER_MIN  # a minute boundary


def test_histogram_buckets_match_a_direct_count() -> None:
    bounds = (0.001, 0.01, 0.1, 1.0)
    hist = Histogram(bounds)
    rng = random.Random(7)
    values = [rng.uniform(0, 2) for _ in range(10_000)] + [0.01, 0.1, 1.0]  # exact edges too
    for v in values:
        hist.observe(v)
    expected = [(repr(b), sum(1 for v in values if v <= b)) for b in bounds]
    expected.append(("+Inf", len(values)))
    assert hist.cumulative() == expected
    assert hist.count == len(values)
    assert hist.sum == pytest.approx(sum(values))


def test_histogram_quantile_is_the_bucket_upper_bound() -> None:
    hist = Histogram((1.0, 2.0, 3.0))
    assert hist.quantile(0.5) is None
    for v in [0.5] * 50 + [1.5] * 40 + [2.5] * 10:
        hist.observe(v)
    assert hist.quantile(0.5) == 1.0
    assert hist.quantile(0.9) == 2.0
    assert hist.quantile(0.95) == 3.0


def test_minute_ring_counts_slide() -> None:
    ring = MinuteRing(minutes=1440)
    for minute in range(180):  # three hours, 2 events a minute
        ring.add("BTCUSDT", T0 + minute * US_PER_MIN + 5)
        ring.add("BTCUSDT", T0 + minute * US_PER_MIN + 7)
    now = T0 + 179 * US_PER_MIN + 30_000_000
    assert ring.totals(now, 60) == {"BTCUSDT": 120}
    assert ring.totals(now, 1440) == {"BTCUSDT": 360}
    # Two hours of silence: the last hour is empty, the day still holds everything.
    later = now + 120 * US_PER_MIN
    assert ring.totals(later, 60) == {}
    assert ring.totals(later, 1440) == {"BTCUSDT": 360}


def test_minute_ring_forgets_beyond_its_length() -> None:
    ring = MinuteRing(minutes=3)
    for minute in range(10):
        ring.add("k", T0 + minute * US_PER_MIN)
    assert ring.totals(T0 + 9 * US_PER_MIN, 1440) == {"k": 4}  # 3 past minutes + current


def test_on_message_reports_age_and_sliding_counts() -> None:
    tel = Telemetry()
    events = [trade(T0 + i, i) for i in range(5)]  # exchange_ts = ts - 9 ms
    now = T0 + 1_000_000
    for event in events:
        tel.on_message("ws-gateway.trade", [event], now)
    hist = tel.message_age.by_key[("ws-gateway.trade",)]
    assert hist.count == 5
    expected = sum((now - e.exchange_ts) / 1e6 for e in events)
    assert hist.sum == pytest.approx(expected)
    assert tel.events_window.totals(now, 60) == {"BTCUSDT": 5}


def test_on_vectors_counts_per_symbol_and_interval() -> None:
    tel = Telemetry()
    vectors = [
        FeatureVector("BTCUSDT", T0 + s * 1_000_000, i, {}, "1.1.0", computation_us=100.0)
        for s in range(1, 61)
        for i in ((1, 60) if s == 60 else (1,))
    ]
    tel.on_vectors(vectors)
    now = T0 + 61_000_000
    assert tel.vectors_window.totals(now, 60) == {("BTCUSDT", "1s"): 60, ("BTCUSDT", "1m"): 1}
    assert tel.computation.by_key[("1s",)].count == 60
    assert tel.average_latency_ms(now) == pytest.approx(0.1)
    assert tel.vectors_by_symbol[("BTCUSDT", 60)] == 1
