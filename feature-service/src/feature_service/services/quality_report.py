"""Data quality reports of any past period: from the live monitor's precomputed summaries when
a live session covered the period, else from the summaries computed when the data entered the
raw store other than live (services/quality_precompute.py), else by replaying the stored raw
data through the same monitor (what the live engine would have seen). Saved in
``data_quality_reports``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import DataQualityReportRecord
from feature_service.adapters.qualitystore import QualityStore, Session
from feature_service.adapters.rawstore.layout import Kind
from feature_service.book.orderbook import OrderBook
from feature_service.logging import get_logger
from feature_service.market.events import BookDelta, BookSnapshot, MarketEvent
from feature_service.quality.config import QualityConfig
from feature_service.quality.incidents import Incident
from feature_service.quality.monitor import REST_FEED, QualityMonitor
from feature_service.quality.report import QualityReport, build_report, snap_period
from feature_service.quality.summary import MinuteSummary

log = get_logger(__name__)

MARKET_KINDS = (
    Kind.ORDERBOOK_SNAPSHOTS,
    Kind.ORDERBOOK_DELTAS,
    Kind.TRADES,
    Kind.KLINES,
    Kind.TICKER,
    Kind.FUNDING,
)
# A replay starts this long before the period, so cadences, the price baseline and (for
# streams with frequent snapshots) the book are warm when the period starts.
DEFAULT_WARMUP_US = 10 * 60 * 1_000_000
MAX_PERIOD_US = 31 * 86_400_000_000


class InvalidPeriod(ValueError):
    """The period cannot be reported on (start not before end, or too long)."""


def check_period(start_us: int, end_us: int) -> None:
    if end_us <= start_us:
        raise InvalidPeriod("'from' must be before 'to'")
    if end_us - start_us > MAX_PERIOD_US:
        raise InvalidPeriod("a report covers at most 31 days")


def scan_events(
    events: Iterable[MarketEvent],
    config: QualityConfig | None = None,
) -> tuple[list[MinuteSummary], list[Incident]]:
    """Feed events (in receive order) through a monitor, each after its symbol's book applied
    it, exactly as the live engine does."""
    monitor = QualityMonitor(config)
    books: dict[str, OrderBook] = {}
    for event in events:
        book = books.get(event.symbol)
        if book is None:
            book = books[event.symbol] = OrderBook(event.symbol)
        if isinstance(event, BookSnapshot | BookDelta) and event.feed != REST_FEED:
            book.apply(event)
        monitor.observe(event, book)
    monitor.finish()
    return monitor.drain()


def scan_raw(
    raw_dir: Path,
    symbol: str,
    start_us: int,
    end_us: int,
    config: QualityConfig | None = None,
    warmup_us: int = DEFAULT_WARMUP_US,
) -> tuple[list[MinuteSummary], list[Incident]]:
    from feature_service.adapters.rawstore.reader import RawReader

    reader = RawReader(raw_dir, on_reject="skip")
    events = reader.iter_events(MARKET_KINDS, [symbol], start_us - warmup_us, end_us)
    return scan_events(events, config)


@dataclass(slots=True)
class ReportResult:
    report: QualityReport
    record: DataQualityReportRecord | None
    source: str  # "live_summaries" | "raw_summaries" | "raw_replay" | "recording"
    elapsed_s: float


class QualityReports:
    def __init__(
        self,
        raw_dir: Path,
        summaries: QualityStore,
        store: MetadataStore | None = None,
        config: QualityConfig | None = None,
    ) -> None:
        self.raw_dir = raw_dir
        self.summaries = summaries
        self.store = store
        self.config = config or QualityConfig()

    def compute(self, symbol: str, start_us: int, end_us: int) -> tuple[QualityReport, str]:
        """Blocking: run it in a thread from async code."""
        check_period(start_us, end_us)
        start_us, end_us = snap_period(start_us, end_us)
        session = self.summaries.covering(start_us, end_us)
        source = "live_summaries"
        if session is None:
            session = self._raw_summaries(symbol, start_us, end_us)
            source = "raw_summaries"
        if session is not None:
            minutes, incidents = self.summaries.read(session.session, symbol, start_us, end_us)
        else:
            minutes, incidents = scan_raw(self.raw_dir, symbol, start_us, end_us, self.config)
            source = "raw_replay"
        report = build_report(symbol, start_us, end_us, minutes, incidents, self.config)
        return report, source

    def _raw_summaries(self, symbol: str, start_us: int, end_us: int) -> Session | None:
        """A session summarised from the raw store (services/quality_precompute.py) covering
        the period, while the raw files it read are still exactly those."""
        from feature_service.services.quality_precompute import fingerprint

        for s in reversed(self.summaries.raw_sessions(symbol)):
            if s.covers(start_us, end_us) and s.fingerprint == fingerprint(
                self.raw_dir, symbol, s.start_us, s.until_us
            ):
                return s
        return None

    async def report(self, symbol: str, start_us: int, end_us: int) -> ReportResult:
        started = time.perf_counter()
        report, source = await asyncio.to_thread(self.compute, symbol, start_us, end_us)
        record = None
        if self.store is not None:
            record = await self.store.insert_quality_report(to_record(report))
        elapsed = time.perf_counter() - started
        log.info(
            "data_quality_report",
            symbol=symbol,
            source=source,
            elapsed_ms=round(elapsed * 1000, 1),
            incidents=len(report.incidents),
        )
        return ReportResult(report, record, source, elapsed)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def to_record(report: QualityReport) -> DataQualityReportRecord:
    """The row of ``data_quality_reports``: the contract's fields; the rest of the report is
    kept inside the two JSON columns so a stored report loses nothing."""
    return DataQualityReportRecord(
        symbol=report.symbol,
        period_start=_dt(report.period_start_us),
        period_end=_dt(report.period_end_us),
        missing_rate=report.missing_rate,
        anomaly_rate=report.anomaly_rate,
        sequence_gaps=report.sequence_gaps,
        desynchronization_events=report.desynchronization_events,
        anomaly_details={
            **report.anomaly_details,
            "completeness": report.completeness,
            "messages": report.messages,
            "timestamps": report.timestamp_details,
            "desync": report.desync_details,
            "incidents": len(report.incidents),
        },
        sequence_gap_details=report.sequence_gap_details,
        recommendations=report.recommendations,
    )


def report_body(
    report: QualityReport, record: DataQualityReportRecord | None, source: str
) -> dict[str, Any]:
    """The API / CLI JSON: the contract's DataQualityReport plus the details and incidents."""
    rec = record or to_record(report)
    return {
        "id": str(rec.id),
        "symbol": report.symbol,
        "period_start": _iso(report.period_start_us),
        "period_end": _iso(report.period_end_us),
        "missing_rate": report.missing_rate,
        "anomaly_rate": report.anomaly_rate,
        "sequence_gaps": report.sequence_gaps,
        "desynchronization_events": report.desynchronization_events,
        "anomaly_details": {k: v for k, v in report.anomaly_details.items()},
        "sequence_gap_details": report.sequence_gap_details,
        "recommendations": report.recommendations,
        "created_at": rec.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "completeness": report.completeness,
        "messages": report.messages,
        "timestamp_details": report.timestamp_details,
        "desync_details": report.desync_details,
        "source": source,
        "incidents": [_incident_out(i) for i in report.incidents],
    }


def _iso(us: int) -> str:
    return _dt(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _incident_out(inc: Incident) -> dict[str, Any]:
    return {
        "kind": inc.kind.value,
        "category": inc.kind.category.value,
        "symbol": inc.symbol,
        "stream": inc.stream,
        "start": _iso(inc.start_us),
        "end": None if inc.end_us is None else _iso(inc.end_us),
        "magnitude": inc.magnitude,
        "detail": inc.detail,
    }
