"""`feature-service quality report`: a recording (--input) and the raw store, table and JSON."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from typer.testing import CliRunner

from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.cli import app
from feature_service.market.events import BookDelta
from feature_service.market.recording import event_to_envelope
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0


def _events() -> list:
    clean = dq.clean_stream(minutes=4)
    i = dq.first(clean, BookDelta, T0 + 2 * MINUTE + 200_000)
    return clean[:i] + clean[i + 1 :]


def test_report_of_a_recording_as_table_and_json(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl.gz"
    with gzip.open(rec, "wb") as fh:
        for e in _events():
            fh.write(orjson.dumps(event_to_envelope(e)) + b"\n")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["quality", "report", "--input", str(rec), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "sequence gaps       1" in result.output
    assert "u_gap" in result.output and "book_desync" in result.output
    body = orjson.loads(out.read_bytes())
    assert (body["sequence_gaps"], body["desynchronization_events"]) == (1, 1)
    assert body["source"] == "recording"
    assert body["period_start"] == "2025-11-24T16:00:00.000000Z"


def test_report_from_the_raw_store(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    events = _events()
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(tmp_path / "raw").write_events(events, bodies)
    monkeypatch.setenv("FEATURE_SERVICE_DATA_DIR", str(tmp_path))
    args = ["quality", "report", "--symbol", "BTCUSDT"]
    args += ["--from", "2025-11-24T16:00:00Z", "--to", "2025-11-24T16:04:00Z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "raw_replay" in result.output and "desync events       1" in result.output


def test_invalid_period_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FEATURE_SERVICE_DATA_DIR", str(tmp_path))
    args = ["quality", "report", "--symbol", "BTCUSDT"]
    args += ["--from", "2025-11-24T17:00:00Z", "--to", "2025-11-24T16:00:00Z"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
