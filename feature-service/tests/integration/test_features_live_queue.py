"""features.live sized for live use (issue 17), on the real RabbitMQ and on the in-process bus:
a consumer that starts late reads vectors at most one TTL old, the queue never holds more than
its length, and a queue that already exists with ws-gateway's old arguments does not stop the
service (a policy is applied through the management API, or a warning names the fix)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from feature_service.adapters.bus import MemoryBus, QueueSpec
from feature_service.adapters.bus.topology import (
    WS_GATEWAY_QUEUE_ARGUMENTS,
    features_live_max_length,
)
from feature_service.adapters.clients.rabbitmq_management import RabbitMQManagement
from feature_service.config import Settings
from feature_service.market.events import MarketEvent, event_type_of
from feature_service.market.recording import event_to_envelope
from feature_service.services.live_queue import live_queue_arguments, policy_name
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.market_messages import recent, shift_to_now
from tests.fixtures.model_service import FeatureVector

pytestmark = pytest.mark.integration

TTL_S = 2.0
LENGTH = 4


def management_url() -> str:
    host = os.environ.get("FEATURE_SERVICE_TEST_MQ_HOST", "127.0.0.1")
    port = os.environ.get("FEATURE_SERVICE_TEST_MQ_MANAGEMENT_PORT", "15672")
    return f"http://guest:guest@{host}:{port}"


def _settings(tmp_path: Path, broker: Broker, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "rabbitmq_url": rabbitmq_url(),
        "data_dir": tmp_path,
        "raw_flush_age_s": 0.2,
        "features_live_ttl_s": TTL_S,
        "features_live_max_length": LENGTH,
        **broker.names.settings(),
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _feed(broker: Broker, events: list[MarketEvent]) -> None:
    await broker.declare_inputs()
    shift = shift_to_now(events[-1].receive_ts)
    for event in events:
        kind = event_type_of(event).value
        await broker.publish(
            broker.names.input(kind),
            recent(event_to_envelope(event, include_service_time=False), shift),
        )


async def _count(broker: Broker) -> int:
    return await broker.message_count(broker.names.features)


async def _sample_counts(broker: Broker, seconds: float) -> list[int]:
    counts: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.append(await _count(broker))
        await asyncio.sleep(0.2)
    return counts


async def _declare_with_old_arguments(broker: Broker) -> None:
    """features.live as earlier versions declared it (ws-gateway's arguments)."""
    channel = await broker.connection.channel()
    await channel.declare_queue(
        broker.names.features, durable=True, arguments=dict(WS_GATEWAY_QUEUE_ARGUMENTS)
    )
    await channel.close()


def test_default_length_is_sized_from_symbols_and_intervals() -> None:
    # 60 s TTL: 60 one-second + 20 three-second + 4 fifteen-second + 1 one-minute vectors per
    # symbol, twice over for headroom.
    assert features_live_max_length(1, (1, 3, 15, 60), 60) == 170
    assert features_live_max_length(3, (1, 60), 60) == 3 * 61 * 2
    settings = Settings(_env_file=None, symbols=["BTCUSDT", "ETHUSDT"])  # type: ignore[call-arg]
    assert live_queue_arguments(settings) == {
        "x-message-ttl": 60_000,
        "x-max-length": 340,
        "x-overflow": "drop-head",
    }


async def test_late_consumer_reads_vectors_at_most_one_ttl_old_over_rabbitmq(
    tmp_path: Path, broker: Broker, sample_events: list[MarketEvent]
) -> None:
    runtime = Runtime(_settings(tmp_path, broker))
    await runtime.start()
    try:
        assert runtime.live_queue is not None and runtime.live_queue.exact
        await _feed(broker, sample_events[-400:])
        # Nobody consumes features.live for three TTLs while vectors keep coming every second.
        counts = await _sample_counts(broker, 3 * TTL_S)
        assert runtime.live.stats.published > LENGTH  # more than the queue may hold
        assert max(counts) <= LENGTH
        assert max(counts) > 0

        queue = await (await broker.channel()).declare_queue(broker.names.features, passive=True)
        first = await queue.get(no_ack=True, timeout=5)
        FeatureVector.model_validate_json(first.body)  # the Model Service parses it as it is
        age_s = time.time() - orjson.loads(first.body)["timestamp_us"] / 1e6
        # published right after its close time, so at most one TTL old (plus the publish delay)
        assert age_s <= TTL_S + 0.5, age_s
    finally:
        await runtime.stop()


async def test_startup_against_a_queue_with_the_old_arguments_warns_with_the_fix(
    tmp_path: Path, broker: Broker
) -> None:
    await _declare_with_old_arguments(broker)
    runtime = Runtime(_settings(tmp_path, broker, replay_enabled=False))
    await runtime.start()
    try:
        outcome = runtime.live_queue
        assert outcome is not None
        assert not outcome.exact and not outcome.policy_applied
        assert outcome.warning is not None
        assert "rabbitmqctl set_policy" in outcome.warning
        assert broker.names.features in outcome.warning
        # still bound and used: a published vector reaches the queue
        await runtime.bus.publish(broker.names.features, b'{"x": 1}')
        assert await _count(broker) == 1
    finally:
        await runtime.stop()


async def test_startup_against_a_queue_with_the_old_arguments_applies_a_policy(
    tmp_path: Path, broker: Broker
) -> None:
    await _declare_with_old_arguments(broker)
    settings = _settings(
        tmp_path, broker, replay_enabled=False, rabbitmq_management_url=management_url()
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        outcome = runtime.live_queue
        assert outcome is not None and outcome.policy_applied and outcome.warning is None
        # The queue's own arguments say 100,000 messages and 24 h; the policy bounds it.
        for i in range(LENGTH * 3):
            await runtime.bus.publish(broker.names.features, orjson.dumps({"i": i}))
        assert await _count(broker) == LENGTH
        queue = await (await broker.channel()).declare_queue(broker.names.features, passive=True)
        head = await queue.get(no_ack=True, timeout=5)
        assert orjson.loads(head.body) == {"i": LENGTH * 2}  # drop-head kept the newest
        await asyncio.sleep(TTL_S + 0.5)
        # and the policy's TTL, not the queue's 24 h, applies: nothing stale is delivered
        assert await queue.get(no_ack=True, fail=False) is None
    finally:
        await runtime.stop()
        await RabbitMQManagement(management_url()).delete_policy(
            "/", policy_name(broker.names.features)
        )


async def test_late_consumer_reads_fresh_vectors_on_the_in_process_bus(
    tmp_path: Path, sample_events: list[MarketEvent]
) -> None:
    bus = MemoryBus()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        replay_enabled=False,
        features_live_ttl_s=TTL_S,
        features_live_max_length=LENGTH,
    )
    runtime = Runtime(settings, bus=bus)
    await runtime.start()
    try:
        name = settings.features_exchange
        assert bus.queue_info(name).arguments["x-max-length"] == LENGTH
        shift = shift_to_now(sample_events[-1].receive_ts)
        for event in sample_events[-400:]:
            kind = event_type_of(event).value
            body = orjson.dumps(recent(event_to_envelope(event, include_service_time=False), shift))
            await bus.publish("", body, routing_key=settings.input_queues[kind])
        ready: list[int] = []
        deadline = time.monotonic() + 3 * TTL_S
        while time.monotonic() < deadline:
            ready.append(bus.queue_info(name).ready)
            await asyncio.sleep(0.1)
        assert runtime.live.stats.published > LENGTH
        assert 0 < max(ready) <= LENGTH
        # at most one TTL of vectors is kept even below the length (~4 vectors a second here)
        assert bus.stats.expired > 0

        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def handler(delivery: Any) -> None:
            await got.put(delivery.body)
            await delivery.ack()

        consumer = await bus.consume(QueueSpec(name), handler)
        first = await asyncio.wait_for(got.get(), 5)
        age_s = time.time() - orjson.loads(first)["timestamp_us"] / 1e6
        assert age_s <= TTL_S + 0.5, age_s
        await consumer.cancel()
    finally:
        await runtime.stop()
