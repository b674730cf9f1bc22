"""Background writer of the operations metrics tables (feature computations, dataset builds, API
requests): the hot path only appends a tuple to a bounded queue.

- Offering a row never waits and never fails: a full queue drops the row and counts it
  (``dropped``), so a slow or absent database costs the live path nothing but the append.
- Every ``flush_s`` (or as soon as a queue holds ``batch`` rows) one task turns queued tuples into
  table rows (UUIDs, datetimes: made here, off the hot path) and writes each table's batch with a
  deadline. A batch that fails or times out is counted (``failed``) and dropped, and the next
  one reconnects. Nothing is raised to the caller; failures are logged at most once a minute.
- Retention: rows older than ``retention_days`` are deleted every ``retention_every_s``.

Counts per (table, outcome) feed ``feature_service_metrics_table_rows_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from feature_service.adapters.metadata.metrics_sink import (
    API_ENDPOINT,
    COLUMNS,
    DATASET_BUILDING,
    FEATURE_COMPUTATION,
    MetricsSink,
)
from feature_service.engine.vector import interval_label
from feature_service.logging import get_logger

log = get_logger(__name__)

_LOG_EVERY_S = 60.0


def _utc(t_us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=t_us)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class BuildObservers:
    """Hands each dataset build event to several observers (telemetry, this writer)."""

    def __init__(self, *observers: Any) -> None:
        self._observers = observers

    def build_started(self, rec: Any, trace_id: str) -> None:
        for observer in self._observers:
            observer.build_started(rec, trace_id)

    def build_finished(self, rec: Any, duration_s: float, trace_id: str) -> None:
        for observer in self._observers:
            observer.build_finished(rec, duration_s, trace_id)


class MetricsWriter:
    def __init__(
        self,
        sink: MetricsSink | None,
        *,
        max_queue: int = 20_000,
        batch: int = 1000,
        flush_s: float = 2.0,
        write_timeout_s: float = 5.0,
        retention_days: float = 30.0,
        retention_every_s: float = 3600.0,
    ) -> None:
        self.sink = sink
        self._max = max_queue
        self._batch = batch
        self._flush_s = flush_s
        self._timeout = write_timeout_s
        self._retention = timedelta(days=retention_days)
        self._retention_every_s = retention_every_s
        self._queues: dict[str, deque[tuple[Any, ...]]] = {t: deque() for t in COLUMNS}
        self.counts: Counter[tuple[str, str]] = Counter()
        self._labels: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_error_log = 0.0
        self.last_error: str | None = None

    # -- hot path --------------------------------------------------------------------------------
    def offer(self, table: str, row: tuple[Any, ...]) -> None:
        queue = self._queues[table]
        if len(queue) >= self._max:
            self.counts[(table, "dropped")] += 1
            return
        queue.append(row)
        if len(queue) == self._batch:
            self._wake.set()

    def on_vectors(self, vectors: Iterable[Any]) -> None:
        """One row per vector: raw values only; the row is built when written."""
        if self.sink is None:
            return
        for v in vectors:
            self.offer(
                FEATURE_COMPUTATION,
                (
                    v.symbol,
                    v.timestamp,
                    v.computation_us,
                    v.registry_version,
                    v.interval_s,
                    len(v.features),
                    len(v.null_reasons),
                    v.trace_id,
                ),
            )

    def api_request(
        self,
        endpoint: str,
        method: str,
        response_ms: float,
        status: int,
        symbol: str | None,
        trace_id: str | None,
    ) -> None:
        if self.sink is None:
            return
        row = (endpoint[:200], method[:10], response_ms, status, symbol, time.time_ns(), trace_id)
        self.offer(API_ENDPOINT, row)

    # -- DatasetService observer -----------------------------------------------------------------
    def build_started(self, rec: Any, trace_id: str) -> None:
        if self.sink is None:
            return
        self.offer(DATASET_BUILDING, (rec, "building", None, trace_id, time.time_ns()))

    def build_finished(self, rec: Any, duration_s: float, trace_id: str) -> None:
        if self.sink is None:
            return
        self.offer(DATASET_BUILDING, (rec, rec.status, duration_s, trace_id, time.time_ns()))

    # -- rows ------------------------------------------------------------------------------------
    def _row(self, table: str, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        if table == FEATURE_COMPUTATION:
            symbol, t_us, latency_us, version, interval_s, count, nulls, trace = raw
            label = self._labels.get(interval_s)
            if label is None:
                label = self._labels[interval_s] = interval_label(interval_s)
            return (
                uuid.uuid4(),
                symbol,
                _utc(t_us),
                round(latency_us / 1000.0, 3),
                version,
                label,
                count,
                nulls,
                trace,
            )
        if table == API_ENDPOINT:
            endpoint, method, ms, status, symbol, at_ns, trace = raw
            return (uuid.uuid4(), endpoint, method, round(ms, 3), status, symbol,
                    _utc(at_ns // 1000), trace)  # fmt: skip
        rec, status, duration_s, trace, at_ns = raw
        # A finished row only updates the end columns (the start row set build_started_at);
        # alone (a build refused before it ran) it starts at its end minus its duration.
        started = _utc(at_ns // 1000 - int((duration_s or 0.0) * 1e6))
        done = status != "building"
        counts = [rec.train_records, rec.validation_records, rec.test_records]
        return (
            uuid.uuid5(uuid.NAMESPACE_OID, f"dataset-build:{rec.id}"),  # one row per build
            rec.id,
            rec.symbol,
            started,
            _utc(at_ns // 1000) if done else None,
            status,
            None if duration_s is None else round(duration_s),
            sum(c or 0 for c in counts) if done else None,
            *(counts if done else [None, None, None]),
            rec.feature_registry_version,
            rec.split_strategy,
            trace,
        )

    # -- background ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.sink is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="metrics-writer")

    async def _run(self) -> None:
        next_retention = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            await self.flush()
            if time.monotonic() >= next_retention:
                await self.apply_retention()
                next_retention = time.monotonic() + self._retention_every_s

    async def flush(self) -> int:
        """Write up to one batch per table; returns the rows written."""
        written = 0
        for table, queue in self._queues.items():
            if not queue or self.sink is None:
                continue
            raw = [queue.popleft() for _ in range(min(self._batch, len(queue)))]
            try:
                rows = [self._row(table, r) for r in raw]
                await asyncio.wait_for(self.sink.write(table, rows), self._timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counts[(table, "failed")] += len(raw)
                self._failed("metrics_table_write_failed", table, exc, rows=len(raw))
                continue
            self.counts[(table, "written")] += len(raw)
            written += len(raw)
        return written

    async def apply_retention(self, now: datetime | None = None) -> dict[str, int]:
        if self.sink is None:
            return {}
        cutoff = _naive(now or datetime.now(UTC)) - self._retention
        deleted = {}
        for table in COLUMNS:
            try:
                deleted[table] = await asyncio.wait_for(
                    self.sink.delete_older_than(table, cutoff), self._timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("metrics_retention_failed", table, exc)
        if any(deleted.values()):
            log.info("metrics_retention_applied", deleted=deleted)
        return deleted

    def _failed(self, event: str, table: str, exc: BaseException, **extra: Any) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_EVERY_S:
            self._last_error_log = now
            log.warning(event, table=table, error=self.last_error, **extra)

    def outcomes(self) -> dict[tuple[str, str], int]:
        out = {(t, o): 0 for t in COLUMNS for o in ("written", "dropped", "failed")}
        out.update(self.counts)
        return out

    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def close(self, drain_timeout_s: float = 2.0) -> None:
        """Stop the loop, try one last flush within ``drain_timeout_s``, close the sink."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), drain_timeout_s)
            with contextlib.suppress(Exception):
                await self.sink.close()
