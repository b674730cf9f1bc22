"""The live service against the real RabbitMQ: ws-gateway envelopes in, vectors out on the
features exchange, equal to what the feature library computes from the same events (as the
service stamped them); malformed input goes to the dead-letter queue and nothing else changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.engine.core import FeatureEngine
from feature_service.market.events import Kline, MarketEvent, event_type_of
from feature_service.market.recording import event_to_envelope
from feature_service.services.identity import validate_identity
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.market_messages import recent, shift_to_now
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, broker: Broker, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        intervals=[1, 3, 15, 60],
        **broker.names.settings(),
        **extra,
    )


def _slice(sample_events: list[MarketEvent], dense_seconds: int) -> list[MarketEvent]:
    """The last 60 warm-up candles, then ``dense_seconds`` of book, trades and tickers."""
    first_dense = next(i for i, e in enumerate(sample_events) if not isinstance(e, Kline))
    end = sample_events[first_dense].receive_ts + dense_seconds * 1_000_000
    return [e for e in sample_events[first_dense - 60 :] if e.receive_ts < end]


async def test_live_vectors_equal_the_feature_library_on_the_same_events(
    tmp_path: Path, broker: Broker, sample_events: list[MarketEvent]
) -> None:
    events = _slice(sample_events, dense_seconds=40)
    shift = shift_to_now(events[-1].receive_ts)  # recorded times -> now (time window)
    await broker.declare_inputs()
    runtime = Runtime(_settings(tmp_path, broker))
    await runtime.start()
    try:
        reader_queue = await broker.bind_reader()
        for event in events:
            kind = event_type_of(event).value
            await broker.publish(
                broker.names.input(kind),
                recent(event_to_envelope(event, include_service_time=False), shift),
            )
        await wait_until(
            lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= len(events),
            60,
            "raw storage",
        )
        # Let the timer close the boundaries after the last event, as it does in a quiet market.
        await asyncio.sleep(1.5)

        # The HTTP API serves the same latest vector.
        app = create_app(runtime.settings, runtime)
        app.state.runtime = runtime
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            r = await http.get("/features/latest?symbol=BTCUSDT", headers={"X-API-Key": "demo-key"})
        assert r.status_code == 200
        assert r.json()["features"]["mid_price"] > 0
    finally:
        await runtime.stop()

    messages = await broker.drain(reader_queue.name, idle_s=0.5)
    live = [orjson.loads(m.body) for m in messages]
    assert all(m.delivery_mode == 2 for m in messages)
    assert len(live) >= 5

    # Offline: the stored events (with the service's own receive stamps), same engine code.
    stored = list(RawReader(tmp_path / "raw").iter_events(symbols=["BTCUSDT"]))
    assert len(stored) == len(events)
    offline = FeatureEngine(intervals_s=[1, 3, 15, 60])
    expected: dict[tuple[int, str], dict[str, object]] = {}
    for event in stored:
        for v in offline.process(event):
            expected[(v.timestamp, v.interval_s)] = v.features
    for v in offline.advance_to(max(m["timestamp_us"] for m in live)):
        expected[(v.timestamp, v.interval_s)] = v.features

    labels = {"1s": 1, "3s": 3, "15s": 15, "1m": 60}
    non_null_mid = 0
    for message in live:
        key = (message["timestamp_us"], labels[message["interval"]])
        assert key in expected, key
        assert message["features"] == expected[key], key
        non_null_mid += message["features"]["mid_price"] is not None
    assert non_null_mid >= 3
    # Every vector published once per (time, interval): no duplicate schedulers.
    keys = [(m["timestamp_us"], m["interval"]) for m in live]
    assert len(keys) == len(set(keys))

    # The same check as `feature-service validate-identity`, from the archived live vectors.
    for interval_s in (1, 3):
        report = validate_identity(
            tmp_path / "raw",
            tmp_path / "features",
            symbol="BTCUSDT",
            interval_s=interval_s,
            start_us=0,
            end_us=2**62,
            intervals_s=[1, 3, 15, 60],
        )
        assert report.ok, report.as_dict()
        assert report.compared == sum(1 for m in live if labels[m["interval"]] == interval_s)


async def test_malformed_messages_are_dead_lettered_and_the_stream_goes_on(
    tmp_path: Path, broker: Broker, sample_events: list[MarketEvent]
) -> None:
    events = _slice(sample_events, dense_seconds=5)
    shift = shift_to_now(events[-1].receive_ts)  # recorded times -> now (time window)
    await broker.declare_inputs()
    runtime = Runtime(_settings(tmp_path, broker))
    await runtime.start()
    bad = {
        "trade": b"{not json",
        "orderbook": orjson.dumps(
            {
                **recent(
                    event_to_envelope(
                        next(e for e in events if event_type_of(e).value == "orderbook")
                    ),
                    shift,
                ),
                "payload": {"s": "BTCUSDT", "b": [["-1", "1"]], "a": [], "u": 5, "type": "delta"},
            }
        ),
        "ticker": orjson.dumps({"event_type": "liquidation", "topic": "liquidation"}),
    }
    try:
        for i, event in enumerate(events):
            kind = event_type_of(event).value
            await broker.publish(
                broker.names.input(kind),
                recent(event_to_envelope(event, include_service_time=False), shift),
            )
            if i == len(events) // 2:
                for queue_kind, body in bad.items():
                    await broker.publish(broker.names.input(queue_kind), body)
        await wait_until(
            lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= len(events),
            60,
            "raw storage",
        )
        await wait_until(
            lambda: sum(runtime.live.stats.rejected.values()) >= len(bad), 10, "rejections"
        )
    finally:
        await runtime.stop()

    dead = await broker.drain(broker.names.dead_letter, idle_s=0.3)
    by_source = {m.headers["x-source-queue"]: m for m in dead}
    assert set(by_source) == {broker.names.input(k) for k in bad}
    assert by_source[broker.names.input("trade")].headers["x-reject-reason"] == "bad_json"
    assert by_source[broker.names.input("orderbook")].headers["x-reject-reason"] in {
        "negative_value",
        "bad_number",
    }
    assert by_source[broker.names.input("ticker")].headers["x-reject-reason"] in {
        "unknown_event_type",
        "missing_field",
        "unknown_topic",
    }
    assert by_source[broker.names.input("trade")].body == b"{not json"
    assert all(m.headers.get("x-reject-detail") for m in dead)
    # Every valid message was applied and stored; the input queues are empty (all acked).
    assert runtime.engine.events_processed == len(events)
    for kind in ("orderbook", "trade", "ticker"):
        assert await broker.message_count(broker.names.input(kind)) == 0
