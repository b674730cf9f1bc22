"""`compute` on a recording with bad lines (issue 9): they are skipped and counted by reason,
as the live path dead-letters them; `--strict` stops at the first with its line number."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from feature_service.cli import app


def _recording(tmp_path: Path, sample_path: Path) -> tuple[Path, int]:
    with gzip.open(sample_path, "rt") as fh:
        good = list(itertools.islice(fh, 600))
    lines = good[:300]
    lines.append('{"event_type": "trade", "topic": "publicTrade.BTCUSDT", "payl\n')  # garbled
    bad_line = len(lines)
    lines.append('{"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1737936060015}\n')
    lines += good[300:]
    lines.append(good[-1][: len(good[-1]) // 2])  # truncated last line (no newline)
    path = tmp_path / "bad-lines.jsonl"
    path.write_text("".join(lines))
    return path, bad_line


def test_compute_skips_bad_lines_and_counts_them_by_reason(
    tmp_path: Path, sample_path: Path
) -> None:
    recording, _ = _recording(tmp_path, sample_path)
    out = tmp_path / "f.parquet"
    result = CliRunner().invoke(
        app, ["compute", "--input", str(recording), "--output", str(out), "--interval", "1s"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 3 bad lines: bad_json 2, missing_field 1" in result.output
    assert pq.read_metadata(out).num_rows > 0


def test_compute_strict_stops_at_the_first_bad_line_with_its_number(
    tmp_path: Path, sample_path: Path
) -> None:
    recording, bad_line = _recording(tmp_path, sample_path)
    result = CliRunner().invoke(
        app,
        ["compute", "--input", str(recording), "--output", str(tmp_path / "f.parquet"),
         "--strict"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"line {bad_line}: bad_json" in result.output
