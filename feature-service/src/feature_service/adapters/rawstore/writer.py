"""Writers of the raw store: the async one behind the live consumer, a sync one for tools.

No-loss contract: ``RawWriter.submit`` returns a future that resolves only once the batch holding
that message is durably on disk (temp file fsynced, renamed, folder fsynced). The consumer
acknowledges the RabbitMQ message then, so a crash at any point either leaves the message on disk
or leaves it unacknowledged (redelivered, and removed again as a duplicate on read).

Rows are buffered per (kind, day, symbol). A buffer is written when it reaches ``flush_rows`` or
when its oldest row is ``flush_age_s`` old. All rows of a buffer share one future, so a message
costs one list append and no allocation of its own. Parquet encoding runs in worker threads.

Failure (disk full, I/O error): a batch that could not be written is never dropped. It is kept,
in order, and written again with exponential backoff (``retry_initial_s`` doubling up to
``retry_max_s``) until it succeeds; its future resolves only then. Meanwhile ``healthy`` is False
with the reason in ``failure``, so the consumer stops taking deliveries (``wait_healthy``) and
/health reports it; when a retry succeeds everything resumes by itself. Only ``close`` gives up:
the futures of batches still failing then carry the error, and their messages stay
unacknowledged for the broker to redeliver to the next process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from feature_service.adapters.rawstore.layout import (
    US_PER_DAY,
    Kind,
    check_symbol,
    clean_stale_tmp,
    day_name,
    kind_of,
)
from feature_service.adapters.rawstore.parts import (
    WriterStats,
    WrittenPart,
    _PartCounter,
    write_part,
)
from feature_service.adapters.rawstore.schema import (
    Item,
    PendingRow,
    RecordMeta,
)
from feature_service.logging import get_logger
from feature_service.market.errors import UnstorableRecord
from feature_service.market.events import MarketEvent

log = get_logger(__name__)

Clock = Callable[[], float]


class _Buffer:
    __slots__ = ("day", "first_at", "future", "kind", "rows", "symbol")

    def __init__(
        self, kind: Kind, day: int, symbol: str, first_at: float, future: asyncio.Future[None]
    ) -> None:
        self.kind = kind
        self.day = day
        self.symbol = symbol
        self.first_at = first_at
        self.future = future
        self.rows: list[PendingRow] = []


class RawStoreError(RuntimeError):
    """A flush could not make every buffered row durable."""


class RawWriter:
    """Async raw writer. ``await start()`` (removes stale temp files, starts the flush task),
    ``submit(event, raw)`` per consumed event, ``await close()`` on shutdown.

    ``clock`` (monotonic seconds) only drives the age of buffers, so tests can inject a fake one
    and call ``flush_due()``. ``first_seq`` defaults to the wall clock in nanoseconds so that a
    restarted writer keeps numbering above its predecessor."""

    def __init__(
        self,
        root: Path | str,
        *,
        flush_rows: int = 5000,
        flush_age_s: float = 1.0,
        compression: str = "zstd",
        compression_level: int | None = None,
        max_concurrent_writes: int = 4,
        clock: Clock = time.monotonic,
        first_seq: int | None = None,
        stale_tmp_age_s: float = 300.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
    ) -> None:
        if flush_rows < 1 or flush_age_s <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_age_s > 0")
        self.root = Path(root)
        self.flush_rows = flush_rows
        self.flush_age_s = flush_age_s
        self.compression = compression
        self.compression_level = compression_level
        self.stats = WriterStats()
        self._clock = clock
        self._seq = itertools.count(time.time_ns() if first_seq is None else first_seq)
        self._parts = _PartCounter()
        self._stale_tmp_age_s = stale_tmp_age_s
        self._buffers: dict[tuple[Kind, int, str], _Buffer] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._semaphore = asyncio.Semaphore(max_concurrent_writes)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.failure: str | None = None  # the last write error while batches wait for a retry
        self.failing_since: float | None = None  # clock() of the first failure of this episode
        self._failed: list[_Buffer] = []  # written again, in this order
        self._retry_task: asyncio.Task[None] | None = None
        self._healthy_event: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        removed = await asyncio.to_thread(
            clean_stale_tmp, self.root, older_than_s=self._stale_tmp_age_s
        )
        self.stats.stale_tmp_removed += len(removed)
        if removed:
            log.warning("raw_stale_tmp_removed", count=len(removed), root=str(self.root))
        self._ensure_task()

    async def __aenter__(self) -> RawWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Write everything buffered, then stop; later submissions raise. A failed batch is
        logged, not raised: its futures carry the error and its messages stay unacknowledged,
        so shutdown goes on and the broker redelivers them."""
        self._closed = True
        try:
            await self.flush()
        except RawStoreError as exc:
            log.error("raw_close_incomplete", error=str(exc))
        finally:
            if self._retry_task is not None:
                self._retry_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._retry_task
                self._retry_task = None
            if self._failed:
                await self._retry_failed()  # one last attempt
            for buffer in self._failed:
                if not buffer.future.done():
                    buffer.future.set_exception(RawStoreError(self.failure or "write failed"))
                    buffer.future.exception()
            self._failed.clear()
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None

    # -- input ---------------------------------------------------------------------------------
    def submit(
        self, event: MarketEvent, raw: bytes | str, *, part: int | None = None
    ) -> asyncio.Future[None]:
        """Buffer one event with its message body; ``part`` is the event's index in a body that
        carried several (inferred when omitted). The future resolves when it is on disk."""
        if part is None:
            part = self._parts.next(raw, event.receive_ts)
        return self._add(kind_of(event), event, raw, part)

    def submit_record(
        self, kind: Kind, meta: RecordMeta, raw: bytes | str, *, part: int = 0
    ) -> asyncio.Future[None]:
        """Buffer a message that is not a market event (own-order executions)."""
        return self._add(kind, meta, raw, part)

    def _add(self, kind: Kind, item: Item, raw: bytes | str, part: int) -> asyncio.Future[None]:
        if self._closed:
            raise RuntimeError("raw writer is closed")
        key = (kind, item.receive_ts // US_PER_DAY, item.symbol)
        buffer = self._buffers.get(key)
        if buffer is None:
            loop = asyncio.get_running_loop()
            try:
                check_symbol(item.symbol)
            except ValueError as exc:
                failed: asyncio.Future[None] = loop.create_future()
                failed.set_exception(UnstorableRecord(str(exc)))
                return failed
            buffer = _Buffer(kind, key[1], item.symbol, self._clock(), loop.create_future())
            self._buffers[key] = buffer
            self._ensure_task()
            if self._wake is not None:
                self._wake.set()  # a new deadline: let the flush task recompute its sleep
        buffer.rows.append((item, raw, next(self._seq), part))
        self.stats.pending_rows += 1
        if len(buffer.rows) >= self.flush_rows:
            self._dispatch(key)
        return buffer.future

    # -- flushing ------------------------------------------------------------------------------
    async def flush_due(self) -> int:
        """Write the buffers that are old enough now; returns how many batches were written."""
        tasks = self._dispatch_due()[0]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def flush(self) -> None:
        """Make every row submitted so far durable; raises RawStoreError while batches wait for
        a retry (their futures stay pending until it succeeds)."""
        for key in list(self._buffers):
            self._dispatch(key)
        tasks = list(self._inflight)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._failed:
            raise RawStoreError(
                f"{len(self._failed)} raw batch(es) failed to write and wait for a retry: "
                f"{self.failure}"
            )

    # -- failure -------------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return not self._failed

    async def wait_healthy(self) -> None:
        """Return once no batch waits for a retry (at once when healthy)."""
        while self._failed:
            if self._healthy_event is None:
                self._healthy_event = asyncio.Event()
            await self._healthy_event.wait()

    def _keep_failed(self, buffer: _Buffer, exc: BaseException) -> None:
        if not self._failed:
            self.failing_since = self._clock()
            log.error("raw_store_failing", error=repr(exc))
        self.failure = f"{type(exc).__name__}: {exc}"
        self._failed.append(buffer)
        self._failed.sort(key=lambda b: b.first_at)  # oldest batch first
        if self._healthy_event is not None:
            self._healthy_event.clear()
        if self._retry_task is None and not self._closed:
            self._retry_task = asyncio.get_running_loop().create_task(
                self._retry_loop(), name="raw-writer-retry"
            )

    async def _retry_loop(self) -> None:
        delay = self.retry_initial_s
        try:
            while self._failed:
                await asyncio.sleep(delay)
                await self._retry_failed()
                delay = min(delay * 2, self.retry_max_s)
        finally:
            self._retry_task = None

    async def _retry_failed(self) -> None:
        """Write the waiting batches again, oldest first; stop at the first that still fails."""
        while self._failed:
            buffer = self._failed[0]
            try:
                written = await asyncio.to_thread(self._write_part, buffer)
            except Exception as exc:
                self.failure = f"{type(exc).__name__}: {exc}"
                self.stats.retries_failed += 1
                log.warning("raw_retry_failed", error=self.failure, waiting=len(self._failed))
                return
            self._failed.pop(0)
            self.stats.batches_retried += 1
            self._written(buffer, written)
        if self.failing_since is not None:
            log.info("raw_store_recovered", after_s=round(self._clock() - self.failing_since, 3))
        self.failure = None
        self.failing_since = None
        if self._healthy_event is not None:
            self._healthy_event.set()

    def _write_part(self, buffer: _Buffer) -> WrittenPart:
        return write_part(
            self.root,
            buffer.kind,
            day_name(buffer.day),
            buffer.symbol,
            buffer.rows,
            compression=self.compression,
            compression_level=self.compression_level,
        )

    @property
    def buffered_rows(self) -> int:
        return sum(len(b.rows) for b in self._buffers.values())

    def _ensure_task(self) -> None:
        if self._task is None and not self._closed:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="raw-writer")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                timeout = self._dispatch_due()[1]
            except Exception:  # never let the flush task die: log and keep going
                log.exception("raw_flush_loop_failed")
                timeout = self.flush_age_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch_due(self) -> tuple[list[asyncio.Task[None]], float | None]:
        """Start writes of due buffers; also returns the seconds until the next one is due."""
        now = self._clock()
        tasks: list[asyncio.Task[None]] = []
        next_in: float | None = None
        for key, buffer in list(self._buffers.items()):
            remaining = buffer.first_at + self.flush_age_s - now
            if remaining <= 0:
                tasks.append(self._dispatch(key))
            elif next_in is None or remaining < next_in:
                next_in = remaining
        if next_in is not None:
            next_in = min(next_in, self.flush_age_s)
        return tasks, next_in

    def _dispatch(self, key: tuple[Kind, int, str]) -> asyncio.Task[None]:
        buffer = self._buffers.pop(key)
        task = asyncio.get_running_loop().create_task(self._write(buffer))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _write(self, buffer: _Buffer) -> None:
        rows = buffer.rows
        async with self._semaphore:
            started = self._clock()
            if self._failed:
                # Later batches wait behind the failed ones: files stay in arrival order and a
                # full disk is not hammered by every new batch.
                self._keep_failed(buffer, RuntimeError(self.failure or "earlier batch failed"))
                return
            try:
                written = await asyncio.to_thread(self._write_part, buffer)
            except Exception as exc:
                self.stats.batches_failed += 1
                self.stats.rows_failed += len(rows)
                log.error(
                    "raw_write_failed",
                    kind=buffer.kind.value,
                    symbol=buffer.symbol,
                    rows=len(rows),
                    error=repr(exc),
                )
                self._keep_failed(buffer, exc)
                return
        self.stats.last_write_s = self._clock() - started
        self._written(buffer, written)

    def _written(self, buffer: _Buffer, written: WrittenPart) -> None:
        rows = buffer.rows
        done = self._clock()
        stats = self.stats
        stats.pending_rows -= len(rows)
        stats.rows_written[buffer.kind.value] = (
            stats.rows_written.get(buffer.kind.value, 0) + written.rows
        )
        stats.files_written += 1
        stats.bytes_written += written.bytes
        stats.max_write_s = max(stats.max_write_s, stats.last_write_s or 0.0)
        stats.last_flush_latency_s = done - buffer.first_at
        stats.max_flush_latency_s = max(stats.max_flush_latency_s, stats.last_flush_latency_s)
        if not buffer.future.done():  # a consumer may have cancelled the shared future
            buffer.future.set_result(None)


