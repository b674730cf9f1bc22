"""Depth where the upstream gives none: a depth-1 stream, a REST depth book, their null reasons,
the age in the vector, and the per-symbol report /health carries."""

from __future__ import annotations

import orjson
import pytest

from feature_service.adapters.clients.bybit_rest import OrderbookSnapshot
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.features.depth import LEVELS_NEEDED, limited_by
from feature_service.market.errors import MessageRejected
from feature_service.market.events import US_PER_S, BookSnapshot
from feature_service.market.parsing import parse_message
from feature_service.services.depth_source import snapshot_envelope
from feature_service.services.depth_status import DepthWatch, depth_report
from tests.fixtures.market_messages import envelope_orderbook, to_bytes

T0 = 1_737_972_000 * US_PER_S  # 2025-01-27T10:00:00Z, a whole second
DEPTH_FEATURES = list(LEVELS_NEEDED)


def stream_snapshot(ts: int, *, depth: int = 1, levels: int = 1, bid: float = 100.0) -> bytes:
    """What orderbook.{depth} delivers: here snapshots only, as orderbook.1 does."""
    bids = [(bid - 0.5 * i, 2.0) for i in range(levels)]
    asks = [(bid + 0.5 + 0.5 * i, 3.0) for i in range(levels)]
    return to_bytes(envelope_orderbook(bids=bids, asks=asks, depth=depth, u=ts))


def rest_body(ts_ms: int, levels: int = 10) -> bytes:
    # Bid sizes 1, 2, 3, ... and ask sizes 10, 20, 30, ...: the sums below are independent.
    snapshot = OrderbookSnapshot(
        symbol="BTCUSDT",
        bids=[[f"{99.0 - i:.1f}", f"{i + 1}"] for i in range(levels)],
        asks=[[f"{101.0 + i:.1f}", f"{10 * (i + 1)}"] for i in range(levels)],
        ts_ms=ts_ms,
        u=7,
        seq=11,
        cts_ms=ts_ms - 1,
    )
    return snapshot_envelope(snapshot, 50, ts_ms)


def run(messages: list[tuple[int, bytes]], until: int) -> tuple[FeatureEngine, list[FeatureVector]]:
    engine = FeatureEngine(intervals_s=[1])
    vectors: list[FeatureVector] = []
    for receive_ts, body in messages:
        for event in parse_message(body, receive_ts=receive_ts):
            vectors.extend(engine.process(event))
    vectors.extend(engine.advance_to(until))
    return engine, vectors


def test_limited_by_names_what_a_depth_cannot_give() -> None:
    assert limited_by(1) == DEPTH_FEATURES
    assert limited_by(5) == ["depth_bid_top10", "depth_ask_top10"]
    assert limited_by(50) == []
    assert limited_by(None) == []


def test_a_depth_1_stream_nulls_the_depth_features_with_the_stream_reason() -> None:
    stream = [(T0 + i * 300_000, stream_snapshot(T0 + i * 300_000)) for i in range(10)]
    engine, vectors = run(stream, T0 + 3 * US_PER_S)
    last = vectors[-1]
    assert last.features["mid_price"] == 100.25
    for name in DEPTH_FEATURES:
        assert last.features[name] is None
        assert last.null_reasons[name] == "stream_depth_limited"
    assert last.depth_age_ms is None
    assert engine.states["BTCUSDT"].stream_depth == 1


def test_a_deep_stream_that_is_momentarily_thin_keeps_the_generic_reason() -> None:
    stream = [(T0 + 100_000, stream_snapshot(T0, depth=50, levels=4))]
    _, vectors = run(stream, T0 + US_PER_S)
    [vector] = vectors
    assert vector.null_reasons["depth_bid_top5"] == "insufficient_levels"
    assert vector.features["slope_bid"] is not None  # 4 levels are enough for a slope
    assert vector.features["depth_bid_top10"] is None


