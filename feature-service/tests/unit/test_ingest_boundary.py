"""The ingest boundary: a message delivered twice, or duplicated anywhere in a stream, changes
no vector, live or offline; the sequencer's dedup is the raw reader's and its memory is
bounded; live receive stamps never go backwards."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine
from feature_service.engine.vector import FeatureVector
from feature_service.ingest import IngestBoundary, Sequencer
from feature_service.ingest.replay import recording_events
from feature_service.market.events import MarketEvent, Trade
from feature_service.market.keys import RecentKeys, message_key
from feature_service.market.recording import event_to_envelope, write_recording
from tests.unit.test_live_engine import FakeClock, FakeDelivery, FakeRawSink


def _bodies(events: list[MarketEvent]) -> list[bytes]:
    return [orjson.dumps(event_to_envelope(e)) for e in events]


def _offline(bodies: list[bytes]) -> tuple[list[FeatureVector], IngestBoundary]:
    boundary = IngestBoundary()
    engine = FeatureEngine()
    out: list[FeatureVector] = []
    for body in bodies:
        for event in boundary.ingest(body)[1]:
            out += engine.process(event)
    out += engine.advance_to(engine.clock.first_boundary_after(max(engine._last_ts.values())))
    return out, boundary


def _rows(vectors: list[FeatureVector]) -> list[tuple[int, int, dict[str, object]]]:
    return [(v.timestamp, v.interval_s, v.features) for v in vectors]


def test_every_message_twice_gives_the_same_vectors(sample_events: list[MarketEvent]) -> None:
    bodies = _bodies(sample_events)
    once, _ = _offline(bodies)
    twice, boundary = _offline([b for body in bodies for b in (body, body)])
    assert len(once) > 200
    assert _rows(twice) == _rows(once)
    assert boundary.duplicates == len(bodies)


def test_shuffled_duplicates_give_the_same_vectors(sample_events: list[MarketEvent]) -> None:
    """Copies re-inserted up to 500 messages later (a redelivery after a reconnect). The
    warm-up klines are a minute apart, so their copies are taken from the dense part only: a
    copy more than the dedup window (15 min) after its original is new by definition."""
    bodies = _bodies(sample_events)
    once, _ = _offline(bodies)
    rng = random.Random(8)
    stream = list(bodies)
    copies = 0
    for i in sorted(rng.sample(range(120, len(bodies)), len(bodies) // 3), reverse=True):
        stream.insert(min(len(stream), i + 1 + rng.randrange(500)), bodies[i])
        copies += 1
    dup, boundary = _offline(stream)
    assert _rows(dup) == _rows(once)
    assert boundary.duplicates == copies


def test_live_redelivery_is_stored_and_acked_but_not_applied_again(
    sample_events: list[MarketEvent],
) -> None:
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in sample_events]

    def run(stream: list[tuple[int, bytes]]) -> list[FeatureVector]:
        clock = FakeClock()
        out: list[FeatureVector] = []
        live = LiveEngine(FeatureEngine(), clock, on_vectors=out.extend)
        for t, body in stream:
            clock.now = max(clock.now, t)
            live.ingest(body, "q")
        return out

    plain = [(e.receive_ts, b) for e, b in zip(sample_events, bodies, strict=True)]
    # A copy redelivered 2 s after its original (stamped then), for every 7th message.
    redelivered = list(plain)
    for i in range(len(plain) - 1, 0, -7):
        t, body = plain[i]
        j = i + 1
        while j < len(redelivered) and redelivered[j][0] < t + 2_000_000:
            j += 1
        redelivered.insert(j, (t + 2_000_000, body))
    once, again = run(plain), run(redelivered)
    # Same boundaries and features; a vector closes only on receive time, which is the same.
    assert _rows(again)[: len(once) - 5] == _rows(once)[: len(once) - 5]


async def test_duplicate_delivery_goes_to_the_raw_store_and_is_acked() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    sink = FakeRawSink()
    live = LiveEngine(FeatureEngine(), FakeClock(1_737_972_000_200_000), raw_sink=sink)
    first, copy = FakeDelivery(CONTRACT_TRADE.encode()), FakeDelivery(CONTRACT_TRADE.encode())
    await live.on_delivery(first)
    await live.on_delivery(copy)
    assert live.engine.events_processed == 1
    assert live.stats.duplicates == 1
    assert len(sink.events) == 2  # the copy is stored too: the reader drops it on read
    for fut in sink.futures:
        if not fut.done():
            fut.set_result(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert (first.acked, copy.acked) == (1, 1)
    events, fresh = live.ingest(CONTRACT_TRADE.encode())
    assert len(events) == 1 and fresh == []


def test_bare_frame_events_dedup_by_the_raw_store_key() -> None:
    frame = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1_700_000_000_000,
        "data": [
            {"T": 1_700_000_000_000, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "10", "i": "a"},
            {"T": 1_700_000_000_000, "s": "BTCUSDT", "S": "Sell", "v": "2", "p": "10", "i": "b"},
        ],
    }
    body = orjson.dumps(frame)
    reordered = orjson.dumps(dict(reversed(list(frame.items()))))
    boundary = IngestBoundary()
    events, fresh = boundary.ingest(body)
    assert len(events) == 2 and fresh is events
    events, fresh = boundary.ingest(reordered)
    assert len(events) == 2 and fresh == []  # same JSON, other key order
    # The keys are the ones the raw writer stores: message_key(event_id, body, part).
    fresh = Sequencer()
    (first, second) = boundary.venue.parse(body, None)
    assert fresh.accept(first, message_key(None, body, 0))
    assert fresh.accept(second, message_key(None, body, 1))
    assert not fresh.accept(second, message_key(None, reordered, 1))


def test_recording_with_duplicate_lines_is_counted(tmp_path, sample_events) -> None:
    events = sample_events[:400]
    path = tmp_path / "dup.jsonl"
    write_recording(path, [*events, *events[300:350]])  # dense part: seconds apart
    boundary = IngestBoundary()
    got = list(recording_events(path, boundary))
    assert got == events
    assert boundary.duplicates == 50


def test_streams_are_separate_and_memory_is_bounded() -> None:
    def trade(i: int, symbol: str = "BTCUSDT", gateway: int | None = None) -> Trade:
        t = 1_000_000 * i
        return Trade(
            symbol=symbol,
            topic=f"publicTrade.{symbol}",
            exchange_ts=t,
            gateway_ts=gateway if gateway is not None else t,
            receive_ts=t,
            event_id=f"e{i}",
            price=1.0,
            size=1.0,
            side=1,  # type: ignore[arg-type]
            trade_time=t,
            trade_id=str(i),
        )

    seq = Sequencer(window_us=10_000_000, max_keys_per_stream=100)
    assert seq.accept(trade(1), "k1") and not seq.accept(trade(1), "k1")
    assert seq.accept(trade(1, "ETHUSDT"), "k1")  # another stream
    # Within the time window, the count bound holds the memory: the oldest keys go first.
    for i in range(2, 500):
        seq.accept(trade(5), f"k{i}")
    assert seq.keys_held() <= 2 * 101
    assert seq.accept(trade(5), "k499") is False
    assert seq.accept(trade(5), "k2") is True
    # By time: a key older than the window is new again.
    assert seq.accept(trade(6), "k450") is False
    seq.accept(trade(30), "later")
    assert seq.accept(trade(31), "k450") is True


def test_recent_keys_window_matches_the_reader() -> None:
    keys = RecentKeys(window_us=10)
    assert not keys.seen("a", 0)
    assert keys.seen("a", 5)
    assert not keys.seen("b", 20)
    assert not keys.seen("a", 21)  # "a" left the window


def test_receive_stamps_are_monotonic() -> None:
    seq = Sequencer()
    assert [seq.stamp(t) for t in (5, 7, 6, 9, 3)] == [5, 7, 7, 9, 9]
    assert seq.restamped == 2


@pytest.mark.parametrize("body", [b"{not json", b"[]"])
def test_rejected_input_raises_and_counts_nothing(body: bytes) -> None:
    from feature_service.market.errors import MessageRejected

    boundary = IngestBoundary()
    with pytest.raises(MessageRejected):
        boundary.ingest(body)
    assert boundary.sequencer.accepted == 0
