"""In-process bus specifics the contract suite cannot check on RabbitMQ cheaply: queue limits,
TTL, fairness, failure fallbacks, shutdown and throughput."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from feature_service.adapters.bus import (
    BusNotConnected,
    Delivery,
    MemoryBus,
    PublishFailed,
    QueueSpec,
    create_bus,
    ws_gateway_queue,
)
from feature_service.adapters.bus.base import MAX_DETAIL_CHARS
from feature_service.adapters.bus.rabbitmq import RabbitMQBus
from feature_service.config import load_settings
from tests.fixtures.bus import Collector

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(dead_letter_queue="dlq")
    await bus.connect()
    yield bus
    await bus.close(grace=0.1)


async def publish(bus: MemoryBus, queue: str, *bodies: bytes) -> None:
    for body in bodies:
        await bus.publish("", body, routing_key=queue)


async def test_max_length_drops_the_oldest(bus: MemoryBus) -> None:
    await bus.declare_queue("q", arguments={"x-max-length": 3, "x-overflow": "drop-head"})
    await publish(bus, "q", b"0", b"1", b"2", b"3", b"4")
    assert bus.queue_info("q").ready == 3
    assert bus.stats.overflow_dropped == 2

    collector = Collector()
    await bus.consume(QueueSpec("q"), collector)
    await collector.wait_for(3)
    assert collector.bodies == [b"2", b"3", b"4"]


async def test_max_length_zero_keeps_nothing(bus: MemoryBus) -> None:
    await bus.declare_queue("q", arguments={"x-max-length": 0})
    await publish(bus, "q", b"a", b"b")
    assert bus.queue_info("q").ready == 0
    assert bus.stats.overflow_dropped == 2


async def test_reject_publish_overflow_raises(bus: MemoryBus) -> None:
    await bus.declare_queue("q", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    await publish(bus, "q", b"a", b"b")
    with pytest.raises(PublishFailed):
        await publish(bus, "q", b"c")
    assert bus.queue_info("q").ready == 2


async def test_expired_messages_are_not_delivered(bus: MemoryBus) -> None:
    await bus.declare_queue("q", arguments={"x-message-ttl": 30})
    await publish(bus, "q", b"old")
    await asyncio.sleep(0.06)
    await publish(bus, "q", b"fresh")

    collector = Collector()
    await bus.consume(QueueSpec("q"), collector)
    await collector.wait_for(1)
    await collector.settle_quiet(0.05)
    assert collector.bodies == [b"fresh"]
    assert bus.stats.expired == 1


async def test_direct_exchange_routes_by_key(bus: MemoryBus) -> None:
    bus._declare_exchange("events", "direct", durable=True)
    await bus.declare_queue("trades")
    await bus.declare_queue("books")
    await bus.bind_queue("trades", "events", "trade")
    await bus.bind_queue("books", "events", "orderbook")
    await bus.publish("events", b"t", routing_key="trade")
    await bus.publish("events", b"x", routing_key="unknown")
    assert (bus.queue_info("trades").ready, bus.queue_info("books").ready) == (1, 0)
    assert bus.stats.unroutable == 1


async def test_competing_consumers_share_a_queue_without_duplicates() -> None:
    bus = MemoryBus(prefetch=1)
    await bus.connect()
    await bus.declare_queue("q")
    seen: dict[str, list[bytes]] = {"a": [], "b": []}

    def worker(name: str) -> Collector:
        async def slow_ack(delivery: Delivery) -> None:
            seen[name].append(delivery.body)
            await asyncio.sleep(0.002)
            await delivery.ack()

        return Collector(then=slow_ack)

    a, b = worker("a"), worker("b")
    await bus.consume(QueueSpec("q"), a)
    await bus.consume(QueueSpec("q"), b)
    bodies = [str(i).encode() for i in range(40)]
    await publish(bus, "q", *bodies)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(a.deliveries) + len(b.deliveries) < 40:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    assert sorted(seen["a"] + seen["b"]) == sorted(bodies)
    assert seen["a"] and seen["b"]
    await bus.close()


async def test_a_tight_publish_loop_lets_consumers_run(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    collector = Collector()
    await bus.consume(QueueSpec("q"), collector)
    for i in range(2000):
        await bus.publish("", b"x", routing_key="q")
        if i == 1999:
            seen_during_loop = len(collector.deliveries)
    assert seen_during_loop >= 1500  # only the tail since the last yield is pending
    await collector.wait_for(2000)


async def test_closed_bus_refuses_work() -> None:
    bus = MemoryBus()
    with pytest.raises(BusNotConnected):
        await bus.consume(QueueSpec("q"), Collector())
    await bus.connect()
    await bus.close()
    with pytest.raises(BusNotConnected):
        await bus.publish("", b"x", routing_key="q")
    assert bus.health()["connected"] is False


async def test_close_returns_unacked_messages_to_their_queue(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    await publish(bus, "q", b"a", b"b")
    collector = Collector(ack=False)
    await bus.consume(QueueSpec("q"), collector)
    await collector.wait_for(2)
    assert bus.queue_info("q").unacked == 2

    await bus.close(grace=0.05)
    info = bus.queue_info("q")
    assert (info.ready, info.unacked, info.consumers) == (2, 0, 0)
    await bus.connect()
    again = Collector()
    await bus.consume(QueueSpec("q"), again)
    received = await again.wait_for(2)
    assert [(d.body, d.redelivered) for d in received] == [(b"a", True), (b"b", True)]


async def test_cancel_interrupts_a_handler_that_outlives_the_grace(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    await publish(bus, "q", b"stuck")
    started = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(3600)

    handle = await bus.consume(QueueSpec("q"), hang)
    await started.wait()
    t0 = time.perf_counter()
    await handle.cancel(grace=0.05)
    assert time.perf_counter() - t0 < 1.0
    assert bus.queue_info("q").ready == 1


async def test_failed_dead_letter_requeues_once_then_drops(
    bus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(delivery: Delivery, reason: str, detail: str) -> None:
        raise RuntimeError("dead-letter queue unavailable")

    monkeypatch.setattr(bus, "dead_letter", broken)
    await bus.declare_queue("q")
    await publish(bus, "q", b"poison")

    def fail(delivery: Delivery) -> Exception | None:
        return ValueError("bad")

    collector = Collector(fail=fail)
    await bus.consume(QueueSpec("q"), collector)
    await collector.wait_for(2)
    await collector.settle_quiet(0.1)
    assert [d.redelivered for d in collector.deliveries] == [False, True]
    assert bus.stats.dropped_after_failed_dead_letter == 1
    assert bus.queue_info("q").ready == 0


async def test_handler_failing_after_ack_is_counted_not_dead_lettered(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    await publish(bus, "q", b"m")

    async def ack_then_fail(delivery: Delivery) -> None:
        await delivery.ack()
        raise RuntimeError("after ack")

    collector = Collector(then=ack_then_fail)
    await bus.consume(QueueSpec("q"), collector)
    await collector.wait_for(1)
    await collector.settle_quiet(0.05)
    assert bus.stats.handler_errors == 1
    assert bus.stats.dead_lettered == 0
    assert bus.queue_info("dlq").ready == 0


async def test_dead_letter_detail_is_truncated(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    await publish(bus, "q", b"m")

    async def reject(delivery: Delivery) -> None:
        await bus.dead_letter(delivery, "bad_number", "x" * 10_000)

    await bus.consume(QueueSpec("q"), Collector(then=reject))
    dead = Collector()
    await bus.consume(QueueSpec("dlq"), dead)
    [message] = await dead.wait_for(1)
    assert message.headers["x-reject-detail"] == "x" * MAX_DETAIL_CHARS


async def test_dead_letter_of_a_stale_delivery_is_a_no_op(bus: MemoryBus) -> None:
    await bus.declare_queue("q")
    await publish(bus, "q", b"m")
    collector = Collector(ack=False)
    handle = await bus.consume(QueueSpec("q"), collector)
    [delivery] = await collector.wait_for(1)
    await handle.cancel(grace=0.05)

    await bus.dead_letter(delivery, "bad_json", "late")
    assert bus.queue_info("dlq").ready == 0
    assert bus.queue_info("q").ready == 1
    assert bus.stats.stale_settlements == 1


async def test_ws_gateway_queue_created_in_process_carries_gateway_arguments(
    bus: MemoryBus,
) -> None:
    await bus.consume(ws_gateway_queue("ws-gateway.trade"), Collector())
    info = bus.queue_info("ws-gateway.trade")
    assert info.durable is True
    assert info.arguments == {
        "x-message-ttl": 86_400_000,
        "x-max-length": 100_000,
        "x-overflow": "drop-head",
    }
    assert info.consumers == 1


def test_create_bus_picks_the_adapter_from_settings() -> None:
    embedded = create_bus(load_settings(rabbitmq_url=None, dead_letter_queue="dl", prefetch=7))
    assert isinstance(embedded, MemoryBus)
    assert embedded.dead_letter_queue == "dl"
    remote = create_bus(load_settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/"))
    assert isinstance(remote, RabbitMQBus)
    assert remote.dead_letter_queue == "feature-service.dead-letter"
    assert remote.is_connected is False
