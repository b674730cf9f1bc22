"""One contract, two buses: every test runs against the in-process bus and the real RabbitMQ."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from feature_service.adapters.bus import (
    Delivery,
    DeliveryAlreadySettled,
    ExchangeNotFound,
    QueueNotFound,
    QueueSpec,
    TopologyMismatch,
    ws_gateway_queue,
)
from feature_service.adapters.bus.rabbitmq import RabbitMQBus
from feature_service.adapters.bus.topology import WS_GATEWAY_QUEUE_ARGUMENTS
from feature_service.market.errors import MessageRejected, RejectReason
from tests.fixtures.bus import BusKit, Collector, RabbitProbe, drop_connection

pytestmark = pytest.mark.timeout(60)


def envelope(i: int) -> bytes:
    return orjson.dumps({"event_type": "trade", "seq": i})


async def publish_to(kit: BusKit, queue: str, *bodies: bytes, **kwargs: object) -> None:
    for body in bodies:
        await kit.bus.publish("", body, routing_key=queue, **kwargs)  # type: ignore[arg-type]


async def test_publish_then_consume_preserves_order_headers_and_content_type(
    kit: BusKit,
) -> None:
    queue = kit.names.queue("ws-gateway.trade")
    await kit.bus.declare_queue(queue)
    bodies = [envelope(i) for i in range(300)]
    await publish_to(kit, queue, *bodies, headers={"event_type": "trade", "trace_id": "t-1"})

    collector = Collector()
    await kit.bus.consume(QueueSpec(queue), collector)
    received = await collector.wait_for(300)

    assert [d.body for d in received] == bodies
    first = received[0]
    assert first.queue == queue
    assert first.headers == {"event_type": "trade", "trace_id": "t-1"}
    assert first.content_type == "application/json"
    assert first.persistent is True
    assert first.redelivered is False
    assert first.message_id
    assert [d.delivery_tag for d in received[:3]] == [1, 2, 3]


async def test_handler_calls_are_sequential_per_consumer(kit: BusKit) -> None:
    queue = kit.names.queue("sequential")
    await kit.bus.declare_queue(queue)
    bodies = [envelope(i) for i in range(50)]
    await publish_to(kit, queue, *bodies)
    active = 0
    most_active = 0
    finished: list[bytes] = []

    async def slow(delivery: Delivery) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        await asyncio.sleep(0.001 * (delivery.delivery_tag % 3))  # suspends, unevenly
        finished.append(delivery.body)
        active -= 1
        await delivery.ack()

    collector = Collector(then=slow)
    await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(50)
    await collector.settle_quiet(0.1)
    assert most_active == 1
    assert finished == bodies


async def test_ack_removes_the_message(kit: BusKit) -> None:
    queue = kit.names.queue("acked")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"a", b"b")
    collector = Collector()
    handle = await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(2)
    await handle.cancel()
    assert not handle.active

    again = Collector()
    await kit.bus.consume(QueueSpec(queue), again)
    await again.settle_quiet()
    assert again.bodies == []
    assert await kit.probe.ready_count(queue) == 0
    assert kit.bus.stats.acked == 2


async def test_nack_with_requeue_redelivers_flagged_redelivered(kit: BusKit) -> None:
    queue = kit.names.queue("requeue")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"first", b"second")

    nacked: list[Delivery] = []

    async def nack_first_once(delivery: Delivery) -> None:
        if delivery.body == b"first" and not nacked:
            nacked.append(delivery)
            await delivery.nack(requeue=True)
        else:
            await delivery.ack()

    collector = Collector(then=nack_first_once)
    await kit.bus.consume(QueueSpec(queue), collector)
    received = await collector.wait_for(3)
    await collector.settle_quiet()

    # Relative order against messages already prefetched is not part of the contract.
    assert sorted((d.body, d.redelivered) for d in received) == [
        (b"first", False),
        (b"first", True),
        (b"second", False),
    ]
    assert len(collector.deliveries) == 3
    assert kit.bus.stats.requeued == 1
    assert await kit.probe.ready_count(queue) == 0


async def test_nack_without_requeue_drops(kit: BusKit) -> None:
    queue = kit.names.queue("drop")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"x")

    async def drop(delivery: Delivery) -> None:
        await delivery.nack(requeue=False)

    collector = Collector(then=drop)
    await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(1)
    await collector.settle_quiet()
    assert collector.bodies == [b"x"]
    assert await kit.probe.ready_count(queue) == 0


async def test_settling_twice_raises(kit: BusKit) -> None:
    queue = kit.names.queue("twice")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"x")
    errors: list[Exception] = []

    async def ack_twice(delivery: Delivery) -> None:
        await delivery.ack()
        for second in (delivery.ack(), delivery.nack(requeue=True)):
            try:
                await second
            except DeliveryAlreadySettled as exc:
                errors.append(exc)

    collector = Collector(then=ack_twice)
    await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(1)
    await collector.settle_quiet()
    assert len(errors) == 2
    assert collector.bodies == [b"x"]


async def _dead_letters(kit: BusKit, count: int) -> list[Delivery]:
    collector = Collector()
    await kit.bus.consume(QueueSpec(kit.bus.dead_letter_queue), collector)
    return await collector.wait_for(count)


async def test_handler_exception_dead_letters_and_consumer_keeps_going(kit: BusKit) -> None:
    queue = kit.names.queue("ws-gateway.trade")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"ok-1", b"boom", b"ok-2", headers={"trace_id": "t-9"})

    def fail(delivery: Delivery) -> Exception | None:
        return ValueError("cannot parse") if delivery.body == b"boom" else None

    collector = Collector(fail=fail)
    await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(3)
    await collector.settle_quiet()

    assert collector.bodies == [b"ok-1", b"boom", b"ok-2"]
    [dead] = await _dead_letters(kit, 1)
    assert dead.body == b"boom"
    assert dead.headers["x-reject-reason"] == "handler_error"
    assert dead.headers["x-reject-detail"] == "ValueError: cannot parse"
    assert dead.headers["x-source-queue"] == queue
    assert dead.headers["x-original-headers"] == {"trace_id": "t-9"}
    assert kit.bus.stats.handler_errors == 1
    assert kit.bus.stats.dead_lettered == 1
    assert await kit.probe.ready_count(queue) == 0


async def test_message_rejected_from_handler_keeps_its_reason(kit: BusKit) -> None:
    queue = kit.names.queue("rejects")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"{not json")

    def fail(delivery: Delivery) -> Exception | None:
        return MessageRejected(RejectReason.BAD_JSON, "line 1 column 2")

    await kit.bus.consume(QueueSpec(queue), Collector(fail=fail))
    [dead] = await _dead_letters(kit, 1)
    assert dead.body == b"{not json"
    assert dead.headers["x-reject-reason"] == "bad_json"
    assert dead.headers["x-reject-detail"] == "line 1 column 2"


async def test_dead_letter_moves_body_with_reason_and_removes_original(kit: BusKit) -> None:
    queue = kit.names.queue("ws-gateway.orderbook")
    await kit.bus.declare_queue(queue)
    body = b'{"event_type":"orderbook","payload":{}}'
    await publish_to(kit, queue, body, headers={"event_type": "orderbook", "trace_id": "t-2"})

    async def reject(delivery: Delivery) -> None:
        await kit.bus.dead_letter(delivery, "missing_symbol", "no s in payload")

    collector = Collector(then=reject)
    handle = await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(1)
    [dead] = await _dead_letters(kit, 1)

    assert dead.body == body
    assert dead.persistent is True
    assert dead.headers["x-reject-reason"] == "missing_symbol"
    assert dead.headers["x-reject-detail"] == "no s in payload"
    assert dead.headers["x-source-queue"] == queue
    assert dead.headers["x-original-headers"] == {"event_type": "orderbook", "trace_id": "t-2"}
    assert dead.headers["x-redelivered"] is False
    assert isinstance(dead.headers["x-dead-lettered-at"], int)
    # the original is acked: gone, and never redelivered even after its consumer goes away
    await handle.cancel()
    assert await kit.probe.ready_count(queue) == 0
    assert collector.deliveries[0].settled


async def test_dead_letter_queue_is_declared_on_connect(kit: BusKit) -> None:
    assert await kit.probe.exists(kit.bus.dead_letter_queue)


async def test_features_topology_fans_out_to_its_queue_and_extra_bound_queues(
    kit: BusKit,
) -> None:
    name = kit.names.exchange("features.live")
    await kit.bus.ensure_features_topology(name)
    await kit.bus.ensure_features_topology(name)  # idempotent
    extra = kit.names.queue("strategy.features")
    await kit.bus.declare_queue(extra)
    await kit.bus.bind_queue(extra, name)

    vector = orjson.dumps({"symbol": "BTCUSDT", "interval_s": 1, "features": {"mid": 50000.15}})
    await kit.bus.publish(name, vector)

    own, other = Collector(), Collector()
    await kit.bus.consume(QueueSpec(name), own)
    await kit.bus.consume(QueueSpec(extra), other)
    assert [d.body for d in await own.wait_for(1)] == [vector]
    assert [d.body for d in await other.wait_for(1)] == [vector]
    assert own.deliveries[0].content_type == "application/json"


async def test_bind_to_missing_exchange_or_queue_raises(kit: BusKit) -> None:
    queue = kit.names.queue("lonely")
    await kit.bus.declare_queue(queue)
    with pytest.raises(ExchangeNotFound):
        await kit.bus.bind_queue(queue, kit.names.exchange("no-such-exchange"))
    name = kit.names.exchange("features.live")
    await kit.bus.ensure_features_topology(name)
    with pytest.raises(QueueNotFound):
        await kit.bus.bind_queue(kit.names.queue("no-such-queue"), name)


async def test_ws_gateway_queue_that_exists_is_used_passively(kit: BusKit) -> None:
    queue = kit.names.queue("ws-gateway.kline")
    await kit.probe.create_queue(queue, WS_GATEWAY_QUEUE_ARGUMENTS)
    await publish_to(kit, queue, b"k1")

    collector = Collector()
    await kit.bus.consume(ws_gateway_queue(queue), collector)
    assert (await collector.wait_for(1))[0].body == b"k1"
    assert await kit.probe.accepts_declaration(queue, True, WS_GATEWAY_QUEUE_ARGUMENTS)


async def test_ws_gateway_queue_with_other_arguments_is_left_as_it_is(kit: BusKit) -> None:
    queue = kit.names.queue("ws-gateway.ticker")
    await kit.probe.create_queue(queue, {"x-max-length": 7})
    await publish_to(kit, queue, b"t1")

    collector = Collector()
    await kit.bus.consume(ws_gateway_queue(queue), collector)
    assert (await collector.wait_for(1))[0].body == b"t1"
    assert await kit.probe.accepts_declaration(queue, True, {"x-max-length": 7})
    assert not await kit.probe.accepts_declaration(queue, True, WS_GATEWAY_QUEUE_ARGUMENTS)


async def test_missing_ws_gateway_queue_is_created_with_exactly_its_arguments(
    kit: BusKit,
) -> None:
    queue = kit.names.queue("ws-gateway.funding")
    assert not await kit.probe.exists(queue)

    collector = Collector()
    await kit.bus.consume(ws_gateway_queue(queue), collector)

    assert await kit.probe.exists(queue)
    assert await kit.probe.accepts_declaration(
        queue,
        True,
        {"x-message-ttl": 86_400_000, "x-max-length": 100_000, "x-overflow": "drop-head"},
    )
    assert not await kit.probe.accepts_declaration(queue, True, {})
    assert not await kit.probe.accepts_declaration(
        queue, True, {"x-message-ttl": 86_400_000, "x-max-length": 100_000}
    )
    await publish_to(kit, queue, b"f1")
    assert (await collector.wait_for(1))[0].body == b"f1"


async def test_strict_spec_against_different_queue_raises_mismatch(kit: BusKit) -> None:
    queue = kit.names.queue("strict")
    await kit.probe.create_queue(queue, {"x-max-length": 3})
    with pytest.raises(TopologyMismatch):
        await kit.bus.consume(
            QueueSpec(queue, passive=False, arguments=WS_GATEWAY_QUEUE_ARGUMENTS), Collector()
        )
    # the broker refusing one declaration does not break the bus
    await publish_to(kit, queue, b"still-works")
    assert await kit.probe.ready_count(queue) == 1


async def test_passive_spec_without_create_raises_queue_not_found(kit: BusKit) -> None:
    queue = kit.names.queue("ws-gateway.order")
    with pytest.raises(QueueNotFound):
        await kit.bus.consume(QueueSpec(queue, create_missing=False), Collector())
    assert not await kit.probe.exists(queue)


async def test_persistent_flag_follows_publish_argument(kit: BusKit) -> None:
    queue = kit.names.queue("persistence")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"durable")
    await publish_to(kit, queue, b"transient", persistent=False)

    if isinstance(kit.probe, RabbitProbe):
        # as stored by the broker, not as our Delivery reports it
        raw = await kit.probe.get_raw(queue)
        assert raw is not None and raw.body == b"durable"
        assert raw.header.properties.delivery_mode == 2
        assert raw.header.properties.content_type == "application/json"
        await publish_to(kit, queue, b"durable")

    collector = Collector()
    await kit.bus.consume(QueueSpec(queue), collector)
    received = await collector.wait_for(2)
    assert {d.body: d.persistent for d in received} == {b"transient": False, b"durable": True}


async def test_prefetch_limits_unacked_deliveries(kit: BusKit) -> None:
    bus = await kit.factory(prefetch=3)
    queue = kit.names.queue("prefetch")
    await bus.declare_queue(queue)
    for i in range(10):
        await bus.publish("", envelope(i), routing_key=queue)

    collector = Collector(ack=False)
    await bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(3)
    await collector.settle_quiet(0.5)
    assert len(collector.deliveries) == 3

    await collector.deliveries[0].ack()
    await collector.wait_for(4)
    await collector.settle_quiet(0.3)
    assert collector.bodies == [envelope(i) for i in range(4)]


async def test_cancelled_consumer_hands_unacked_messages_to_the_next(kit: BusKit) -> None:
    queue = kit.names.queue("handover")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"m1", b"m2", b"m3")

    first = Collector(ack=False)
    handle = await kit.bus.consume(QueueSpec(queue), first)
    await first.wait_for(3)
    await handle.cancel(grace=0.2)

    second = Collector()
    await kit.bus.consume(QueueSpec(queue), second)
    received = await second.wait_for(3)
    assert [(d.body, d.redelivered) for d in received] == [
        (b"m1", True),
        (b"m2", True),
        (b"m3", True),
    ]
    # a late ack from the cancelled consumer is ignored, not an error
    await first.deliveries[0].ack()
    assert kit.bus.stats.stale_settlements == 1
    await second.settle_quiet()
    assert len(second.deliveries) == 3


async def test_cancel_waits_for_deferred_acks_within_the_grace(kit: BusKit) -> None:
    queue = kit.names.queue("deferred")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"d1", b"d2")
    later: set[asyncio.Task[None]] = set()

    async def ack_later(delivery: Delivery) -> None:
        async def ack() -> None:
            await asyncio.sleep(0.2)  # e.g. after the raw store flushed
            await delivery.ack()

        task = asyncio.create_task(ack())
        later.add(task)

    collector = Collector(then=ack_later)
    handle = await kit.bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(2)
    await handle.cancel(grace=5.0)

    assert all(task.done() for task in later)
    assert kit.bus.stats.acked == 2
    assert kit.bus.stats.stale_settlements == 0
    assert await kit.probe.ready_count(queue) == 0


async def test_handler_may_cancel_its_own_consumer(kit: BusKit) -> None:
    queue = kit.names.queue("self-cancel")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"stop", b"after")
    handles = []

    async def stop(delivery: Delivery) -> None:
        await delivery.ack()
        await handles[0].cancel()

    collector = Collector(then=stop)
    handles.append(await kit.bus.consume(QueueSpec(queue), collector))
    await collector.wait_for(1)
    await collector.settle_quiet()
    assert collector.bodies == [b"stop"]
    assert not handles[0].active

    rest = Collector()
    await kit.bus.consume(QueueSpec(queue), rest)
    assert (await rest.wait_for(1))[0].body == b"after"


async def test_publish_to_unknown_exchange_raises_and_bus_keeps_working(kit: BusKit) -> None:
    with pytest.raises(ExchangeNotFound):
        await kit.bus.publish(kit.names.exchange("nowhere"), b"x")
    queue = kit.names.queue("after-error")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"ok")
    assert await kit.probe.ready_count(queue) == 1


async def test_unroutable_publish_on_default_exchange_is_dropped_silently(kit: BusKit) -> None:
    missing = kit.names.queue("never-declared")
    await kit.bus.publish("", b"lost", routing_key=missing)
    assert not await kit.probe.exists(missing)


async def test_health_reports_connection_and_counters(kit: BusKit) -> None:
    bus = await kit.factory()
    queue = kit.names.queue("health")
    await bus.declare_queue(queue)
    await bus.publish("", b"x", routing_key=queue)
    collector = Collector()
    await bus.consume(QueueSpec(queue), collector)
    await collector.wait_for(1)
    await asyncio.sleep(0.05)

    health = bus.health()
    assert health["backend"] == kit.backend
    assert health["connected"] is True
    assert health["reconnects"] == 0
    assert health["last_error"] is None
    assert health["consumers"] == 1
    assert health["stats"]["published"] == 1
    assert health["stats"]["delivered"] == 1
    assert health["stats"]["acked"] == 1

    await bus.close()
    assert bus.is_connected is False
    assert bus.health()["consumers"] == 0


@pytest.mark.integration
@pytest.mark.parametrize("bus_backend", ["rabbitmq"], indirect=True)
async def test_rabbitmq_consumer_resumes_after_connection_loss(kit: BusKit) -> None:
    assert isinstance(kit.bus, RabbitMQBus)
    queue = kit.names.queue("ws-gateway.trade")
    collector = Collector()
    await kit.bus.consume(ws_gateway_queue(queue), collector)
    await publish_to(kit, queue, b"before")
    await collector.wait_for(1)

    drop_connection(kit.bus)
    # published while the connection is down: waits for the robust channel, then goes out
    await publish_to(kit, queue, b"during")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while kit.bus.health()["reconnects"] < 1:
        assert loop.time() < deadline, "robust connection did not reconnect"
        await asyncio.sleep(0.05)

    health = kit.bus.health()
    assert health["connected"] is True
    assert health["last_error"] is not None
    await publish_to(kit, queue, b"after")
    await collector.wait_for(3)
    await collector.settle_quiet()
    assert collector.bodies == [b"before", b"during", b"after"]
    assert await kit.probe.ready_count(queue) == 0


@pytest.mark.integration
@pytest.mark.parametrize("bus_backend", ["rabbitmq"], indirect=True)
async def test_rabbitmq_consumer_recreates_a_deleted_ws_gateway_queue(kit: BusKit) -> None:
    """The broker cancels consumers of a deleted queue; the robust channel re-declares it with
    ws-gateway's exact arguments and subscribes again (a replaced broker node heals the same)."""
    assert isinstance(kit.probe, RabbitProbe)
    queue = kit.names.queue("ws-gateway.orderbook")
    collector = Collector()
    await kit.bus.consume(ws_gateway_queue(queue), collector)
    await kit.probe.delete([queue], [])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await kit.probe.exists(queue):
        assert loop.time() < deadline, "queue was not re-declared"
        await asyncio.sleep(0.1)
    assert await kit.probe.accepts_declaration(queue, True, WS_GATEWAY_QUEUE_ARGUMENTS)
    await publish_to(kit, queue, b"after-delete")
    assert (await collector.wait_for(1))[0].body == b"after-delete"


@pytest.mark.integration
@pytest.mark.parametrize("bus_backend", ["rabbitmq"], indirect=True)
async def test_rabbitmq_unacked_delivery_returns_after_connection_loss(kit: BusKit) -> None:
    assert isinstance(kit.bus, RabbitMQBus)
    queue = kit.names.queue("ws-gateway.ticker")
    await kit.bus.declare_queue(queue)
    await publish_to(kit, queue, b"held")

    async def ack_only_redelivered(delivery: Delivery) -> None:
        if delivery.redelivered:
            await delivery.ack()

    collector = Collector(then=ack_only_redelivered)
    await kit.bus.consume(QueueSpec(queue), collector)
    [first] = await collector.wait_for(1)

    drop_connection(kit.bus)
    second = (await collector.wait_for(2, within=20))[1]
    assert (second.body, second.redelivered) == (b"held", True)
    await first.ack()  # the old channel is gone: ignored, not an error
    assert kit.bus.stats.stale_settlements == 1
    await collector.settle_quiet()
    assert len(collector.deliveries) == 2
    assert await kit.probe.ready_count(queue) == 0
