"""The monitor's per-event shortcuts give what the plain definitions give: the integer skew test
equals ``abs((rx - ex) / 1000.0) > threshold_ms``, and a minute's summary (kept as differences,
summarised with numpy at its end) equals ``MinuteSummary.count`` applied message by message."""

from __future__ import annotations

from dataclasses import replace

import pytest

from feature_service.quality.monitor import _skew_limit_us
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary
from feature_service.services.quality_report import scan_events
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0


@pytest.mark.parametrize("threshold_ms", [1000.0, 0.3, 0.001, 1.0005, 0.0, 2.5e-4, 123.456])
def test_integer_skew_test_matches_the_float_definition(threshold_ms: float) -> None:
    limit = _skew_limit_us(threshold_ms)
    centre = int(threshold_ms * 1000)
    for d in range(max(0, centre - 50), centre + 50):
        for signed in (d, -d):
            assert (abs(signed) >= limit) == (abs(signed / 1000.0) > threshold_ms), signed


def test_minute_summaries_equal_counting_message_by_message() -> None:
    # Receive - exchange differences on and around every skew bucket bound (1 ms ... 5 s).
    diffs = [0, 999, 1000, 1001, 2000, 5000, 9999, 10_000, 50_001, 500_000, 999_999, 1_000_000]
    diffs += [1_000_001, 2_000_000, 5_000_000, 5_000_001, 12_345_678, -1000, -1001, -7_000_000]
    events = dq.clean_stream(minutes=3)
    events = [
        replace(e, exchange_ts=e.receive_ts - diffs[i % len(diffs)]) for i, e in enumerate(events)
    ]
    minutes, _ = scan_events(events)
    expected: dict[int, MinuteSummary] = {}
    names = {"BookSnapshot": "orderbook", "BookDelta": "orderbook"}
    for e in events:
        start = e.receive_ts - e.receive_ts % US_PER_MINUTE
        m = expected.setdefault(start, MinuteSummary(dq.SYMBOL, start))
        stream = names.get(type(e).__name__, type(e).__name__.lower())
        m.count(stream, (e.receive_ts - e.exchange_ts) / 1000.0, e.receive_ts)
    assert [m.minute_us for m in minutes] == sorted(expected) == [T0 + i * MINUTE for i in range(3)]
    for m in minutes:
        want = expected[m.minute_us]
        assert (m.messages, m.first_rx, m.last_rx) == (want.messages, want.first_rx, want.last_rx)
        assert m.skew_hist == want.skew_hist
        assert m.skew_max_ms == want.skew_max_ms
