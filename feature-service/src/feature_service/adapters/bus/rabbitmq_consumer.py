"""RabbitMQ deliveries and consumers: one robust channel per consumer, ordered handling.

aio-pika runs each delivery in its own task, so ordering is restored here: the consumer
callback only appends to a per-consumer buffer and one worker task awaits the handler for
one message at a time. After a reconnect the robust channel re-declares the queue and
re-subscribes; deliveries still buffered from the dead channel are discarded (the broker has
requeued them and delivers them again, flagged redelivered).
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelInvalidStateError

from feature_service.adapters.bus.base import (
    BusStats,
    Delivery,
    Handler,
    WorkerConsumer,
    wait_until,
)

if TYPE_CHECKING:
    from feature_service.adapters.bus.rabbitmq import RabbitMQBus

_log = structlog.get_logger("feature_service.bus.rabbitmq")

PERSISTENT = 2
TRANSIENT = 1
_SETTLE_ERRORS = (ChannelInvalidStateError, *CONNECTION_EXCEPTIONS)


def _message_channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True


def amqp_safe(value: Any) -> Any:
    """pamqp cannot encode ``bytes`` or tuples; original headers may carry either."""
    if isinstance(value, dict):
        return {str(key): amqp_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [amqp_safe(item) for item in value]
    if isinstance(value, bytes):
        return bytearray(value)
    return value


class RabbitDelivery(Delivery):
    __slots__ = ("_message", "_owner", "_stats")

    def __init__(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        stats: BusStats,
        owner: RabbitConsumer | None = None,
    ) -> None:
        self.body = message.body
        self.headers = message.headers
        self.queue = queue
        self.redelivered = bool(message.redelivered)
        self.message_id = message.message_id
        self.delivery_tag = message.delivery_tag or 0
        self.persistent = message.delivery_mode == PERSISTENT
        self.content_type = message.content_type
        self._settled = False
        self._message = message
        self._stats = stats
        self._owner = owner

    @property
    def raw(self) -> AbstractIncomingMessage:
        return self._message

    def is_stale(self) -> bool:
        return _message_channel_closed(self._message)

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        if self._owner is not None:
            self._owner.outstanding.discard(self)
        stats = self._stats
        try:
            if ack:
                await self._message.ack()
            else:
                await self._message.nack(requeue=requeue)
        except _SETTLE_ERRORS as exc:
            # The channel that delivered it is gone; the broker has requeued it already.
            stats.stale_settlements += 1
            _log.info("bus.stale_settlement", queue=self.queue, tag=self.delivery_tag, error=exc)
            return
        stats.settled(ack=ack, requeue=requeue)


class RabbitConsumer(WorkerConsumer):
    def __init__(
        self,
        bus: RabbitMQBus,
        name: str,
        handler: Handler,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
    ) -> None:
        self._bus = bus
        self._name = name
        self._handler = handler
        self._channel = channel
        self._queue = queue
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._tag: str | None = None
        self._in_handler = False
        self._stopping = False
        self._shutdown: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        # handed to the handler and not settled yet
        self.outstanding: set[RabbitDelivery] = set()

    @property
    def queue(self) -> str:
        return self._name

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"bus-consumer:{self._name}"
        )
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run(self) -> None:
        buffer = self._buffer
        stats = self._bus.stats
        name = self._name
        outstanding = self.outstanding
        try:
            while not self._stopping:
                if not buffer:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                message = buffer.popleft()
                if _message_channel_closed(message):
                    continue  # requeued by the broker with the channel; it comes back
                delivery = RabbitDelivery(message, name, stats, self)
                outstanding.add(delivery)
                stats.delivered += 1
                await self._handle(delivery)
        finally:
            self._stopping = True
            buffer.clear()  # unacked: closing the channel hands them back to the queue
            if self._shutdown is None:  # cancelled from outside (loop shutdown)
                self._shutdown = self._begin_close(0.0)

    def _begin_close(self, grace: float) -> asyncio.Future[None]:
        return self._bus._spawn(self._close(grace))

    async def _close(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._tag is not None:
            # basic.cancel: no new deliveries, but the channel stays open for late acks
            with suppress(*CONNECTION_EXCEPTIONS, TimeoutError):
                await asyncio.wait_for(
                    self._queue.cancel(self._tag), max(deadline - loop.time(), 1.0)
                )
        await self._stop_worker(deadline)
        # Settlements that arrive within the grace period still count (a handler may defer its
        # ack until a write is durable); closing the channel requeues the rest.
        await wait_until(
            lambda: all(delivery.is_stale() for delivery in self.outstanding), deadline
        )
        self.outstanding.clear()
        with suppress(*CONNECTION_EXCEPTIONS):
            await self._channel.close()
        self._bus._consumers.discard(self)
