"""In-process bus: the embedded default (no server) with RabbitMQ's observable semantics.

What it mirrors: the default exchange routes by queue name; fanout and direct exchanges;
per-consumer prefetch; manual ack; ``nack(requeue=True)`` puts the message back at the head
flagged redelivered; unsettled deliveries of a cancelled consumer return to the queue (in their
original order) for the next consumer; ``x-max-length`` with ``drop-head`` (or
``reject-publish``) and ``x-message-ttl`` (expired at the head, as classic queues do);
competing consumers on one queue. Unroutable messages are dropped and counted.

Hot path: a publish is one deque append (plus one wake-up when a consumer is idle); a consumer
drains its queue without returning to the event loop between messages whose handler does not
suspend.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from feature_service.adapters.bus import topology
from feature_service.adapters.bus.base import (
    BusBase,
    BusError,
    BusHealth,
    BusNotConnected,
    BusStats,
    Delivery,
    ExchangeNotFound,
    Handler,
    PublishFailed,
    QueueNotFound,
    QueueSpec,
    TopologyMismatch,
    WorkerConsumer,
    wait_until,
)

_log = structlog.get_logger("feature_service.bus.memory")

# A publisher that never suspends would starve every consumer (and the HTTP server); giving
# the loop one turn every few hundred publishes keeps the process responsive at no real cost.
_YIELD_EVERY = 256
_UNLIMITED = 1 << 62


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    durable: bool
    arguments: dict[str, Any]
    ready: int
    unacked: int
    consumers: int


class MemoryDelivery(Delivery):
    __slots__ = ("_consumer", "_expires_at")

    def __init__(
        self,
        body: bytes,
        headers: dict[str, Any],
        queue: str,
        message_id: str | None,
        persistent: bool,
        content_type: str | None,
        redelivered: bool = False,
    ) -> None:
        # Written out rather than calling Delivery.__init__: this runs once per message.
        self.body = body
        self.headers = headers
        self.queue = queue
        self.redelivered = redelivered
        self.message_id = message_id
        self.delivery_tag = 0
        self.persistent = persistent
        self.content_type = content_type
        self._settled = False
        self._consumer: _MemoryConsumer | None = None
        self._expires_at = 0.0

    def redelivery(self) -> MemoryDelivery:
        """A fresh copy for the queue: the old object may still be held by a handler."""
        copy = MemoryDelivery(
            self.body,
            self.headers,
            self.queue,
            self.message_id,
            self.persistent,
            self.content_type,
            redelivered=True,
        )
        copy._expires_at = self._expires_at
        return copy

    def is_stale(self) -> bool:
        consumer = self._consumer
        return consumer is None or consumer.unacked.get(self.delivery_tag) is not self

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        consumer = self._consumer
        if consumer is None:
            raise BusError("delivery was not handed out by a consumer")
        consumer.settle(self, ack=ack, requeue=requeue)


class _MemoryQueue:
    __slots__ = (
        "arguments",
        "consumers",
        "durable",
        "max_length",
        "name",
        "ready",
        "reject_publish",
        "ttl_s",
        "waiters",
    )

    def __init__(self, name: str, durable: bool, arguments: dict[str, Any]) -> None:
        self.name = name
        self.durable = durable
        self.arguments = arguments
        self.ready: deque[MemoryDelivery] = deque()
        self.consumers: list[_MemoryConsumer] = []
        self.waiters: deque[asyncio.Future[None]] = deque()
        max_length = arguments.get("x-max-length")
        self.max_length: int | None = None if max_length is None else int(max_length)
        self.reject_publish = str(arguments.get("x-overflow", "drop-head")).startswith("reject")
        ttl = arguments.get("x-message-ttl")
        self.ttl_s: float | None = None if ttl is None else int(ttl) / 1000.0

    def put(self, delivery: MemoryDelivery, stats: BusStats) -> None:
        ready = self.ready
        if self.ttl_s is not None:
            now = time.monotonic()
            delivery._expires_at = now + self.ttl_s
            # Expire at the head on every publish too (RabbitMQ expires without consumers as
            # well): a queue nobody drains holds one TTL of messages, not max-length of them.
            while ready and ready[0]._expires_at <= now:
                ready.popleft()
                stats.expired += 1
        max_length = self.max_length
        if max_length is not None and len(ready) >= max_length:
            if self.reject_publish:
                raise PublishFailed(f"queue {self.name!r} is full (x-overflow=reject-publish)")
            if max_length <= 0:
                stats.overflow_dropped += 1
                return
            while len(ready) >= max_length:
                ready.popleft()
                stats.overflow_dropped += 1
        ready.append(delivery)
        if self.waiters:
            self.wake()

    def requeue(self, delivery: MemoryDelivery) -> None:
        self.ready.appendleft(delivery)
        if self.waiters:
            self.wake()

    def pop(self, stats: BusStats) -> MemoryDelivery | None:
        ready = self.ready
        if not ready:
            return None
        if self.ttl_s is not None:
            now = time.monotonic()
            while ready and ready[0]._expires_at <= now:
                ready.popleft()
                stats.expired += 1
            if not ready:
                return None
        return ready.popleft()

    def wake(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        await waiter


class _MemoryExchange:
    __slots__ = ("bindings", "durable", "kind", "name")

    def __init__(self, name: str, kind: str, durable: bool) -> None:
        self.name = name
        self.kind = kind
        self.durable = durable
        # queue -> routing keys; fanout ignores the keys
        self.bindings: dict[_MemoryQueue, set[str]] = {}

    def targets(self, routing_key: str) -> list[_MemoryQueue]:
        if self.kind == "fanout":
            return list(self.bindings)
        return [queue for queue, keys in self.bindings.items() if routing_key in keys]


class _MemoryConsumer(WorkerConsumer):
    def __init__(
        self, bus: MemoryBus, queue: _MemoryQueue, handler: Handler, prefetch: int
    ) -> None:
        self._bus = bus
        self._queue = queue
        self._handler = handler
        self._prefetch = prefetch if prefetch > 0 else _UNLIMITED
        self.unacked: dict[int, MemoryDelivery] = {}
        self._next_tag = 0
        self._capacity: asyncio.Future[None] | None = None
        self._in_handler = False
        self._stopping = False
        self._shutdown: asyncio.Future[None] | None = None
        queue.consumers.append(self)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"bus-consumer:{queue.name}"
        )

    @property
    def queue(self) -> str:
        return self._queue.name

    def _begin_close(self, grace: float) -> asyncio.Future[None]:
        return asyncio.ensure_future(self._close(grace))

    async def _close(self, grace: float) -> None:
        deadline = asyncio.get_running_loop().time() + grace
        await self._stop_worker(deadline)
        # Settlements that arrive within the grace period still count (a handler may defer its
        # ack until a write is durable); the rest go back to the queue.
        await wait_until(lambda: not self.unacked, deadline)
        self._give_back()

    def settle(self, delivery: MemoryDelivery, *, ack: bool, requeue: bool) -> None:
        stats = self._bus.stats
        unacked = self.unacked
        if unacked.get(delivery.delivery_tag) is not delivery:
            # Its consumer already gave it back to the queue: the next consumer gets it.
            stats.stale_settlements += 1
            _log.info("bus.stale_settlement", queue=self._queue.name, tag=delivery.delivery_tag)
            return
        del unacked[delivery.delivery_tag]
        stats.settled(ack=ack, requeue=requeue)
        if not ack and requeue:
            self._queue.requeue(delivery.redelivery())
        capacity = self._capacity
        if capacity is not None and not capacity.done() and len(unacked) < self._prefetch:
            capacity.set_result(None)

    async def _run(self) -> None:
        queue = self._queue
        unacked = self.unacked
        stats = self._bus.stats
        try:
            while not self._stopping:
                if len(unacked) >= self._prefetch:
                    self._capacity = asyncio.get_running_loop().create_future()
                    await self._capacity
                    self._capacity = None
                    continue
                delivery = queue.pop(stats)
                if delivery is None:
                    await queue.wait()
                    continue
                self._next_tag += 1
                delivery.delivery_tag = self._next_tag
                delivery._consumer = self
                unacked[self._next_tag] = delivery
                stats.delivered += 1
                await self._handle(delivery)
        finally:
            self._stopping = True
            if self._shutdown is None:  # cancelled from outside (loop shutdown)
                self._give_back()

    def _give_back(self) -> None:
        queue = self._queue
        pending = list(self.unacked.values())
        self.unacked.clear()
        # appendleft in reverse keeps their original order at the head of the queue
        for delivery in reversed(pending):
            queue.ready.appendleft(delivery.redelivery())
        if self in queue.consumers:
            queue.consumers.remove(self)
        self._bus._consumers.discard(self)
        if queue.ready and queue.waiters:
            queue.wake()


class MemoryBus(BusBase):
    """In-process ``MessageBus``; one instance is one broker (queues live as long as it)."""

    backend = "memory"

    def __init__(
        self, *, prefetch: int = 500, dead_letter_queue: str = topology.DEAD_LETTER_QUEUE
    ) -> None:
        self.stats = BusStats()
        self._prefetch = prefetch
        self._dead_letter_queue = dead_letter_queue
        self._queues: dict[str, _MemoryQueue] = {}
        self._exchanges: dict[str, _MemoryExchange] = {}
        self._consumers: set[_MemoryConsumer] = set()
        self._connected = False
        self._ids = itertools.count(1)
        self._since_yield = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    def health(self) -> BusHealth:
        return BusHealth(
            backend=self.backend,
            connected=self._connected,
            reconnects=0,
            last_error=None,
            consumers=len(self._consumers),
            stats=self.stats.snapshot(),
        )

    async def connect(self) -> None:
        self._connected = True
        self._queue_for(
            QueueSpec(self._dead_letter_queue, arguments=topology.DEAD_LETTER_QUEUE_ARGUMENTS)
        )

    async def close(self, grace: float = 5.0) -> None:
        consumers = list(self._consumers)
        await asyncio.gather(*(consumer.cancel(grace) for consumer in consumers))
        self._connected = False

    # -- topology --------------------------------------------------------------------------

    async def declare_queue(
        self, name: str, durable: bool = True, arguments: Mapping[str, Any] | None = None
    ) -> None:
        self._require_connected()
        self._queue_for(QueueSpec(name, passive=True, durable=durable, arguments=arguments))

    async def bind_queue(self, queue: str, exchange: str, routing_key: str = "") -> None:
        self._require_connected()
        target = self._queues.get(queue)
        if target is None:
            raise QueueNotFound(queue)
        source = self._exchanges.get(exchange)
        if source is None:
            raise ExchangeNotFound(exchange)
        source.bindings.setdefault(target, set()).add(routing_key)

    async def ensure_features_topology(
        self, name: str = topology.FEATURES_LIVE, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        self._require_connected()
        wanted = dict(topology.FEATURES_LIVE_QUEUE_ARGUMENTS if arguments is None else arguments)
        self._declare_exchange(name, "fanout", durable=True)
        queue = self._queue_for(QueueSpec(name, arguments=wanted))
        await self.bind_queue(name, name)
        return queue.arguments == wanted

    def _declare_exchange(self, name: str, kind: str, *, durable: bool) -> _MemoryExchange:
        if kind not in ("fanout", "direct"):
            raise ValueError(f"unsupported exchange type {kind!r}")
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = self._exchanges[name] = _MemoryExchange(name, kind, durable)
        elif exchange.kind != kind or exchange.durable != durable:
            raise TopologyMismatch(
                f"exchange {name!r} exists as {exchange.kind} durable={exchange.durable}"
            )
        return exchange

    def _queue_for(self, spec: QueueSpec) -> _MemoryQueue:
        queue = self._queues.get(spec.name)
        arguments = spec.argument_dict()
        if queue is not None:
            if not spec.passive and (queue.durable != spec.durable or queue.arguments != arguments):
                raise TopologyMismatch(
                    f"queue {spec.name!r} exists with durable={queue.durable} "
                    f"arguments={queue.arguments}"
                )
            return queue
        if spec.passive and not spec.create_missing:
            raise QueueNotFound(spec.name)
        queue = self._queues[spec.name] = _MemoryQueue(spec.name, spec.durable, arguments)
        return queue

    def queue_info(self, name: str) -> QueueInfo:
        queue = self._queues.get(name)
        if queue is None:
            raise QueueNotFound(name)
        return QueueInfo(
            name=name,
            durable=queue.durable,
            arguments=dict(queue.arguments),
            ready=len(queue.ready),
            unacked=sum(len(consumer.unacked) for consumer in queue.consumers),
            consumers=len(queue.consumers),
        )

    async def queue_status(self, name: str) -> tuple[int, int] | None:
        queue = self._queues.get(name)
        if queue is None:
            return None
        return len(queue.ready), len(queue.consumers)

    # -- messaging -------------------------------------------------------------------------

    async def consume(self, queue: QueueSpec, handler: Handler) -> _MemoryConsumer:
        self._require_connected()
        consumer = _MemoryConsumer(self, self._queue_for(queue), handler, self._prefetch)
        self._consumers.add(consumer)
        return consumer

    async def publish(
        self,
        target: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        persistent: bool = True,
        routing_key: str = "",
        message_id: str | None = None,
        at_most_once: bool = False,
    ) -> None:
        if not self._connected:
            raise BusNotConnected("memory bus is closed")
        self._route(
            target,
            routing_key,
            body,
            dict(headers) if headers else {},
            persistent,
            message_id or self._new_id(),
            topology.CONTENT_TYPE_JSON,
        )
        self.stats.published += 1
        self._since_yield += 1
        if self._since_yield >= _YIELD_EVERY:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def _send_dead_letter(self, delivery: Delivery, headers: dict[str, Any]) -> None:
        self._route(
            "",
            self._dead_letter_queue,
            delivery.body,
            headers,
            True,
            self._new_id(),
            delivery.content_type,
        )

    def _route(
        self,
        target: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any],
        persistent: bool,
        message_id: str,
        content_type: str | None,
    ) -> None:
        stats = self.stats
        if not target:
            queue = self._queues.get(routing_key)
            if queue is None:
                stats.unroutable += 1
                return
            queue.put(
                MemoryDelivery(body, headers, queue.name, message_id, persistent, content_type),
                stats,
            )
            return
        exchange = self._exchanges.get(target)
        if exchange is None:
            raise ExchangeNotFound(target)
        queues = exchange.targets(routing_key)
        if not queues:
            stats.unroutable += 1
        for queue in queues:
            queue.put(
                MemoryDelivery(body, headers, queue.name, message_id, persistent, content_type),
                stats,
            )

    def _new_id(self) -> str:
        return f"mem-{next(self._ids)}"

    def _require_connected(self) -> None:
        if not self._connected:
            raise BusNotConnected("memory bus is closed")
