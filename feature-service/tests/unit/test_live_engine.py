"""LiveEngine: the live path (bytes -> stamp -> parse -> engine) adds no skew, acks only after
storage, and dead-letters bad input."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import orjson
import pytest

from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine
from feature_service.engine.vector import FeatureVector
from feature_service.market.events import MarketEvent
from feature_service.market.recording import event_to_envelope


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 0.0


@dataclass
class FakeDelivery:
    body: bytes
    queue: str = "ws-gateway.trade"
    acked: int = 0
    requeued: int = 0

    async def ack(self) -> None:
        self.acked += 1

    async def nack(self, requeue: bool) -> None:
        assert requeue, "nack without requeue would drop the message"
        self.requeued += 1


@dataclass
class FakeRawSink:
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    events: list[MarketEvent] = field(default_factory=list)
    healthy: bool = True
    _recovered: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_healthy(self) -> None:
        while not self.healthy:
            await self._recovered.wait()

    def submit(self, event: MarketEvent, raw: bytes | str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        self.events.append(event)
        return fut


def test_live_ingest_equals_offline_replay(sample_events: list[MarketEvent]) -> None:
    offline = FeatureEngine()
    expected: list[FeatureVector] = []
    for event in sample_events:
        expected += offline.process(event)

    clock = FakeClock()
    captured: list[FeatureVector] = []
    live = LiveEngine(FeatureEngine(), clock, on_vectors=captured.extend)
    rng = random.Random(3)
    for event in sample_events:
        body = orjson.dumps(event_to_envelope(event, include_service_time=False))
        if rng.random() < 0.2 and event.receive_ts > clock.now:
            clock.now = rng.randrange(clock.now, event.receive_ts)
            live.tick()  # the timer in a quiet moment
        clock.now = event.receive_ts
        live.ingest(body, "q")

    assert len(captured) == len(expected) > 100
    for a, b in zip(captured, expected, strict=True):
        assert (a.timestamp, a.interval_s) == (b.timestamp, b.interval_s)
        assert a.features == b.features
    last = expected[-1]
    assert live.latest_vector("BTCUSDT", last.interval_s).features == last.features


async def test_ack_waits_for_durable_storage() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    sink = FakeRawSink()
    live = LiveEngine(FeatureEngine(), FakeClock(1_737_972_000_200_000), raw_sink=sink)
    delivery = FakeDelivery(CONTRACT_TRADE.encode())
    await live.on_delivery(delivery)
    await asyncio.sleep(0)
    assert delivery.acked == 0, "acknowledged before the raw store had it on disk"
    assert len(sink.events) == 1 and sink.events[0].price == pytest.approx(50000.20)
    sink.futures[0].set_result(None)
    for _ in range(3):
        await asyncio.sleep(0)
    assert delivery.acked == 1


async def test_a_record_that_can_never_be_stored_is_dead_lettered_not_left_unacked() -> None:
    from feature_service.market.errors import UnstorableRecord
    from tests.fixtures.market_messages import CONTRACT_TRADE

    dead: list[tuple[object, str]] = []

    async def dead_letter(delivery: object, reason: str, detail: str) -> None:
        dead.append((delivery, reason))

    sink = FakeRawSink()
    live = LiveEngine(
        FeatureEngine(), FakeClock(1_737_972_000_200_000), raw_sink=sink, dead_letter=dead_letter
    )
    delivery = FakeDelivery(CONTRACT_TRADE.encode())
    await live.on_delivery(delivery)
    sink.futures[0].set_exception(UnstorableRecord("symbol not usable as a folder name"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert dead == [(delivery, "unstorable")]
    assert live.stats.raw_failures == 1


async def test_a_store_that_gave_up_hands_the_message_back_to_the_broker() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    sink = FakeRawSink()
    live = LiveEngine(FeatureEngine(), FakeClock(1_737_972_000_200_000), raw_sink=sink)
    delivery = FakeDelivery(CONTRACT_TRADE.encode())
    await live.on_delivery(delivery)
    sink.futures[0].set_exception(OSError("disk full at shutdown"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert (delivery.acked, delivery.requeued) == (0, 1)


async def test_consumption_pauses_while_storage_fails_and_resumes_by_itself() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    sink = FakeRawSink(healthy=False)
    live = LiveEngine(FeatureEngine(), FakeClock(1_737_972_000_200_000), raw_sink=sink)
    delivery = FakeDelivery(CONTRACT_TRADE.encode())
    handler = asyncio.ensure_future(live.on_delivery(delivery))
    await asyncio.sleep(0.05)
    assert not handler.done(), "took a new delivery while the raw store was failing"
    assert live.engine.events_processed == 0
    assert live.stats.storage_paused_since_us is not None
    sink.healthy = True
    sink._recovered.set()
    await asyncio.wait_for(handler, 5)
    assert live.engine.events_processed == 1 and len(sink.events) == 1
    assert live.stats.storage_paused_since_us is None and live.stats.storage_pauses == 1


async def test_a_handler_failure_is_retried_with_backoff_then_dead_lettered() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    dead: list[tuple[object, str, str]] = []

    async def dead_letter(delivery: object, reason: str, detail: str) -> None:
        dead.append((delivery, reason, detail))

    live = LiveEngine(
        FeatureEngine(),
        FakeClock(1_737_972_000_200_000),
        dead_letter=dead_letter,
        max_attempts=3,
        retry_backoff_s=0.001,
    )

    def broken_process(event: object) -> list[FeatureVector]:
        raise RuntimeError("bug")

    live.engine.process = broken_process  # type: ignore[method-assign]
    delivery = FakeDelivery(CONTRACT_TRADE.encode())
    for _ in range(3):  # the broker redelivers after each nack
        await live.on_delivery(delivery)
    assert delivery.requeued == 2
    assert [(d, r) for d, r, _ in dead] == [(delivery, "handler_error")]
    assert "after 3 attempts" in dead[0][2]
    assert live.stats.retried == 2 and live.stats.retries_exhausted == 1


async def test_malformed_message_is_dead_lettered_with_its_reason() -> None:
    dead: list[tuple[object, str, str]] = []

    async def dead_letter(delivery: object, reason: str, detail: str) -> None:
        dead.append((delivery, reason, detail))

    live = LiveEngine(FeatureEngine(), FakeClock(10), dead_letter=dead_letter)
    bad = FakeDelivery(b"{not json", queue="ws-gateway.orderbook")
    await live.on_delivery(bad)
    assert [(d, r) for d, r, _ in dead] == [(bad, "bad_json")]
    assert live.stats.rejected[("ws-gateway.orderbook", "bad_json")] == 1
    assert live.engine.events_processed == 0


async def test_publisher_receives_every_vector_in_order() -> None:
    from tests.fixtures.market_messages import CONTRACT_TRADE

    published: list[FeatureVector] = []

    async def publisher(vector: FeatureVector) -> None:
        published.append(vector)

    clock = FakeClock(1_737_972_000_200_000)
    live = LiveEngine(FeatureEngine(intervals_s=[1]), clock, publisher=publisher)
    live.ingest(CONTRACT_TRADE.encode(), "q")
    clock.now += 3_000_000
    vectors = live.tick()
    assert len(vectors) == 3
    task = asyncio.create_task(live.run_publisher())
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    assert [v.timestamp for v in published] == [v.timestamp for v in vectors]
    assert live.stats.published == 3
