"""After a known stream (N messages of each kind in), /stats and /metrics say exactly N.

Runs the whole service (runtime + HTTP app) on the in-process bus and on the real RabbitMQ; the
broker's own queue counts answer /stats/subscriptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.market.events import MarketEvent
from feature_service.services.runtime import Runtime
from tests.fixtures import events as ev
from tests.fixtures.broker import Broker, ServiceNames
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.waiting import wait_until

N = 7
KEY = "k"
T0 = 1_795_600_000_000_000
KINDS = {  # queue kind -> event factory
    "orderbook": ev.snapshot,
    "trade": ev.trade,
    "kline": ev.kline,
    "ticker": ev.ticker,
    "funding": ev.funding,
}


class ManualClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


def stream() -> dict[str, list[MarketEvent]]:
    return {kind: [make(T0 + i * 1000, i) for i in range(N)] for kind, make in KINDS.items()}


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.integration)])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    extra: dict[str, Any] = {}
    broker = connection = None
    if request.param == "rabbitmq":
        connection = await aio_pika.connect_robust(rabbitmq_url())
        broker = Broker(connection, ServiceNames())
        await broker.declare_inputs()
        extra = {"rabbitmq_url": rabbitmq_url(), **broker.names.settings()}
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY],
        replay_enabled=False,
        raw_flush_age_s=0.05,
        intervals=[1, 60],
        **extra,
    )
    runtime = Runtime(settings)
    runtime.live.clock = ManualClock(T0 + 2_000_000)
    app = create_app(settings, runtime=runtime)
    app.state.runtime = runtime
    await runtime.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
    try:
        yield runtime, client, broker
    finally:
        await client.aclose()
        await runtime.stop()
        if broker is not None and connection is not None:
            await broker.cleanup()
            await connection.close()


async def publish_stream(runtime: Runtime, broker: Broker | None) -> None:
    for kind, events in stream().items():
        queue = runtime.settings.input_queues[kind]
        for event in events:
            if broker is not None:
                await broker.publish(queue, ev.body(event))
            else:
                headers = {"trace_id": event.trace_id}
                await runtime.bus.publish("", ev.body(event), routing_key=queue, headers=headers)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_statistics_and_counters_equal_the_stream(service: Any) -> None:
    runtime, client, broker = service
    await publish_stream(runtime, broker)
    queues = runtime.settings.input_queues
    tel = runtime.telemetry
    await wait_until(
        lambda: all(tel.messages[(q, "stored")] == N for q in queues.values()),
        30,
        "every message stored",
    )
    h = {"X-API-Key": KEY}

    processing = (await client.get("/stats/processing", headers=h)).json()
    assert processing["events_processed_1h"] == N * len(KINDS)
    assert processing["events_processed_24h"] == N * len(KINDS)
    [row] = processing["symbols"]
    assert row["symbol"] == "BTCUSDT" and row["events_processed_1h"] == N * len(KINDS)

    subs = (await client.get("/stats/subscriptions", headers=h)).json()
    by_queue = {s["queue_name"]: s for s in subs}
    assert set(by_queue) == set(queues.values())
    for name in queues.values():
        assert by_queue[name]["messages_consumed"] == N
        assert by_queue[name]["messages_in_queue"] == 0
        assert by_queue[name]["active_consumers"] == 1
        assert by_queue[name]["subscription_status"] == "consuming"
        assert by_queue[name]["backend"] == runtime.bus.backend

    windows = (await client.get("/stats/rolling-windows", headers=h)).json()
    [state] = windows
    assert state["total_trades_count"] == N
    assert state["memory_usage_bytes"] > 0

    storage = (await client.get("/stats/storage", headers=h)).json()
    raw = storage["raw_data_storage"]
    assert set(raw["kinds"]) == {
        "orderbook/snapshots", "trades", "klines", "ticker", "funding",
        "orderbook/checkpoints",  # derived: the live book's state, written by the service
    }  # fmt: skip
    assert raw["file_count"] == sum(k["file_count"] for k in raw["kinds"].values()) >= 5
    on_disk = sum(p.stat().st_size for p in runtime.settings.raw_dir.rglob("part-*.parquet"))
    assert raw["size_bytes"] == on_disk

    metrics = samples((await client.get("/metrics", headers=h)).text)
    for name in queues.values():
        q = (("queue", name),)
        assert metrics[("feature_service_messages_consumed_total", q)] == N
        assert metrics[("feature_service_message_age_seconds_count", q)] == N
        stored = (("outcome", "stored"), ("queue", name))
        assert metrics[("feature_service_messages_total", stored)] == N
        assert metrics[("feature_service_consumer_lag_messages", q)] == 0
    # Each event is 9 ms old at the exchange and reaches the service at T0 + 2 s.
    trade_q = (("queue", queues["trade"]),)
    expected_age = sum((T0 + 2_000_000 - (T0 + i * 1000 - 9_000)) / 1e6 for i in range(N))
    assert metrics[("feature_service_message_age_seconds_sum", trade_q)] == pytest.approx(
        expected_age
    )


async def test_processing_counts_slide_out_of_the_last_hour(service: Any) -> None:
    runtime, client, broker = service
    await publish_stream(runtime, broker)
    await wait_until(
        lambda: runtime.engine.events_processed == N * len(KINDS), 30, "stream processed"
    )
    runtime.live.clock.now += 2 * 3600 * 1_000_000
    runtime.live.tick()  # the vectors of two hours of boundaries
    body = (await client.get("/stats/processing", headers={"X-API-Key": KEY})).json()
    assert body["events_processed_1h"] == 0
    assert body["events_processed_24h"] == N * len(KINDS)
    # "Last hour" = the current minute and the 59 before it: a vector at every whole second
    # and every whole minute from that minute's start up to now.
    now = runtime.live.clock.now
    first = (now // 60_000_000 - 59) * 60_000_000
    [row] = body["symbols"]
    assert row["features_computed_1h"] == {"1s": (now - first) // 1_000_000 + 1, "1m": 60}
    assert body["features_computed_24h"] == body["features_computed_since_start"]
