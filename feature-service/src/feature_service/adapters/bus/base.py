"""The message-bus port: what the service needs from a broker, and nothing more.

Two adapters implement it with the same observable semantics: RabbitMQ (aio-pika) for
production and an in-process bus for the embedded default and the tests. One contract suite
(tests/integration/test_bus_contract.py) runs against both.

Semantics every implementation keeps:
- Per consumer, the handler is awaited for one message at a time, in queue order.
- The handler settles each delivery (``ack`` / ``nack`` / ``MessageBus.dead_letter``). A
  delivery the handler leaves unsettled stays unacknowledged and counts against the prefetch
  limit until it is settled or its consumer goes away (then it is redelivered). Settling may
  happen later and from another task (e.g. after a durable write).
- A handler that raises does not stop its consumer: the bus dead-letters the delivery with
  reason ``handler_error`` (or the ``MessageRejected`` reason), unless the handler had already
  settled it. Poison messages therefore never loop through requeue.
- After ``nack(requeue=True)`` the message is redelivered flagged ``redelivered``; its order
  relative to messages already handed to the consumer (prefetched) is not guaranteed.
- Settling twice is a programming error (``DeliveryAlreadySettled``). Settling a delivery whose
  consumer or channel is gone is a no-op: the broker redelivers it, so it is counted, logged and
  otherwise ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypedDict, runtime_checkable

import structlog

from feature_service.adapters.bus import topology
from feature_service.market.errors import MessageRejected

_log = structlog.get_logger("feature_service.bus")

# Dead-letter detail is free text (often an exception message); bounded so a huge payload
# echoed in an error cannot bloat every dead-lettered message's headers.
MAX_DETAIL_CHARS = 2000

REASON_HANDLER_ERROR = "handler_error"


class BusError(Exception):
    """Base class of the errors the bus raises (broker-specific errors are translated)."""


class BusNotConnected(BusError):
    pass


class QueueNotFound(BusError):
    pass


class ExchangeNotFound(BusError):
    pass


class TopologyMismatch(BusError):
    """A strict declaration met an existing queue or exchange with other properties (AMQP 406)."""


class PublishFailed(BusError):
    """The message was not published (it never left, or the broker refused it): safe to retry."""


class PublishUncertain(PublishFailed):
    """The message left but no confirm came (timeout, connection lost while waiting): it may be
    on the queue. Re-sending it blindly could duplicate it, so callers do not."""


class DeliveryAlreadySettled(BusError):
    pass


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """How to attach to a queue.

    ``passive=True`` (the ws-gateway queues): use the queue as it exists, whatever its
    arguments; only when it is missing, create it with ``durable`` and ``arguments`` (or raise
    ``QueueNotFound`` when ``create_missing`` is false). ``passive=False``: declare with exactly
    ``durable`` and ``arguments``; an existing queue with other properties raises
    ``TopologyMismatch``.
    """

    name: str
    passive: bool = True
    durable: bool = True
    arguments: Mapping[str, Any] | None = None
    create_missing: bool = True

    @classmethod
    def ws_gateway(cls, name: str) -> QueueSpec:
        """A ws-gateway input queue: used as it exists, created with ws-gateway's exact
        arguments when missing (contract §1.3)."""
        return cls(name, passive=True, durable=True, arguments=topology.WS_GATEWAY_QUEUE_ARGUMENTS)

    def argument_dict(self) -> dict[str, Any]:
        return dict(self.arguments) if self.arguments else {}


class Delivery:
    """One message handed to a handler. Treat ``body`` and ``headers`` as read-only."""

    __slots__ = (
        "_settled",
        "body",
        "content_type",
        "delivery_tag",
        "headers",
        "message_id",
        "persistent",
        "queue",
        "redelivered",
    )

    def __init__(
        self,
        body: bytes,
        headers: dict[str, Any],
        queue: str,
        *,
        redelivered: bool = False,
        message_id: str | None = None,
        delivery_tag: int = 0,
        persistent: bool = True,
        content_type: str | None = None,
    ) -> None:
        self.body = body
        self.headers = headers
        self.queue = queue
        self.redelivered = redelivered
        self.message_id = message_id
        self.delivery_tag = delivery_tag
        self.persistent = persistent
        self.content_type = content_type
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        self._mark_settled()
        await self._settle(ack=True, requeue=False)

    async def nack(self, requeue: bool) -> None:
        """``requeue=True`` puts it back at the head of its queue, flagged redelivered;
        ``requeue=False`` drops it (our queues have no dead-letter exchange: use
        ``MessageBus.dead_letter`` to keep it)."""
        self._mark_settled()
        await self._settle(ack=False, requeue=requeue)

    def is_stale(self) -> bool:
        """True when the consumer or channel that delivered it is gone (it will be redelivered)."""
        return False

    def _mark_settled(self) -> None:
        if self._settled:
            raise DeliveryAlreadySettled(f"delivery {self.delivery_tag} on {self.queue}")
        self._settled = True

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} queue={self.queue!r} tag={self.delivery_tag} "
            f"redelivered={self.redelivered} bytes={len(self.body)}>"
        )


Handler = Callable[[Delivery], Awaitable[None]]


@runtime_checkable
class ConsumerHandle(Protocol):
    @property
    def queue(self) -> str: ...

    @property
    def active(self) -> bool: ...

    async def cancel(self, grace: float = 5.0) -> None:
        """Stop delivering at once; then, within ``grace`` s, let the handler in flight finish
        and let deferred settlements arrive; deliveries still unsettled after that go back to
        the queue (redelivered=True). Safe to call from the consumer's own handler."""
        ...


