"""Round trip: messages in -> raw Parquet -> export -> `compute` gives exactly the features
computed from the original messages."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
from typer.testing import CliRunner

from feature_service.adapters.rawstore.export import export_recording
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.cli import app
from feature_service.market.events import MarketEvent
from feature_service.market.recording import event_to_envelope, write_recording


def test_store_export_compute_equals_compute_on_the_original(
    tmp_path: Path, sample_events: list[MarketEvent]
) -> None:
    events = sample_events
    original = tmp_path / "original.jsonl.gz"
    write_recording(original, events)

    # What the live consumer does: store each message as received, stamped with receive_ts.
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(tmp_path / "raw").write_events(events, bodies)
    exported = tmp_path / "exported.jsonl.gz"
    summary = export_recording(tmp_path / "raw", None, "BTCUSDT", None, None, exported)
    assert summary.lines == len(events)
    assert summary.duplicates == 0

    runner = CliRunner()
    for name in ("original", "exported"):
        result = runner.invoke(
            app,
            [
                "compute",
                "--input",
                str(tmp_path / f"{name}.jsonl.gz"),
                "--output",
                str(tmp_path / f"{name}.parquet"),
                "--interval",
                "1s",
            ],
        )
        assert result.exit_code == 0, result.output

    a = pd.read_parquet(tmp_path / "original.parquet")
    b = pd.read_parquet(tmp_path / "exported.parquet")
    assert len(a) > 200
    assert a["mid_price"].notna().sum() > 200
    pd.testing.assert_frame_equal(a, b, check_exact=True)
