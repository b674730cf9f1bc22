"""Reports: what the live monitor precomputed equals a replay of the stored raw data for the
same period; the metrics writer survives a database outage; the numbers follow the incidents."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from feature_service.adapters.qualitystore import QualityStore
from feature_service.adapters.rawstore.writer import RawWriter
from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine
from feature_service.market.events import BookDelta, Ticker, Trade
from feature_service.market.recording import event_to_envelope
from feature_service.quality.incidents import IncidentKind
from feature_service.quality.report import build_report, snap_period
from feature_service.services.quality_live import QualityRecorder
from feature_service.services.quality_report import QualityReports, scan_raw
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 0.0


class Delivery:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.queue = "ws-gateway.orderbook"

    async def ack(self) -> None:
        return None


def troubled_stream() -> list:
    """The clean stream with a silence, a u gap (desync), a bad trade and a duplicate."""
    clean = dq.clean_stream(minutes=8)
    events = dq.drop(clean, Ticker, T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    i = dq.first(events, BookDelta, T0 + 4 * MINUTE + 200_000)
    events = events[:i] + events[i + 1 :]
    j = dq.first(events, Trade, T0 + 5 * MINUTE + 10 * S)
    events = dq.with_event(events, j, replace(events[j], price=events[j].price * 1.05))
    t = events[dq.first(events, Trade, T0 + 6 * MINUTE)]
    return dq.insert(events, replace(t, receive_ts=t.receive_ts + 10, event_id="dup"))


class MemoryStore:
    """The metrics part of the metadata store, with a switchable outage."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.down = False

    async def insert_quality_metrics(self, rows: list[Any]) -> int:
        if self.down:
            raise ConnectionRefusedError("database down")
        self.rows.extend(rows)
        return len(rows)


async def _run_live(events: list, tmp_path: Path, store: MemoryStore) -> QualityRecorder:
    clock = Clock()
    engine = FeatureEngine(intervals_s=[1])
    writer = RawWriter(tmp_path / "raw", flush_rows=100_000, flush_age_s=60.0)
    await writer.start()
    live = LiveEngine(engine, clock, raw_sink=writer)
    recorder = QualityRecorder(
        engine.quality, QualityStore(tmp_path / "quality"), clock.now_us, store=store,
        symbols=[dq.SYMBOL],
    )  # fmt: skip
    store.down = True  # an outage in the middle of the run
    for n, event in enumerate(events):
        clock.now = event.receive_ts
        await live.on_delivery(Delivery(orjson.dumps(event_to_envelope(event))))
        if n % 2000 == 0:
            await recorder.cycle()
            if n > len(events) // 2:
                store.down = False
    clock.now = events[-1].receive_ts + 2 * MINUTE
    await recorder.cycle()
    await live.stop()
    await writer.close()
    return recorder


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, MemoryStore]:
    tmp = tmp_path_factory.mktemp("quality")
    events = troubled_stream()
    store = MemoryStore()
    asyncio.run(_run_live(events, tmp, store))
    return tmp, events, store


def test_report_from_live_summaries_equals_replay_of_raw_store(live_run: tuple) -> None:
    tmp, events, _ = live_run
    start, end = snap_period(events[0].receive_ts, events[-1].receive_ts + 1)
    reports = QualityReports(tmp / "raw", QualityStore(tmp / "quality"))
    live, source = reports.compute(dq.SYMBOL, start, end)
    assert source == "live_summaries"
    minutes, incidents = scan_raw(tmp / "raw", dq.SYMBOL, start, end)
    replayed = build_report(dq.SYMBOL, start, end, minutes, incidents)
    assert live.comparable() == replayed.comparable()
    kinds = [i.kind for i in live.incidents]
    assert kinds == [
        IncidentKind.STREAM_SILENT,
        IncidentKind.U_GAP,
        IncidentKind.BOOK_DESYNC,
        IncidentKind.TRADE_OUTSIDE_BOOK,
        IncidentKind.DUPLICATE,
    ]


def test_report_numbers_follow_the_incidents(live_run: tuple) -> None:
    tmp, events, _ = live_run
    start, end = snap_period(events[0].receive_ts, events[-1].receive_ts + 1)
    report, _ = QualityReports(tmp / "raw", QualityStore(tmp / "quality")).compute(
        dq.SYMBOL, start, end
    )
    silence = report.incidents[0]
    silent_s = (silence.end_us - silence.start_us) / S
    duration_s = (end - start) / S
    assert report.completeness["ticker"] == pytest.approx(1 - silent_s / duration_s, abs=1e-6)
    assert report.completeness["orderbook"] == 1.0
    assert report.missing_rate == pytest.approx(
        1 - sum(report.completeness.values()) / len(report.completeness), abs=1e-6
    )
    total = sum(report.messages.values())
    assert report.messages["orderbook"] == sum(1 for e in events if e.topic.startswith("orderbook"))
    assert report.anomaly_rate == pytest.approx(1 / total, abs=1e-6)
    assert (report.sequence_gaps, report.desynchronization_events) == (1, 1)
    assert report.sequence_gap_details["missing_updates"] == 1
    assert report.desync_details["count"] == 1 and report.desync_details["max_seconds"] > 0
    assert any("sequence gap" in r for r in report.recommendations)


def test_period_outside_the_live_session_is_replayed_from_raw(live_run: tuple) -> None:
    tmp, _, _ = live_run
    reports = QualityReports(tmp / "raw", QualityStore(tmp / "quality"))
    report, source = reports.compute(dq.SYMBOL, T0 - 10 * MINUTE, T0 + 4 * MINUTE)
    assert source == "raw_replay"  # starts before the session did
    assert [i.kind for i in report.incidents] == [IncidentKind.STREAM_SILENT]


def test_metric_rows_survive_a_database_outage(live_run: tuple) -> None:
    _, events, store = live_run
    minutes = sorted({r.metric_timestamp for r in store.rows})
    # One row per minute the service ran (the outage delayed them, none lost, none twice).
    first = events[0].receive_ts // MINUTE * MINUTE
    expected = (events[-1].receive_ts // MINUTE * MINUTE - first) // MINUTE + 1
    assert len(store.rows) == len(minutes) >= expected
    gaps = [r for r in store.rows if r.sequence_gaps_count]
    assert len(gaps) == 1 and gaps[0].desynchronization_events_count == 1
    assert all(0 <= r.missing_rate <= 1 and 0 <= r.anomaly_rate <= 1 for r in store.rows)