@dataclass(slots=True)
class BusStats:
    published: int = 0
    delivered: int = 0
    acked: int = 0
    nacked: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    handler_errors: int = 0
    stale_settlements: int = 0
    dropped_after_failed_dead_letter: int = 0
    # in-process bus only (the broker does these silently)
    unroutable: int = 0
    overflow_dropped: int = 0
    expired: int = 0

    def settled(self, *, ack: bool, requeue: bool) -> None:
        """Count one settlement that reached the broker (or the in-process queue)."""
        if ack:
            self.acked += 1
        else:
            self.nacked += 1
            if requeue:
                self.requeued += 1

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BusHealth(TypedDict):
    """A plain dict (JSON-ready for the health endpoint)."""

    backend: str
    connected: bool
    reconnects: int
    last_error: str | None
    consumers: int
    stats: dict[str, int]


@runtime_checkable
class MessageBus(Protocol):
    backend: str
    stats: BusStats

    @property
    def is_connected(self) -> bool: ...

    @property
    def dead_letter_queue(self) -> str: ...

    def health(self) -> BusHealth: ...

    async def connect(self) -> None: ...

    async def close(self, grace: float = 5.0) -> None:
        """Cancel every consumer (each gets ``grace`` s to finish and settle), then disconnect."""
        ...

    async def consume(self, queue: QueueSpec, handler: Handler) -> ConsumerHandle: ...

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
        """Publish to exchange ``target``; ``""`` is the default exchange, which routes to the
        queue named ``routing_key``. Returns once the broker confirmed it. Unroutable
        messages are dropped silently (as RabbitMQ does without ``mandatory``).

        By default a publish whose connection was lost is re-sent once the channel is back
        (at least once). ``at_most_once`` never re-sends after the message may have left:
        a missing confirm raises ``PublishUncertain`` (live vectors: a duplicate is worse
        than a gap, and the next vector follows within a second)."""
        ...

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Republish the original body to the dead-letter queue (confirmed), then ack it."""
        ...

    async def declare_queue(
        self, name: str, durable: bool = True, arguments: Mapping[str, Any] | None = None
    ) -> None:
        """Make sure the queue exists (passive first: an existing queue is used as it is)."""
        ...

    async def bind_queue(self, queue: str, exchange: str, routing_key: str = "") -> None: ...

    async def queue_status(self, name: str) -> tuple[int, int] | None:
        """``(messages ready, consumers)`` of a queue as the broker sees it; None when the
        queue does not exist. Never creates anything."""
        ...

    async def ensure_features_topology(
        self, name: str = topology.FEATURES_LIVE, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Durable fanout exchange ``name`` and durable queue ``name`` bound to it, the queue
        created with ``arguments`` (default ``FEATURES_LIVE_QUEUE_ARGUMENTS``); other consumers
        bind their own queues to the exchange. True when the queue has exactly ``arguments``;
        False when it already existed with others (it is then used as it is)."""
        ...


def dead_letter_headers(delivery: Delivery, reason: str, detail: str) -> dict[str, Any]:
    headers: dict[str, Any] = {
        topology.HEADER_REJECT_REASON: reason,
        topology.HEADER_REJECT_DETAIL: detail[:MAX_DETAIL_CHARS],
        topology.HEADER_SOURCE_QUEUE: delivery.queue,
        topology.HEADER_ORIGINAL_HEADERS: dict(delivery.headers),
        topology.HEADER_REDELIVERED: delivery.redelivered,
        topology.HEADER_DEAD_LETTERED_AT: time.time_ns() // 1000,
    }
    if delivery.message_id is not None:
        headers[topology.HEADER_ORIGINAL_MESSAGE_ID] = delivery.message_id
    return headers


