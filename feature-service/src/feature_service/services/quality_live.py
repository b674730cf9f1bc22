"""The live side of data quality, off the hot path: every few seconds the monitor's finished
minutes and incidents are written to the summary store (so any covered period's report needs
no raw data) and one row per symbol and minute goes to ``data_quality_metrics``.

The engine only appends to in-memory lists; everything here runs in its own task, file writes
in a thread, and database writes with a timeout into a bounded buffer: a slow or absent
database costs features nothing (rows wait, the oldest are dropped past the bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import QualityMetricRow
from feature_service.adapters.qualitystore import QualityStore
from feature_service.config import Settings
from feature_service.logging import get_logger
from feature_service.quality.config import QualityConfig
from feature_service.quality.incidents import Incident
from feature_service.quality.monitor import QualityMonitor
from feature_service.quality.report import build_report
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary

log = get_logger(__name__)


def quality_config(settings: Settings) -> QualityConfig:
    return QualityConfig(
        skew_threshold_ms=settings.quality_skew_threshold_ms,
        jump_k=settings.quality_jump_k,
        jump_min_return=settings.quality_jump_min_return,
        trade_outside_tolerance=settings.quality_trade_outside_tolerance,
    )


def log_incident(inc: Incident) -> None:
    """Each incident is logged once, when it is complete (a point incident at once, an open
    one such as a desync when it closes, with its duration)."""
    log.warning("data_quality_incident", **inc.to_dict())


class QualityRecorder:
    def __init__(
        self,
        monitor: QualityMonitor,
        summaries: QualityStore,
        now_us: Callable[[], int],
        *,
        store: MetadataStore | None = None,
        symbols: Iterable[str] = (),
        config: QualityConfig | None = None,
        interval_s: float = 5.0,
        db_timeout_s: float = 5.0,
        max_buffered_rows: int = 100_000,
    ) -> None:
        self.monitor = monitor
        self.summaries = summaries
        self.now_us = now_us
        self.store = store
        self.symbols = list(symbols)
        self.config = config or monitor.config
        self.interval_s = interval_s
        self.db_timeout_s = db_timeout_s
        self.session = f"{now_us() // 1_000_000}-{secrets.token_hex(4)}"
        self.start_us = now_us()
        self._pending: dict[tuple[str, int], list[Incident]] = {}
        self._rows: deque[QualityMetricRow] = deque(maxlen=max_buffered_rows)
        self._last_minute: int | None = None
        self._db_down = False
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.rows_dropped = 0
        self.write_failures = 0

    # -- one cycle -----------------------------------------------------------------------------
    def collect(self, now_us: int) -> tuple[list[MinuteSummary], list[Incident], int]:
        """Finish minutes up to now and queue their metric rows (runs on the event loop: cheap)."""
        until = now_us - now_us % US_PER_MINUTE
        self.monitor.flush(until)
        minutes, incidents = self.monitor.drain()
        for inc in incidents:
            minute = inc.detected_us - inc.detected_us % US_PER_MINUTE
            self._pending.setdefault((inc.symbol, minute), []).append(inc)
        seen: set[tuple[str, int]] = set()
        for m in minutes:
            seen.add((m.symbol, m.minute_us))
            self._queue_row(m.symbol, m.minute_us, [m])
        # A configured symbol that delivered nothing in a minute was missing all of it.
        first = self._last_minute if self._last_minute is not None else until
        for minute in range(first, until, US_PER_MINUTE):
            for symbol in self.symbols:
                if (symbol, minute) not in seen and minute >= self.start_us - US_PER_MINUTE:
                    self._queue_row(symbol, minute, [])
        self._last_minute = until
        for key in [k for k in self._pending if k[1] < until - US_PER_MINUTE]:
            del self._pending[key]
        return minutes, incidents, until

    def _queue_row(self, symbol: str, minute: int, rows: list[MinuteSummary]) -> None:
        incs = self._pending.get((symbol, minute), [])
        report = build_report(symbol, minute, minute + US_PER_MINUTE, rows, incs, self.config)
        if len(self._rows) == self._rows.maxlen:
            self.rows_dropped += 1
        self._rows.append(
            QualityMetricRow(
                symbol=symbol,
                metric_timestamp=datetime.fromtimestamp(minute / 1e6, tz=UTC),
                missing_rate=report.missing_rate,
                anomaly_rate=report.anomaly_rate,
                sequence_gaps_count=report.sequence_gaps,
                desynchronization_events_count=report.desynchronization_events,
                data_completeness_rate=1.0 - report.missing_rate,
                trace_id=self.session,
            )
        )

    async def cycle(self) -> None:
        minutes, incidents, until = self.collect(self.now_us())
        try:
            await asyncio.to_thread(self._write_files, minutes, incidents, until)
        except OSError as exc:
            log.error("quality_summaries_write_failed", error=repr(exc))
        await self._write_rows()

    def _write_files(
        self, minutes: list[MinuteSummary], incidents: list[Incident], until: int
    ) -> None:
        self.summaries.append(self.session, minutes, incidents)
        self.summaries.mark_covered(self.session, self.start_us, until)

    async def _write_rows(self) -> None:
        if self.store is None or not self._rows:
            return
        batch = list(self._rows)
        try:
            async with asyncio.timeout(self.db_timeout_s):
                await self.store.insert_quality_metrics(batch)
        except Exception as exc:  # an outage: keep the rows, say so once, try again later
            self.write_failures += 1
            if not self._db_down:
                log.warning("quality_metrics_write_failed", error=repr(exc), buffered=len(batch))
            self._db_down = True
            return
        for _ in batch:
            self._rows.popleft()
        self.rows_written += len(batch)
        if self._db_down:
            log.info("quality_metrics_write_recovered", rows=len(batch))
        self._db_down = False

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.cycle()
            except Exception:  # never let the recorder die
                log.exception("quality_recorder_failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="quality-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.cycle()