def test_a_rest_depth_book_feeds_the_depth_features_and_only_them() -> None:
    rest_at = T0 + 400_000
    stream = [
        (T0 + 100_000, stream_snapshot(T0)),
        (rest_at, rest_body(T0 // 1000)),
        (T0 + 700_000, stream_snapshot(T0 + 1, bid=200.0)),  # the stream moves on
    ]
    _, vectors = run(stream, T0 + 2 * US_PER_S)
    first = vectors[0]
    assert first.timestamp == T0 + US_PER_S
    f = first.features
    assert f["depth_bid_top5"] == 1 + 2 + 3 + 4 + 5
    assert f["depth_bid_top10"] == sum(range(1, 11))
    assert f["depth_ask_top5"] == 10 * (1 + 2 + 3 + 4 + 5)
    assert f["depth_ask_top10"] == 10 * sum(range(1, 11))
    assert f["depth_imbalance_top5"] == pytest.approx((15 - 150) / (15 + 150))
    assert f["slope_bid"] is not None and f["slope_ask"] is not None
    # Mid and spread stay on the stream (the REST book's mid would be 100.0).
    assert f["mid_price"] == 200.25
    assert first.depth_age_ms == (T0 + US_PER_S - rest_at) / 1000
    assert vectors[1].depth_age_ms == (T0 + 2 * US_PER_S - rest_at) / 1000
    assert not set(DEPTH_FEATURES) & set(first.null_reasons)


def test_a_stale_rest_book_stops_feeding_the_depth_features() -> None:
    rest_at = T0 + 100_000
    stream = [(T0 + 50_000, stream_snapshot(T0)), (rest_at, rest_body(T0 // 1000))]
    stream += [(T0 + i * US_PER_S + 1, stream_snapshot(T0 + i)) for i in range(1, 13)]
    _, vectors = run(stream, T0 + 12 * US_PER_S)
    by_t = {v.timestamp: v for v in vectors}
    fresh, stale = by_t[T0 + 10 * US_PER_S], by_t[T0 + 11 * US_PER_S]
    assert fresh.features["depth_bid_top5"] == 15  # 9.9 s old: still used
    assert stale.features["depth_bid_top5"] is None  # 10.9 s old: over the 10 s limit
    assert {stale.null_reasons[n] for n in DEPTH_FEATURES} == {"depth_stale"}
    assert stale.depth_age_ms == 10_900.0
    assert stale.features["mid_price"] == 100.25


def test_the_rest_envelope_parses_as_a_rest_fed_snapshot() -> None:
    body = rest_body(1_737_972_000_123)
    message = orjson.loads(body)
    assert (message["topic"], message["feed"], message["payload"]["type"]) == (
        "orderbook.50.BTCUSDT",
        "rest",
        "snapshot",
    )
    assert message["timestamp"] == "2025-01-27T10:00:00.123000"
    near = 1_737_972_000_200_000  # a receive time within the parser's time window
    [event] = parse_message(body, receive_ts=near)
    assert isinstance(event, BookSnapshot)
    assert (event.feed, event.depth, event.update_id, event.seq) == ("rest", 50, 7, 11)
    assert event.bids[:2] == [(99.0, 1.0), (98.0, 2.0)]
    [plain] = parse_message(stream_snapshot(T0), receive_ts=T0 + 100_000)
    assert isinstance(plain, BookSnapshot) and plain.feed is None
    message["feed"] = "carrier-pigeon"
    with pytest.raises(MessageRejected, match="feed"):
        parse_message(orjson.dumps(message), receive_ts=near)


def test_the_report_names_the_limitation_per_symbol_and_is_a_warning() -> None:
    stream = [(T0 + 100_000, stream_snapshot(T0))]
    engine, _ = run(stream, T0 + US_PER_S)
    report = depth_report(engine.states, T0 + US_PER_S, source="stream", wanted_depth=50)
    assert report["ok"] is True
    assert report["limited_symbols"] == ["BTCUSDT"]
    entry = report["symbols"]["BTCUSDT"]
    assert entry == {
        "stream_depth": 1,
        "depth_features_from": "none",
        "rest_depth_age_s": None,
        "unavailable_features": DEPTH_FEATURES,
        "reason": "stream_depth_limited",
    }
    [warning] = report["warnings"]
    assert warning.startswith("BTCUSDT: the order book stream has depth 1")
    assert "depth_bid_top5" in warning and "FEATURE_SERVICE_DEPTH_SOURCE=rest" in warning

    for receive_ts, body in [(T0 + 1_200_000, rest_body(T0 // 1000))]:
        for event in parse_message(body, receive_ts=receive_ts):
            engine.process(event)
    fed = depth_report(engine.states, T0 + 2 * US_PER_S, source="rest", wanted_depth=50)
    assert fed["symbols"]["BTCUSDT"]["depth_features_from"] == "rest"
    assert fed["symbols"]["BTCUSDT"]["rest_depth_age_s"] == 0.8
    assert fed["warnings"] == [] and fed["limited_symbols"] == []


def test_the_watch_logs_each_change_once() -> None:
    from structlog.testing import capture_logs

    engine, _ = run([(T0 + 100_000, stream_snapshot(T0))], T0 + US_PER_S)
    watch = DepthWatch()
    with capture_logs() as logs:
        for _ in range(3):
            watch.check(
                depth_report(engine.states, T0 + US_PER_S, source="stream", wanted_depth=50)
            )
    [entry] = [e for e in logs if e["event"] == "orderbook_depth_limited"]
    assert entry["symbol"] == "BTCUSDT" and entry["stream_depth"] == 1
    assert entry["unavailable_features"] == DEPTH_FEATURES
    assert entry["log_level"] == "warning"


def test_rest_polls_do_not_keep_a_silent_stream_fresh() -> None:
    # The stream sends one snapshot and dies; the REST poller goes on every second.
    messages = [(T0 + 100_000, stream_snapshot(T0))]
    messages += [(T0 + i * US_PER_S + 500_000, rest_body(T0 // 1000 + i)) for i in range(8)]
    _, vectors = run(messages, T0 + 8 * US_PER_S)
    last = vectors[-1]
    assert last.timestamp == T0 + 8 * US_PER_S
    assert last.features["depth_bid_top5"] == 15  # the REST book still feeds the depth
    assert last.data_age_ms == 7_900.0  # the stream's age, not the poller's (0.5 s)
    assert last.stale