def describe_failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, MessageRejected):
        return exc.reason.value, exc.detail
    return REASON_HANDLER_ERROR, f"{type(exc).__name__}: {exc}"


async def dead_letter_or_fallback(
    bus: MessageBus, delivery: Delivery, reason: str, detail: str
) -> None:
    """When even dead-lettering fails (broker trouble), requeue once, then drop: a message must
    never cycle forever."""
    try:
        await bus.dead_letter(delivery, reason, detail)
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _log.error("bus.dead_letter_failed", queue=delivery.queue, reason=reason, exc_info=exc)
    if delivery.settled or delivery.is_stale():
        return
    requeue = not delivery.redelivered
    if not requeue:
        bus.stats.dropped_after_failed_dead_letter += 1
    try:
        await delivery.nack(requeue=requeue)
    except Exception as exc:
        _log.error("bus.fallback_nack_failed", queue=delivery.queue, exc_info=exc)


async def wait_until(condition: Callable[[], bool], deadline: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``deadline`` (loop time) passes; shutdown paths only."""
    loop = asyncio.get_running_loop()
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll_s)
    return True


class BusBase:
    """What both adapters do alike around their own transport: the dead-letter protocol.

    Subclasses set ``stats`` and ``_dead_letter_queue`` and publish with ``_send_dead_letter``.
    """

    stats: BusStats
    _dead_letter_queue: str

    @property
    def dead_letter_queue(self) -> str:
        return self._dead_letter_queue

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        if delivery.settled:
            raise DeliveryAlreadySettled(f"delivery {delivery.delivery_tag} on {delivery.queue}")
        if delivery.is_stale():
            # Its consumer or channel is gone, so it is redelivered: dead-lettering it now
            # would keep two copies.
            self.stats.stale_settlements += 1
            _log.info("bus.stale_dead_letter", queue=delivery.queue, reason=reason)
            return
        await self._send_dead_letter(delivery, dead_letter_headers(delivery, reason, detail))
        self.stats.dead_lettered += 1
        await delivery.ack()

    async def _send_dead_letter(self, delivery: Delivery, headers: dict[str, Any]) -> None:
        """Publish ``delivery``'s body with ``headers`` to the dead-letter queue, confirmed."""
        raise NotImplementedError


class WorkerConsumer:
    """What both adapters' consumers share: one worker task awaits the handler for one delivery
    at a time, and a shutdown lets the delivery in flight finish first.

    Subclasses set the attributes below in ``__init__``, run ``_handle`` from their worker and
    start their own ``_close`` in ``_begin_close``.
    """

    _bus: MessageBus
    _handler: Handler
    _task: asyncio.Task[None] | None
    _in_handler: bool
    _stopping: bool
    _shutdown: asyncio.Future[None] | None

    @property
    def active(self) -> bool:
        task = self._task
        return not self._stopping and task is not None and not task.done()

    async def cancel(self, grace: float = 5.0) -> None:
        self._stopping = True
        if self._shutdown is None:
            self._shutdown = self._begin_close(grace)
        if self._task is not None and asyncio.current_task() is self._task:
            return  # called from its own handler: the shutdown proceeds once the handler returns
        await self._shutdown

    def _begin_close(self, grace: float) -> asyncio.Future[None]:
        raise NotImplementedError

    async def _handle(self, delivery: Delivery) -> None:
        """Await the handler; a failure dead-letters the delivery instead of killing the
        consumer."""
        self._in_handler = True
        try:
            await self._handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            bus = self._bus
            bus.stats.handler_errors += 1
            reason, detail = describe_failure(exc)
            if delivery.settled:
                _log.warning(
                    "bus.handler_failed_after_settle",
                    queue=delivery.queue,
                    reason=reason,
                    exc_info=exc,
                )
                return
            _log.warning("bus.handler_failed", queue=delivery.queue, reason=reason, exc_info=exc)
            await dead_letter_or_fallback(bus, delivery, reason, detail)
        finally:
            self._in_handler = False

    async def _stop_worker(self, deadline: float) -> None:
        """Let the worker finish the message in flight (until ``deadline``, loop time), then
        make sure it has stopped."""
        task = self._task
        if task is None:
            return
        if self._in_handler and not task.done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining > 0:
                await asyncio.wait({task}, timeout=remaining)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
