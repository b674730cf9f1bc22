"""Live engine: bus deliveries -> receive stamp -> FeatureEngine -> latest store + features.live.

Everything that touches features runs synchronously in the event loop thread, in the order the
messages are consumed: the receive stamp, parsing and the engine step happen in one call, so
receive times are monotonic and state advances exactly in receive order (what the offline replay
reproduces). Publishing and the raw-store hand-off are asynchronous and never block ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from feature_service.engine.checkpoints import BookCheckpointer
from feature_service.engine.clocks import ServiceClock
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.ingest import IngestBoundary, Ingested
from feature_service.logging import TRACE_ID, get_logger, new_trace_id
from feature_service.market.errors import MessageRejected
from feature_service.market.events import BookDelta, BookSnapshot, MarketEvent
from feature_service.telemetry import Telemetry

log = get_logger(__name__)

_BOOK_TYPES = (BookSnapshot, BookDelta)


class DeliveryLike(Protocol):
    body: bytes
    queue: str

    async def ack(self) -> None: ...


class RawSink(Protocol):
    def submit(self, event: MarketEvent, raw: bytes | str) -> asyncio.Future[None]: ...


Publisher = Callable[[FeatureVector], Awaitable[None]]
DeadLetter = Callable[[Any, str, str], Awaitable[None]]


@dataclass(slots=True)
class LiveStats:
    consumed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    published: int = 0
    publish_failures: int = 0
    publish_dropped: int = 0
    last_event_receive_us: int | None = None
    last_vector_us: int | None = None
    raw_failures: int = 0
    duplicates: int = 0  # redelivered / repeated events: stored and acked, never re-applied


class LiveEngine:
    def __init__(
        self,
        engine: FeatureEngine,
        clock: ServiceClock,
        *,
        publisher: Publisher | None = None,
        dead_letter: DeadLetter | None = None,
        raw_sink: RawSink | None = None,
        publish_queue_size: int = 100_000,
        on_vectors: Callable[[list[FeatureVector]], None] | None = None,
        on_desync: Callable[[str], None] | None = None,
        telemetry: Telemetry | None = None,
        boundary: IngestBoundary | None = None,
        checkpointer: BookCheckpointer | None = None,
    ) -> None:
        self.engine = engine
        self.telemetry = telemetry or Telemetry()
        self.boundary = boundary or IngestBoundary()
        self.checkpointer = checkpointer
        self.clock = clock
        self._publisher = publisher
        self._dead_letter = dead_letter
        self._raw_sink = raw_sink
        self._on_vectors = on_vectors
        self.on_desync = on_desync  # a book went out of sync: request a snapshot (book_resync)
        self.latest: dict[str, dict[int, FeatureVector]] = {}
        self.stats = LiveStats()
        self._outbox: asyncio.Queue[FeatureVector] = asyncio.Queue(maxsize=publish_queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_acks: set[asyncio.Future[Any]] = set()
        self._acks_by_batch: dict[asyncio.Future[Any], list[DeliveryLike]] = {}

    # -- ingestion -----------------------------------------------------------------------------
    def ingest(self, body: bytes | str, source: str = "") -> Ingested:
        """Stamp, parse and apply one message through the ingest boundary; returns ``(events,
        fresh)`` and raises MessageRejected for bad input. Events the sequencer recognises as
        duplicates (a redelivery) are not applied again; the caller still stores and
        acknowledges every event."""
        t = self.boundary.stamp(self.clock.now_us())
        got = self.boundary.ingest(body, t)
        events, fresh = got
        _trace(events)
        vectors: list[FeatureVector] = []
        process = self.engine.process
        checkpointer = self.checkpointer
        for event in fresh:
            vectors.extend(process(event))
            if checkpointer is not None and type(event) in _BOOK_TYPES:
                checkpointer.after(event)  # type: ignore[arg-type]
        if fresh is not events:
            self.stats.duplicates += len(events) - len(fresh)
        self.stats.consumed[source] += 1
        self.stats.last_event_receive_us = t
        self.telemetry.on_message(source, events, t)
        quality = self.engine.quality
        if quality.desync_started:
            desynced, quality.desync_started = quality.desync_started, []
            if self.on_desync is not None:
                for symbol in desynced:
                    self.on_desync(symbol)
        if vectors:
            self._deliver(vectors)
        return got

    async def on_delivery(self, delivery: DeliveryLike) -> None:
        """Bus handler: a message is acknowledged only after it was applied and, when a raw
        store is configured, durably written. Bad input goes to the dead-letter queue. A
        duplicate is stored too (the raw reader drops it on read) so its ack follows the same
        path as any other message."""
        # Every log line of this message's handling carries its trace id (the header is there
        # before parsing, so a rejection names it too); ingest replaces it for header-less input.
        headers = getattr(delivery, "headers", None)
        TRACE_ID.set(headers.get("trace_id") if headers else None)
        if getattr(delivery, "redelivered", False):
            self.telemetry.redelivered[delivery.queue] += 1
        try:
            events = self.ingest(delivery.body, delivery.queue)[0]
        except MessageRejected as exc:
            await self.reject(delivery, exc)
            return
        if self._raw_sink is None or not events:
            await delivery.ack()
            self.telemetry.messages[(delivery.queue, "applied")] += 1
            return
        self.ack_when_stored(
            delivery, [self._raw_sink.submit(event, delivery.body) for event in events]
        )

    async def reject(self, delivery: DeliveryLike, exc: MessageRejected) -> None:
        """Count, log and dead-letter a message that cannot be used (never requeued)."""
        self.stats.rejected[(delivery.queue, exc.reason.value)] += 1
        self.telemetry.messages[(delivery.queue, "rejected")] += 1
        log.warning(
            "message_rejected", queue=delivery.queue, reason=exc.reason.value, detail=exc.detail
        )
        if self._dead_letter is not None:
            await self._dead_letter(delivery, exc.reason.value, exc.detail)
        else:
            await delivery.ack()

    def ack_when_stored(self, delivery: DeliveryLike, stored: list[asyncio.Future[None]]) -> None:
        """Acknowledge once every future resolved (the message is durably on disk).

        The raw writer hands out one future per batch, so deliveries are grouped by it: one
        callback and one ack task per stored batch instead of per message."""
        fut: asyncio.Future[Any] = stored[0] if len(stored) == 1 else asyncio.gather(*stored)
        waiting = self._acks_by_batch.get(fut)
        if waiting is None:
            waiting = self._acks_by_batch[fut] = []
            self._pending_acks.add(fut)
            fut.add_done_callback(self._after_store)
        waiting.append(delivery)

    def _after_store(self, fut: asyncio.Future[Any]) -> None:
        self._pending_acks.discard(fut)
        deliveries = self._acks_by_batch.pop(fut, [])
        if fut.cancelled() or fut.exception() is not None:
            # Not acknowledged: the broker redelivers them after a reconnect or restart.
            self.stats.raw_failures += len(deliveries)
            _count_outcome(self.telemetry, deliveries, "store_failed")
            error = "cancelled" if fut.cancelled() else repr(fut.exception())
            log.error(
                "raw_store_failed",
                messages=len(deliveries),
                error=error,
                trace_ids=_trace_ids(deliveries),
            )
            return
        _count_outcome(self.telemetry, deliveries, "stored")
        task = asyncio.ensure_future(self._ack_all(deliveries))
        self._pending_acks.add(task)
        task.add_done_callback(self._pending_acks.discard)

    @staticmethod
    async def _ack_all(deliveries: list[DeliveryLike]) -> None:
        for delivery in deliveries:
            try:
                await delivery.ack()
            except Exception as exc:  # a gone channel: the broker redelivers; never stop here
                log.warning("ack_failed", queue=delivery.queue, error=repr(exc))

    # -- time ----------------------------------------------------------------------------------
    def tick(self) -> list[FeatureVector]:
        vectors = self.engine.advance_to(self.clock.now_us())
        if vectors:
            self._deliver(vectors)
        return vectors

    async def run_timer(self) -> None:
        """Close boundaries that pass in quiet periods; events close them earlier when busy."""
        step = self.engine.clock.step_us
        while True:
            now = self.clock.now_us()
            next_boundary = (now // step + 1) * step
            await asyncio.sleep(self.clock.sleep_seconds_until(next_boundary) + 0.0005)
            try:
                self.tick()
            except Exception:  # never let the timer die: log and keep scheduling
                log.exception("timer_tick_failed")

    # -- output --------------------------------------------------------------------------------
    def _deliver(self, vectors: list[FeatureVector]) -> None:
        for vector in vectors:
            self.latest.setdefault(vector.symbol, {})[vector.interval_s] = vector
            self.stats.last_vector_us = vector.timestamp
            if self._publisher is None:
                continue
            try:
                self._outbox.put_nowait(vector)
            except asyncio.QueueFull:
                # The broker is gone for long: the freshest vectors matter most to consumers.
                self._outbox.get_nowait()
                self._outbox.put_nowait(vector)
                self.stats.publish_dropped += 1
        self.telemetry.on_vectors(vectors)
        if self._on_vectors is not None:
            self._on_vectors(vectors)

    async def run_publisher(self, max_in_flight: int = 256) -> None:
        """Publish everything waiting at once and then await the confirms together: one broker
        round trip per batch instead of per vector, so a slow confirm cannot queue vectors up."""
        assert self._publisher is not None
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < max_in_flight and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            while batch:
                results = await asyncio.gather(
                    *(self._publisher(v) for v in batch), return_exceptions=True
                )
                failed = []
                for vector, result in zip(batch, results, strict=True):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    if isinstance(result, BaseException):
                        failed.append(vector)
                        self.stats.publish_failures += 1
                        log.warning("publish_failed", error=repr(result), symbol=vector.symbol)
                    else:
                        self.stats.published += 1
                        self.telemetry.on_published(vector, self.clock.now_us())
                batch = failed
                if batch:
                    await asyncio.sleep(1.0)

    def latest_vector(self, symbol: str, interval_s: int | None = None) -> FeatureVector | None:
        by_interval = self.latest.get(symbol)
        if not by_interval:
            return None
        if interval_s is not None:
            return by_interval.get(interval_s)
        return by_interval[min(by_interval)]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.run_timer(), name="feature-timer"))
        if self._publisher is not None:
            self._tasks.append(asyncio.create_task(self.run_publisher(), name="feature-publisher"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._pending_acks:
            await asyncio.gather(*list(self._pending_acks), return_exceptions=True)


def vector_to_json(vector: FeatureVector) -> bytes:
    return orjson.dumps(vector.to_message())


def _trace(events: list[MarketEvent]) -> None:
    """The message's trace id (or a new one when it came without) on its events and in the log
    context: the raw row, the vector and every log line of its handling carry it."""
    if not events:
        return
    trace = events[0].trace_id
    if trace is None:
        trace = new_trace_id()
        for event in events:
            event.trace_id = trace
    TRACE_ID.set(trace)


def _count_outcome(telemetry: Telemetry, deliveries: list[DeliveryLike], outcome: str) -> None:
    counts = telemetry.messages
    for delivery in deliveries:
        counts[(delivery.queue, outcome)] += 1


def _trace_ids(deliveries: list[DeliveryLike], limit: int = 20) -> list[str]:
    out = []
    for delivery in deliveries[:limit]:
        headers = getattr(delivery, "headers", None)
        if headers and headers.get("trace_id"):
            out.append(str(headers["trace_id"]))
    return out
