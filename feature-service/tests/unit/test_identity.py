"""validate-identity: identical archives pass; a single changed value is reported by feature."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.adapters.vectorstore import VectorArchive
from feature_service.engine.core import FeatureEngine
from feature_service.market.events import MarketEvent
from feature_service.market.recording import event_to_envelope
from feature_service.services.identity import validate_identity


def _store(tmp_path: Path, events: list[MarketEvent]) -> int:
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(tmp_path / "raw").write_events(events, bodies)
    engine = FeatureEngine(intervals_s=[1, 60])
    vectors = [v for e in events for v in engine.process(e)]
    archive = VectorArchive(tmp_path / "features", session_start_us=events[0].receive_ts)
    archive._write(vectors)
    return sum(1 for v in vectors if v.interval_s == 1)


def _check(tmp_path: Path) -> dict:
    return validate_identity(
        tmp_path / "raw",
        tmp_path / "features",
        symbol="BTCUSDT",
        interval_s=1,
        start_us=0,
        end_us=2**62,
        intervals_s=[1, 60],
    ).as_dict()


def test_identical_archive_passes(tmp_path: Path, sample_events: list[MarketEvent]) -> None:
    n = _store(tmp_path, sample_events)
    report = _check(tmp_path)
    assert report["ok"], report
    assert report["compared"] == report["identical_rows"] == n > 100
    assert report["sessions"] == 1
    # A period selects only its own vectors (here the last minute of the sample slice).
    last = max(e.receive_ts for e in sample_events)
    end = last - last % 1_000_000
    partial = validate_identity(
        tmp_path / "raw",
        tmp_path / "features",
        symbol="BTCUSDT",
        interval_s=1,
        start_us=end - 60_000_000,
        end_us=end,
        intervals_s=[1, 60],
    )
    assert partial.ok and partial.compared == 60


def test_a_changed_value_is_reported_per_feature(
    tmp_path: Path, sample_events: list[MarketEvent]
) -> None:
    _store(tmp_path, sample_events)
    part = sorted((tmp_path / "features" / "1s").rglob("*.parquet"))[-1]
    table = pq.read_table(part)
    vwap = table.column("vwap_3s").to_pylist()
    row = next(i for i, v in enumerate(vwap) if v is not None)
    vwap[row] = vwap[row] + 1e-9
    index = table.schema.get_field_index("vwap_3s")
    pq.write_table(table.set_column(index, "vwap_3s", pa.array(vwap, pa.float64())), part)
    report = _check(tmp_path)
    assert not report["ok"]
    assert report["mismatches_per_feature"] == {"vwap_3s": 1}
    assert report["examples"][0]["feature"] == "vwap_3s"
