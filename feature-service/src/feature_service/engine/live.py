"""Live engine: bus deliveries -> receive stamp -> FeatureEngine -> latest store + features.live.

Everything that touches features runs synchronously in the event loop thread, in the order the
messages are consumed: the receive stamp, parsing and the engine step happen in one call, so
receive times are monotonic and state advances exactly in receive order (what the offline replay
reproduces). Publishing and the raw-store hand-off are asynchronous and never block ingestion.

Every delivery is settled somewhere (issue 9): acknowledged once applied and durably stored;
dead-lettered with its reason when it is malformed or can never be stored; nacked back to the
broker with bounded retries and backoff when handling it failed unexpectedly (dead-lettered
after the last attempt). While the raw store fails, the handler waits before taking the next
delivery (consumption pauses; prefetched messages stay unacknowledged at the broker) and
resumes by itself once the store's retry succeeded; the batches it kept are acknowledged then,
so nothing is applied twice.
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
from feature_service.ingest import BybitAdapter, IngestBoundary, Ingested
from feature_service.logging import TRACE_ID, get_logger, new_trace_id
from feature_service.market.errors import MessageRejected, UnstorableRecord
from feature_service.market.events import BookDelta, BookSnapshot, MarketEvent
from feature_service.market.values import DEFAULT_LIMITS, ParseLimits
from feature_service.telemetry import Telemetry

log = get_logger(__name__)

_BOOK_TYPES = (BookSnapshot, BookDelta)


class DeliveryLike(Protocol):
    body: bytes
    queue: str

    async def ack(self) -> None: ...

    async def nack(self, requeue: bool) -> None: ...


class RawSink(Protocol):
    def submit(self, event: MarketEvent, raw: bytes | str) -> asyncio.Future[None]: ...


REASON_UNSTORABLE = "unstorable"
REASON_RETRIES_EXHAUSTED = "handler_error"
_ATTEMPTS_MAX_KEYS = 10_000  # bounded memory of messages being retried
_SYMBOLS_MAX = 10_000


Publisher = Callable[[FeatureVector], Awaitable[None]]
DeadLetter = Callable[[Any, str, str], Awaitable[None]]


@dataclass(slots=True)
class LiveStats:
    consumed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    published: int = 0
    publish_failures: int = 0
    publish_dropped: int = 0
    publish_uncertain: int = 0  # sent, confirm missing: not re-sent (at most once)
    last_event_receive_us: int | None = None
    last_vector_us: int | None = None
    raw_failures: int = 0
    duplicates: int = 0  # redelivered / repeated events: stored and acked, never re-applied
    retried: int = 0  # nacked back to the broker after a handler failure
    retries_exhausted: int = 0  # dead-lettered after the last attempt
    storage_pauses: int = 0
    storage_paused_since_us: int | None = None  # set while consumption waits for the store
    last_receive_by_symbol: dict[str, int] = field(default_factory=dict)


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
        limits: ParseLimits = DEFAULT_LIMITS,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.5,
        boundary: IngestBoundary | None = None,
        checkpointer: BookCheckpointer | None = None,
    ) -> None:
        self.engine = engine
        self.telemetry = telemetry or Telemetry()
        self.limits = limits
        self.boundary = boundary or IngestBoundary(BybitAdapter(limits))
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
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self._attempts: dict[Any, int] = {}

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
        try:
            for event in fresh:
                vectors.extend(process(event))
                if checkpointer is not None and type(event) in _BOOK_TYPES:
                    checkpointer.after(event)  # type: ignore[arg-type]
        except BaseException:
            self.boundary.forget(body, fresh)  # nacked and retried: not a duplicate then
            raise
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
        sink = self._raw_sink
        await self.wait_for_storage()
        try:
            events = self.ingest(delivery.body, delivery.queue)[0]
        except MessageRejected as exc:
            await self.reject(delivery, exc)
            return
        except Exception as exc:  # a bug or a resource error: retry a bounded number of times
            await self.retry_later(delivery, exc)
            return
        self._note_symbols(events)
        if sink is None or not events:
            await delivery.ack()
            self.telemetry.messages[(delivery.queue, "applied")] += 1
            return
        try:
            stored = [sink.submit(event, delivery.body) for event in events]
        except Exception as exc:  # the writer is closed: shutting down
            await self.retry_later(delivery, exc)
            return
        self.ack_when_stored(delivery, stored)

    async def wait_for_storage(self) -> None:
        """Pause here (take no new delivery) while the raw store is failing."""
        sink = self._raw_sink
        if sink is None or getattr(sink, "healthy", True):
            return
        stats = self.stats
        if stats.storage_paused_since_us is None:
            stats.storage_paused_since_us = self.clock.now_us()
            stats.storage_pauses += 1
            log.warning("consumption_paused", reason="raw_store_failing")
        await sink.wait_healthy()  # type: ignore[attr-defined]
        if stats.storage_paused_since_us is not None:
            paused_s = (self.clock.now_us() - stats.storage_paused_since_us) / 1e6
            stats.storage_paused_since_us = None
            log.info("consumption_resumed", paused_s=round(paused_s, 3))

    def _note_symbols(self, events: list[MarketEvent]) -> None:
        seen = self.stats.last_receive_by_symbol
        for event in events:
            if event.symbol in seen or len(seen) < _SYMBOLS_MAX:
                seen[event.symbol] = event.receive_ts

    async def retry_later(self, delivery: DeliveryLike, exc: BaseException) -> None:
        """Nack back to the broker after a backoff, at most ``max_attempts`` times in all for
        one message; then dead-letter it with the error (a poison message never loops)."""
        key = getattr(delivery, "message_id", None) or hash(delivery.body)
        attempts = self._attempts.pop(key, 0) + 1
        detail = f"{type(exc).__name__}: {exc}"
        if attempts >= self.max_attempts:
            self.stats.retries_exhausted += 1
            log.error("delivery_failed", queue=delivery.queue, attempts=attempts, error=detail)
            await self._send_to_dead_letter(
                delivery, REASON_RETRIES_EXHAUSTED, f"after {attempts} attempts: {detail}"
            )
            return
        if len(self._attempts) >= _ATTEMPTS_MAX_KEYS:
            self._attempts.pop(next(iter(self._attempts)))
        self._attempts[key] = attempts
        self.stats.retried += 1
        log.warning("delivery_retry", queue=delivery.queue, attempt=attempts, error=detail)
        await asyncio.sleep(self.retry_backoff_s * 2 ** (attempts - 1))
        try:
            await delivery.nack(requeue=True)
        except Exception as nack_exc:  # a gone channel: the broker redelivers anyway
            log.warning("nack_failed", queue=delivery.queue, error=repr(nack_exc))

    async def _send_to_dead_letter(self, delivery: DeliveryLike, reason: str, detail: str) -> None:
        if self._dead_letter is not None:
            await self._dead_letter(delivery, reason, detail)
        else:
            await delivery.ack()

    async def reject(self, delivery: DeliveryLike, exc: MessageRejected) -> None:
        """Count, log and dead-letter a message that cannot be used (never requeued)."""
        self.stats.rejected[(delivery.queue, exc.reason.value)] += 1
        self.telemetry.messages[(delivery.queue, "rejected")] += 1
        log.warning(
            "message_rejected", queue=delivery.queue, reason=exc.reason.value, detail=exc.detail
        )
        await self._send_to_dead_letter(delivery, exc.reason.value, exc.detail)

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
            # The writer retries failed batches itself, so this is a record that can never be
            # stored (dead-lettered) or a shutdown that gave up (back to the broker).
            self.stats.raw_failures += len(deliveries)
            _count_outcome(self.telemetry, deliveries, "store_failed")
            exc = None if fut.cancelled() else fut.exception()
            log.error(
                "raw_store_failed",
                messages=len(deliveries),
                error=repr(exc),
                trace_ids=_trace_ids(deliveries),
            )
            task = asyncio.ensure_future(self._settle_unstored(deliveries, exc))
        else:
            _count_outcome(self.telemetry, deliveries, "stored")
            task = asyncio.ensure_future(self._ack_all(deliveries))
        self._pending_acks.add(task)
        task.add_done_callback(self._pending_acks.discard)

    async def _settle_unstored(
        self, deliveries: list[DeliveryLike], exc: BaseException | None
    ) -> None:
        unstorable = isinstance(exc, UnstorableRecord)
        for delivery in deliveries:
            try:
                if unstorable:
                    await self._send_to_dead_letter(delivery, REASON_UNSTORABLE, str(exc))
                else:
                    await delivery.nack(requeue=True)
            except Exception as settle_exc:  # a gone channel: the broker redelivers
                log.warning("settle_failed", queue=delivery.queue, error=repr(settle_exc))

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
                        self.stats.publish_failures += 1
                        log.warning("publish_failed", error=repr(result), symbol=vector.symbol)
                        if _is_uncertain(result):
                            # It may be on the queue already: at most once, never re-sent.
                            self.stats.publish_uncertain += 1
                        else:
                            failed.append(vector)
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

    async def stop(self, ack_grace_s: float = 5.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._pending_acks:
            # Bounded: a batch the failing raw store still retries may never resolve here; its
            # messages stay unacknowledged and the broker redelivers them.
            await asyncio.wait(list(self._pending_acks), timeout=ack_grace_s)


def vector_to_json(vector: FeatureVector) -> bytes:
    return orjson.dumps(vector.to_message())


def vector_message_id(vector: FeatureVector) -> str:
    """Deterministic: the same vector always gets the same id, whatever retries happen."""
    return f"{vector.symbol}:{vector.interval_s}s:{vector.timestamp}"


def _is_uncertain(exc: BaseException) -> bool:
    # By name, so the engine does not import the bus adapters (a lower layer never imports up).
    return any(cls.__name__ == "PublishUncertain" for cls in type(exc).__mro__)


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
