"""Raw data that did not arrive live (an import) gets its quality summaries when it is stored:
a report over it then reads them, with the numbers and incidents the replay of the raw store
gives; a later change to those raw files makes the report replay again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from feature_service.adapters.qualitystore import QualityStore
from feature_service.adapters.rawstore.layout import US_PER_DAY
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.market.events import BookDelta, Kline, MarketEvent, Ticker, Trade
from feature_service.market.recording import event_to_envelope
from feature_service.quality.incidents import IncidentKind
from feature_service.quality.report import build_report
from feature_service.services.quality_precompute import summaries_after_write
from feature_service.services.quality_report import QualityReports, scan_raw
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S

DAY = T0 - T0 % US_PER_DAY


def troubled() -> list[MarketEvent]:
    """The clean stream with a silence, two u gaps (desyncs until the next snapshot), a trade
    outside the book, a duplicate, clock skew and a missing candle."""
    events = dq.clean_stream(minutes=14)
    events = dq.drop(events, Ticker, T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    for at in (T0 + 4 * MINUTE + 200_000, T0 + 9 * MINUTE + 300_000):
        i = dq.first(events, BookDelta, at)
        events = events[:i] + events[i + 1 :]
    j = dq.first(events, Trade, T0 + 5 * MINUTE + 10 * S)
    events = dq.with_event(events, j, replace(events[j], price=events[j].price * 1.05))
    t = events[dq.first(events, Trade, T0 + 6 * MINUTE)]
    events = dq.insert(events, replace(t, receive_ts=t.receive_ts + 10, event_id="dup"))
    for k in range(dq.first(events, Ticker, T0 + 7 * MINUTE), len(events)):
        e = events[k]
        if isinstance(e, Ticker) and e.receive_ts < T0 + 7 * MINUTE + 5 * S:
            events[k] = replace(e, exchange_ts=e.receive_ts - 3 * S)
    return dq.drop(events, Kline, T0 + 11 * MINUTE, T0 + 12 * MINUTE)


def store(raw: Path, events: list[MarketEvent]) -> None:
    bodies = [orjson.dumps(event_to_envelope(e)) for e in events]
    RawWriterSync(raw, source="import").write_events(events, bodies)


@pytest.fixture()
def imported(tmp_path: Path) -> tuple[Path, list[MarketEvent]]:
    events = troubled()
    with summaries_after_write(tmp_path / "raw", tmp_path / "quality") as sessions:
        store(tmp_path / "raw", events)
    assert [(s.symbol, s.start_us, s.until_us) for s in sessions] == [
        (dq.SYMBOL, DAY, DAY + US_PER_DAY)
    ]
    return tmp_path, events


def replayed(raw: Path, start: int, end: int):  # the replay path, computed directly
    minutes, incidents = scan_raw(raw, dq.SYMBOL, start, end)
    return build_report(dq.SYMBOL, start, end, minutes, incidents)


@pytest.mark.parametrize(
    "period",
    [(DAY, DAY + US_PER_DAY), (T0 - 5 * MINUTE, T0 + 20 * MINUTE), (T0, T0 + 13 * MINUTE)],
    ids=["whole day", "around the data", "the data's minutes"],
)
def test_report_from_import_summaries_equals_the_replay(imported: tuple, period: tuple) -> None:
    tmp, _ = imported
    reports = QualityReports(tmp / "raw", QualityStore(tmp / "quality"))
    report, source = reports.compute(dq.SYMBOL, *period)
    assert source == "raw_summaries"
    assert report.comparable() == replayed(tmp / "raw", *period).comparable()
    kinds = {i.kind for i in report.incidents}
    assert kinds >= {
        IncidentKind.STREAM_SILENT,
        IncidentKind.U_GAP,
        IncidentKind.BOOK_DESYNC,
        IncidentKind.TRADE_OUTSIDE_BOOK,
        IncidentKind.DUPLICATE,
        IncidentKind.CLOCK_SKEW,
        IncidentKind.KLINE_MISSING,
    }
    assert (report.sequence_gaps, report.desynchronization_events) == (2, 2)
    assert report.messages["orderbook"] > 0 and 0 < report.missing_rate < 1


def test_a_later_write_into_those_days_makes_the_report_replay(imported: tuple) -> None:
    tmp, events = imported
    late = replace(events[-1], receive_ts=events[-1].receive_ts + MINUTE, event_id="late")
    store(tmp / "raw", [late])  # not through summaries_after_write: the summary is stale now
    reports = QualityReports(tmp / "raw", QualityStore(tmp / "quality"))
    report, source = reports.compute(dq.SYMBOL, DAY, DAY + US_PER_DAY)
    assert source == "raw_replay"
    assert report.comparable() == replayed(tmp / "raw", DAY, DAY + US_PER_DAY).comparable()


def test_a_second_import_into_the_same_day_is_summarised_with_the_first(imported: tuple) -> None:
    tmp, events = imported
    late = replace(events[-1], receive_ts=events[-1].receive_ts + MINUTE, event_id="late")
    with summaries_after_write(tmp / "raw", tmp / "quality"):
        store(tmp / "raw", [late])
    quality = QualityStore(tmp / "quality")
    assert len(quality.raw_sessions(dq.SYMBOL)) == 1  # the first day's summary was replaced
    report, source = QualityReports(tmp / "raw", quality).compute(dq.SYMBOL, DAY, DAY + US_PER_DAY)
    assert source == "raw_summaries"
    assert report.comparable() == replayed(tmp / "raw", DAY, DAY + US_PER_DAY).comparable()
    assert report.messages["orderbook"] == sum(
        1 for e in [*events, late] if e.topic[:9] == "orderbook"
    )


def test_storage_import_then_the_cli_report_reads_the_summaries(
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import gzip

    from typer.testing import CliRunner

    from feature_service.cli import app

    rec = tmp_path / "rec.jsonl.gz"
    with gzip.open(rec, "wb") as fh:
        for e in troubled():
            fh.write(orjson.dumps(event_to_envelope(e)) + b"\n")
    monkeypatch.setenv("FEATURE_SERVICE_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    imported = runner.invoke(
        app, ["storage", "import", "--input", str(rec), "--raw-dir", str(tmp_path / "raw")]
    )
    assert imported.exit_code == 0, imported.output
    assert "quality summaries: 1 day(s) of BTCUSDT" in imported.output
    out = tmp_path / "report.json"
    args = ["quality", "report", "--symbol", "BTCUSDT", "--json", str(out)]
    args += ["--from", "2025-11-24T00:00:00Z", "--to", "2025-11-25T00:00:00Z"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = orjson.loads(out.read_bytes())
    assert body["source"] == "raw_summaries"
    expected = replayed(tmp_path / "raw", DAY, DAY + US_PER_DAY)
    assert (body["sequence_gaps"], body["desynchronization_events"]) == (2, 2)
    assert body["missing_rate"] == expected.missing_rate
    assert body["anomaly_rate"] == expected.anomaly_rate
    assert body["completeness"] == expected.completeness
    assert len(body["incidents"]) == len(expected.incidents)