class RawWriterSync:
    """Blocking writer for offline tools (backfill, import, tests): same files, same protocol.
    Bodies may be omitted: a ws-gateway envelope is then rebuilt from the event, which parses
    back to the same event. ``source`` labels every row written (``live`` for tests that stand
    in for the consumer, ``backfill``, ``import``)."""

    def __init__(
        self,
        root: Path | str,
        *,
        flush_rows: int = 100_000,
        compression: str = "zstd",
        compression_level: int | None = None,
        first_seq: int | None = None,
        source: str = "live",
    ) -> None:
        self.root = Path(root)
        self.source = source
        self.flush_rows = flush_rows
        self.compression = compression
        self.compression_level = compression_level
        self._seq = itertools.count(time.time_ns() if first_seq is None else first_seq)
        self._parts = _PartCounter()

    def write_events(
        self,
        events: Iterable[MarketEvent],
        raws: Iterable[bytes | str | None] | None = None,
    ) -> list[WrittenPart]:
        bodies: Iterable[bytes | str | None] = raws if raws is not None else itertools.repeat(None)
        buffers: dict[tuple[Kind, int, str], list[PendingRow]] = {}
        written: list[WrittenPart] = []
        for event, raw in zip(events, bodies, strict=raws is not None):
            if raw is None:
                raw = _envelope_body(event)
                part = 0
            else:
                part = self._parts.next(raw, event.receive_ts)
            kind = kind_of(event)
            key = (kind, event.receive_ts // US_PER_DAY, check_symbol(event.symbol))
            rows = buffers.setdefault(key, [])
            rows.append((event, raw, next(self._seq), part))
            if len(rows) >= self.flush_rows:
                written.append(self._write(key, buffers.pop(key)))
        for key, rows in buffers.items():
            written.append(self._write(key, rows))
        return written

    def write_records(
        self, kind: Kind, records: Iterable[tuple[RecordMeta, bytes | str]]
    ) -> list[WrittenPart]:
        buffers: dict[tuple[Kind, int, str], list[PendingRow]] = {}
        for meta, raw in records:
            key = (kind, meta.receive_ts // US_PER_DAY, check_symbol(meta.symbol))
            buffers.setdefault(key, []).append((meta, raw, next(self._seq), 0))
        return [self._write(key, rows) for key, rows in buffers.items()]

    def _write(self, key: tuple[Kind, int, str], rows: list[PendingRow]) -> WrittenPart:
        kind, day, symbol = key
        return write_part(
            self.root,
            kind,
            day_name(day),
            symbol,
            rows,
            compression=self.compression,
            compression_level=self.compression_level,
            source=self.source,
        )


def _envelope_body(event: MarketEvent) -> bytes:
    import orjson

    from feature_service.market.recording import event_to_envelope

    return orjson.dumps(event_to_envelope(event))
