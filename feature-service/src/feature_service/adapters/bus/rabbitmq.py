"""RabbitMQ bus (aio-pika ``connect_robust``).

Channels:
- one robust channel per consumer, with its own prefetch: cancelling a consumer closes its
  channel, which makes the broker requeue exactly that consumer's unacked messages, and a
  channel error on one queue cannot stall the others;
- one robust publisher channel with publisher confirms (every publish waits for the broker);
- short-lived plain (aiormq) channels for declarations: a failed passive declare makes the
  broker close the channel (404), and a robust channel would then try to resurrect itself.

Deliveries and the ordered per-queue consumer are in ``rabbitmq_consumer``.

A publish whose channel was gone before the message left is retried once the channel is back
(within ``publish_timeout``). Once the message may have left (confirm timeout, connection lost
while waiting), the default re-sends it (at least once, which can duplicate); with
``at_most_once`` (live vectors) it raises ``PublishUncertain`` and is never re-sent, since the
broker may have it. Vectors also carry a deterministic ``message_id`` so consumers can dedup.

Blackhole detection (the socket stays open, nothing comes back): the AMQP heartbeat
(``heartbeat_s``) makes the client drop a connection after ~3 silent intervals, and a publish
confirm that timed out marks the bus not ready (``health()``) until a later confirm arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractRobustChannel
from aio_pika.abc import AbstractRobustConnection as RobustConnection
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from yarl import URL

from feature_service.adapters.bus import topology
from feature_service.adapters.bus.base import (
    BusBase,
    BusHealth,
    BusNotConnected,
    BusStats,
    Delivery,
    ExchangeNotFound,
    Handler,
    PublishFailed,
    PublishUncertain,
    QueueNotFound,
    QueueSpec,
    TopologyMismatch,
)
from feature_service.adapters.bus.rabbitmq_consumer import (
    PERSISTENT,
    TRANSIENT,
    RabbitConsumer,
    amqp_safe,
)

_log = structlog.get_logger("feature_service.bus.rabbitmq")

# Channel-level loss (not a broker refusal): worth waiting for the robust channel and retrying.
# Raised before anything was sent (the channel was already unusable): safe to retry.
_NOT_SENT_ERRORS = (ChannelInvalidStateError,)
# Raised while waiting for the confirm: the message may be on the broker.
_UNCERTAIN_ERRORS = (
    aiormq.exceptions.ChannelClosed,
    aiormq.exceptions.ConnectionClosed,
    ConnectionError,
    TimeoutError,
)


class RabbitMQBus(BusBase):
    """``MessageBus`` on RabbitMQ. ``url`` like ``amqp://guest:guest@127.0.0.1:5672/``."""

    backend = "rabbitmq"

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 500,
        dead_letter_queue: str = topology.DEAD_LETTER_QUEUE,
        reconnect_interval: float = 1.0,
        connect_timeout: float = 10.0,
        publish_timeout: float = 5.0,
        declare_timeout: float = 10.0,
        connection_name: str = "feature-service",
        heartbeat_s: int = 5,
    ) -> None:
        self.stats = BusStats()
        self._heartbeat_s = heartbeat_s
        self._confirm_stalled_since: float | None = None  # loop time of the last confirm timeout
        self._url = url
        self._prefetch = prefetch
        self._dead_letter_queue = dead_letter_queue
        self._reconnect_interval = reconnect_interval
        self._connect_timeout = connect_timeout
        self._publish_timeout = publish_timeout
        self._declare_timeout = declare_timeout
        self._connection_name = connection_name
        self._connection: RobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._consumers: set[RabbitConsumer] = set()
        self._known_exchanges: set[str] = set()
        # Declarations to repeat after a reconnect (a replaced broker node starts empty).
        self._replay: dict[tuple[str, ...], Callable[[], Awaitable[Any]]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._reconnects = 0
        self._last_error: str | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        return (
            connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and not self._closing
        )

    @property
    def connection(self) -> RobustConnection | None:
        return self._connection

    @property
    def confirms_stalled(self) -> bool:
        """A publish confirm timed out and none arrived since: the broker does not answer."""
        return self._confirm_stalled_since is not None

    def health(self) -> BusHealth:
        return BusHealth(
            backend=self.backend,
            connected=self.is_connected and not self.confirms_stalled,
            reconnects=self._reconnects,
            last_error=self._last_error,
            consumers=len(self._consumers),
            stats=self.stats.snapshot(),
        )

    async def connect(self) -> None:
        if self._connection is not None:
            return
        self._closing = False
        try:
            url = URL(self._url)
            if "heartbeat" not in url.query and self._heartbeat_s > 0:
                url = url.update_query(heartbeat=str(self._heartbeat_s))
            connection = await aio_pika.connect_robust(
                url,
                reconnect_interval=self._reconnect_interval,
                timeout=self._connect_timeout,
                client_properties={"connection_name": self._connection_name},
            )
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            raise BusNotConnected(f"cannot connect to {self._safe_url()}: {exc}") from exc
        connection.close_callbacks.add(self._on_connection_closed)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._connection = connection
        self._publisher = await connection.channel(publisher_confirms=True)
        await self.declare_queue(
            self._dead_letter_queue, arguments=topology.DEAD_LETTER_QUEUE_ARGUMENTS
        )
        _log.info("bus.connected", url=self._safe_url(), dead_letter_queue=self._dead_letter_queue)

    async def close(self, grace: float = 5.0) -> None:
        connection = self._connection
        if connection is None:
            return
        # Consumers first: while they drain, handlers may still ack and dead-letter.
        await asyncio.gather(*(consumer.cancel(grace) for consumer in list(self._consumers)))
        self._closing = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._publisher is not None:
            with suppress(*CONNECTION_EXCEPTIONS):
                await self._publisher.close()
        with suppress(*CONNECTION_EXCEPTIONS):
            await connection.close()
        self._connection = None
        self._publisher = None
        self._known_exchanges.clear()

    def _on_connection_closed(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._closing:
            return
        self._last_error = f"{type(exc).__name__}: {exc}" if exc is not None else "closed"
        _log.warning("bus.connection_lost", error=self._last_error)

    def _on_reconnected(self, _sender: Any) -> None:
        self._reconnects += 1
        self._confirm_stalled_since = None  # a fresh connection; the next publish tells again
        _log.info("bus.reconnected", reconnects=self._reconnects)
        self._spawn(self._replay_topology())

    async def _replay_topology(self) -> None:
        for key, declare in list(self._replay.items()):
            try:
                await declare()
            except Exception as exc:
                _log.error("bus.redeclare_failed", what=key, exc_info=exc)

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _safe_url(self) -> str:
        url = URL(self._url)
        return str(url.with_password("***")) if url.password else str(url)

    def _require_connection(self) -> RobustConnection:
        if self._connection is None or self._closing:
            raise BusNotConnected("rabbitmq bus is not connected")
        return self._connection

    # -- declarations ----------------------------------------------------------------------

    @asynccontextmanager
    async def _scratch(self) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        connection = self._require_connection()
        try:
            await asyncio.wait_for(connection.ready(), self._declare_timeout)
        except TimeoutError as exc:
            raise BusNotConnected("rabbitmq connection is not ready") from exc
        transport = connection.transport
        if transport is None:
            raise BusNotConnected("rabbitmq connection is not ready")
        channel = await transport.connection.channel(
            publisher_confirms=False, timeout=self._declare_timeout
        )
        try:
            yield channel
        finally:
            if not channel.is_closed:
                with suppress(*CONNECTION_EXCEPTIONS):
                    await channel.close()

    async def _declare_queue_strict(
        self, name: str, durable: bool, arguments: dict[str, Any]
    ) -> None:
        try:
            async with self._scratch() as channel:
                await channel.queue_declare(
                    name, durable=durable, arguments=arguments, timeout=self._declare_timeout
                )
        except ChannelPreconditionFailed as exc:
            raise TopologyMismatch(f"queue {name!r}: {exc}") from exc

    async def _queue_exists(self, name: str) -> bool:
        try:
            async with self._scratch() as channel:
                await channel.queue_declare(name, passive=True, timeout=self._declare_timeout)
        except ChannelNotFoundEntity:
            return False
        return True

    async def queue_status(self, name: str) -> tuple[int, int] | None:
        """A passive declare answers with the queue's ready-message and consumer counts."""
        try:
            async with self._scratch() as channel:
                ok = await channel.queue_declare(name, passive=True, timeout=self._declare_timeout)
        except ChannelNotFoundEntity:
            return None
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    async def _ensure_queue(self, spec: QueueSpec) -> bool:
        """Make the queue exist; True when it can be re-declared with ``spec``'s exact
        properties (then reconnects recreate it if the broker lost it)."""
        arguments = spec.argument_dict()
        if not spec.passive:
            await self._declare_queue_strict(spec.name, spec.durable, arguments)
            return True
        if not await self._queue_exists(spec.name):
            if not spec.create_missing:
                raise QueueNotFound(spec.name)
            try:
                await self._declare_queue_strict(spec.name, spec.durable, arguments)
            except TopologyMismatch:
                return False  # someone created it meanwhile with other arguments
            _log.info("bus.queue_created", queue=spec.name, arguments=arguments)
            return True
        try:
            await self._declare_queue_strict(spec.name, spec.durable, arguments)
        except TopologyMismatch:
            _log.warning(
                "bus.queue_arguments_differ", queue=spec.name, expected=arguments, using="passive"
            )
            return False
        return True

    async def declare_queue(
        self, name: str, durable: bool = True, arguments: Mapping[str, Any] | None = None
    ) -> None:
        spec = QueueSpec(name, passive=True, durable=durable, arguments=arguments)
        await self._ensure_queue(spec)
        self._replay.setdefault(("queue", name), lambda: self._ensure_queue(spec))

    async def bind_queue(self, queue: str, exchange: str, routing_key: str = "") -> None:
        await self._bind(queue, exchange, routing_key)
        self._replay[("bind", queue, exchange, routing_key)] = lambda: self._bind(
            queue, exchange, routing_key
        )

    async def _bind(self, queue: str, exchange: str, routing_key: str) -> None:
        try:
            async with self._scratch() as channel:
                await channel.queue_bind(
                    queue, exchange, routing_key=routing_key, timeout=self._declare_timeout
                )
        except ChannelNotFoundEntity as exc:
            if "exchange" in str(exc):
                raise ExchangeNotFound(exchange) from exc
            raise QueueNotFound(queue) from exc

    async def _declare_exchange(self, name: str, kind: str) -> None:
        try:
            async with self._scratch() as channel:
                await channel.exchange_declare(
                    name, exchange_type=kind, durable=True, timeout=self._declare_timeout
                )
        except ChannelPreconditionFailed as exc:
            raise TopologyMismatch(f"exchange {name!r}: {exc}") from exc
        self._known_exchanges.add(name)

    async def ensure_features_topology(
        self, name: str = topology.FEATURES_LIVE, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        wanted = topology.FEATURES_LIVE_QUEUE_ARGUMENTS if arguments is None else arguments
        spec = QueueSpec(name, arguments=wanted)

        async def declare() -> bool:
            await self._declare_exchange(name, "fanout")
            # An existing queue with other arguments is used passively (logged), never fatal.
            exact = await self._ensure_queue(spec)
            await self._bind(name, name, "")
            return exact

        exact = await declare()
        self._replay[("features", name)] = declare
        return exact

    async def _check_exchange(self, name: str) -> None:
        try:
            async with self._scratch() as channel:
                await channel.exchange_declare(name, passive=True, timeout=self._declare_timeout)
        except ChannelNotFoundEntity as exc:
            raise ExchangeNotFound(name) from exc
        self._known_exchanges.add(name)

    # -- consuming -------------------------------------------------------------------------

    async def consume(self, queue: QueueSpec, handler: Handler) -> RabbitConsumer:
        connection = self._require_connection()
        exact = await self._ensure_queue(queue)
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=max(self._prefetch, 0))
            if exact:
                amqp_queue = await channel.declare_queue(
                    queue.name, durable=queue.durable, arguments=queue.argument_dict() or None
                )
            else:
                amqp_queue = await channel.declare_queue(queue.name, passive=True)
            consumer = RabbitConsumer(self, queue.name, handler, channel, amqp_queue)
            await consumer.start()
        except BaseException:
            with suppress(*CONNECTION_EXCEPTIONS):
                await channel.close()
            raise
        self._consumers.add(consumer)
        return consumer

    # -- publishing ------------------------------------------------------------------------

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
        await self._publish(
            target,
            routing_key,
            body,
            dict(headers) if headers else None,
            persistent,
            message_id,
            topology.CONTENT_TYPE_JSON,
            at_most_once=at_most_once,
        )
        self.stats.published += 1

    async def _send_dead_letter(self, delivery: Delivery, headers: dict[str, Any]) -> None:
        await self._publish(
            "",
            self._dead_letter_queue,
            delivery.body,
            amqp_safe(headers),
            True,
            None,
            delivery.content_type,
        )

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any] | None,
        persistent: bool,
        message_id: str | None,
        content_type: str | None,
        *,
        at_most_once: bool = False,
    ) -> None:
        self._require_connection()
        if exchange and exchange not in self._known_exchanges:
            # Publishing to a missing exchange would make the broker close the publisher
            # channel (404); checking once on a scratch channel keeps that failure local.
            await self._check_exchange(exchange)
        properties = aiormq.spec.Basic.Properties(
            content_type=content_type,
            delivery_mode=PERSISTENT if persistent else TRANSIENT,
            headers=headers,
            message_id=message_id,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PublishFailed(f"publish to {exchange!r}/{routing_key!r} timed out")
            try:
                publisher = self._publisher
                if publisher is None:
                    raise BusNotConnected("rabbitmq bus is not connected")
                channel = await asyncio.wait_for(publisher.get_underlay_channel(), remaining)
            except (*_NOT_SENT_ERRORS, *_UNCERTAIN_ERRORS) as exc:
                # Nothing was sent yet: waiting for the channel and trying again is safe.
                if self._closing:
                    raise BusNotConnected("rabbitmq bus is closing") from exc
                _log.info("bus.publish_retry", exchange=exchange, error=repr(exc))
                await self._wait_publisher(deadline)
                continue
            try:
                confirmation = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=False,
                    timeout=remaining,
                )
            except ChannelNotFoundEntity as exc:
                self._known_exchanges.discard(exchange)
                raise ExchangeNotFound(exchange) from exc
            except _NOT_SENT_ERRORS as exc:
                if self._closing:
                    raise BusNotConnected("rabbitmq bus is closing") from exc
                _log.info("bus.publish_retry", exchange=exchange, error=repr(exc))
                await self._wait_publisher(deadline)
                continue
            except _UNCERTAIN_ERRORS as exc:
                if isinstance(exc, TimeoutError) and self._confirm_stalled_since is None:
                    self._confirm_stalled_since = loop.time()
                    self._last_error = f"publish confirm timed out after {self._publish_timeout} s"
                    _log.warning("bus.confirm_timeout", exchange=exchange)
                if not at_most_once and not self._closing:
                    _log.info("bus.publish_retry", exchange=exchange, error=repr(exc))
                    await self._wait_publisher(deadline)
                    continue
                raise PublishUncertain(
                    f"publish to {exchange!r}/{routing_key!r}: no confirm ({type(exc).__name__});"
                    " not re-sent"
                ) from exc
            self._confirm_stalled_since = None
            if isinstance(confirmation, aiormq.spec.Basic.Nack | aiormq.spec.Basic.Reject):
                raise PublishFailed(f"broker refused the message for {exchange!r}/{routing_key!r}")
            return

    async def _wait_publisher(self, deadline: float) -> None:
        """Wait for the robust publisher channel to come back; replace it if it does not."""
        loop = asyncio.get_running_loop()
        connection = self._require_connection()
        replace_at = loop.time() + min(1.0, self._publish_timeout / 2)
        while loop.time() < deadline:
            publisher = self._publisher
            if publisher is not None and not publisher.is_closed and connection.connected.is_set():
                return
            if connection.connected.is_set() and loop.time() >= replace_at:
                if publisher is not None:
                    with suppress(*CONNECTION_EXCEPTIONS):
                        await publisher.close()
                self._publisher = await connection.channel(publisher_confirms=True)
                return
            await asyncio.sleep(0.05)
