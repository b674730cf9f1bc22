"""``storage import`` on a recording with bad lines (issue 9): every bad line is skipped and
counted by its reason, every good one stored, nothing crashes; ``--strict`` stops at the first
bad line with its line number, the lines before it stored."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feature_service.cli import app
from feature_service.market.recording import RecordingError, event_to_envelope
from feature_service.services.importer import import_recording
from tests.fixtures import data_quality as dq

GOOD = 50
FIRST_BAD = 11  # line numbers are 1-based: ten good lines come first


def _good_lines() -> list[bytes]:
    return [orjson.dumps(event_to_envelope(e)) for e in dq.clean_stream(minutes=1)[:GOOD]]


def _bad_lines(good: list[bytes]) -> dict[str, bytes]:
    trade = next(orjson.loads(line) for line in good if b'"trade"' in line)
    no_payload = {k: v for k, v in trade.items() if k != "payload"}
    full_width = copy.deepcopy(trade)
    full_width["payload"]["p"] = "５００００.０"  # full-width digits are not a number
    full_width["event_id"] = "full-width"
    slash = copy.deepcopy(trade)
    slash["payload"]["s"] = "BTC/USDT"
    slash["topic"] = "publicTrade.BTC/USDT"
    slash["event_id"] = "slash"
    return {
        "bad_json": b'{"event_id": "garbled", "topic": "publicTrade.BTC',
        "missing_field": orjson.dumps(no_payload),
        "bad_number": orjson.dumps(full_width),
        "bad_symbol": orjson.dumps(slash),
        "not_an_object": b"[1, 2]",
    }


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    good = _good_lines()
    bad = list(_bad_lines(good).values())
    lines = good[:10] + bad + good[10:]
    path = tmp_path / "rec.jsonl"
    # ... and a truncated last line, as a recorder killed mid-write leaves it
    path.write_bytes(b"\n".join(lines) + b"\n" + good[0][:40])
    return path


def _stored_rows(root: Path) -> int:
    return sum(
        pq.read_metadata(part).num_rows
        for part in root.rglob("part-*.parquet")
        if "checkpoints" not in part.parts
    )


def test_bad_lines_are_skipped_and_counted_by_reason(recording: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    summary = import_recording(recording, root)
    assert dict(summary.rejected) == {
        "bad_json": 2,  # the garbled line and the truncated last one
        "missing_field": 1,
        "bad_number": 1,
        "bad_symbol": 1,
        "not_an_object": 1,
    }
    assert summary.rejected_lines == 6
    assert summary.lines == GOOD + 6
    assert summary.stored == GOOD and _stored_rows(root) == GOOD
    where = [int(e.split(":")[2]) for e in summary.errors]
    assert where == [11, 12, 13, 14, 15, GOOD + 6]
    assert "５００００.０" in summary.errors[2]


def test_the_cli_reports_the_rejected_lines_and_succeeds(recording: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["storage", "import", "--input", str(recording), "--raw-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert f"{GOOD} stored" in result.stdout
    assert (
        "skipped 6 bad line(s): bad_json 2, missing_field 1, bad_number 1, bad_symbol 1, "
        "not_an_object 1" in result.stdout
    )
    assert f"rec.jsonl:{FIRST_BAD}:" in result.stderr


def test_strict_stops_at_the_first_bad_line_with_the_lines_before_it_stored(
    recording: Path, tmp_path: Path
) -> None:
    root = tmp_path / "raw"
    with pytest.raises(RecordingError) as caught:
        import_recording(recording, root, strict=True)
    assert caught.value.line_no == FIRST_BAD
    assert caught.value.reason.value == "bad_json"
    assert _stored_rows(root) == FIRST_BAD - 1

    result = CliRunner().invoke(
        app,
        ["storage", "import", "--input", str(recording), "--raw-dir", str(tmp_path / "cli"),
         "--strict"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"import stopped at line {FIRST_BAD}: bad_json" in result.stderr


def test_a_truncated_gzip_stream_stores_what_precedes_it(tmp_path: Path) -> None:
    good = _good_lines()
    whole = gzip.compress(b"\n".join(good) + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])  # the recorder died mid-write
    summary = import_recording(path, tmp_path / "raw")
    assert dict(summary.rejected) == {"bad_json": 1}
    assert "unreadable gzip stream" in summary.errors[0]
    # Every complete line before the cut is stored (the last one read may be cut short).
    readable = 0
    with gzip.open(path, "rb") as fh:
        try:
            for _ in fh:
                readable += 1
        except EOFError:
            pass
    assert readable - 1 <= summary.stored <= readable
    assert summary.stored == _stored_rows(tmp_path / "raw") > GOOD // 2
    with pytest.raises(RecordingError):
        import_recording(path, tmp_path / "strict", strict=True)
