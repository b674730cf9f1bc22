"""Offline engine: replay stored events through the same FeatureEngine and write rows to Parquet.

Replays advance state in receive-time order and close intervals on receive time exactly as the
live engine does; there is no other code path for offline features.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.market.events import MarketEvent
from feature_service.quality.monitor import STREAMS

# The quality mask as columns (after the features; never part of them).
QUALITY_COLUMNS = (
    "quality_ok",
    "quality_reasons",
    "book_in_sync",
    *(f"age_ms_{stream}" for stream in STREAMS),
)


def vector_schema(plan: FeaturePlan = BUNDLED_PLAN) -> pa.Schema:
    """One column per feature of ``plan``, in vector order, between the keys and the metadata."""
    fields = [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("interval_s", pa.int32(), nullable=False),
    ]
    for spec in plan.defs:
        fields.append(pa.field(spec.name, pa.int64() if spec.dtype == "int" else pa.float64()))
    fields += [
        pa.field("feature_registry_version", pa.string()),
        pa.field("data_age_ms", pa.float64()),
        pa.field("stale", pa.bool_()),
        pa.field("depth_age_ms", pa.float64()),
        pa.field("quality_ok", pa.bool_()),
        pa.field("quality_reasons", pa.string()),
        pa.field("book_in_sync", pa.bool_()),
    ]
    fields += [pa.field(f"age_ms_{stream}", pa.float64()) for stream in STREAMS]
    return pa.schema(fields)


def vectors_to_table(
    rows: list[FeatureVector], schema: pa.Schema | None = None, plan: FeaturePlan = BUNDLED_PLAN
) -> pa.Table:
    """Vectors as an Arrow table in the dataset column layout (one column per feature of
    ``plan``; a vector of another version lacks some: those cells are null)."""
    columns: dict[str, list[object]] = {
        "timestamp": [v.timestamp for v in rows],
        "symbol": [v.symbol for v in rows],
        "interval_s": [v.interval_s for v in rows],
    }
    for name in plan.names:
        columns[name] = [v.features.get(name) for v in rows]
    columns["feature_registry_version"] = [v.registry_version for v in rows]
    columns["data_age_ms"] = [v.data_age_ms for v in rows]
    columns["stale"] = [v.stale for v in rows]
    columns["depth_age_ms"] = [v.depth_age_ms for v in rows]
    masks = [v.quality for v in rows]
    columns["quality_ok"] = [None if m is None else m.ok for m in masks]
    columns["quality_reasons"] = [None if m is None else ",".join(m.reasons) for m in masks]
    columns["book_in_sync"] = [None if m is None else m.book_in_sync for m in masks]
    for stream in STREAMS:
        columns[f"age_ms_{stream}"] = [None if m is None else m.age_ms.get(stream) for m in masks]
    return pa.Table.from_pydict(columns, schema=schema or vector_schema(plan))


class VectorParquetWriter:
    """Streams vectors into one Parquet file in row groups, so memory stays bounded."""

    def __init__(
        self, path: Path, *, batch_rows: int = 50_000, plan: FeaturePlan = BUNDLED_PLAN
    ) -> None:
        self.path = path
        self.plan = plan
        self.schema = vector_schema(plan)
        self._batch_rows = batch_rows
        self._rows: list[FeatureVector] = []
        self._writer: pq.ParquetWriter | None = None
        self.rows_written = 0

    def write(self, vector: FeatureVector) -> None:
        self._rows.append(vector)
        if len(self._rows) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._rows and self._writer is not None:
            return
        table = vectors_to_table(self._rows, self.schema, self.plan)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows_written += len(self._rows)
        self._rows = []

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> VectorParquetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class ComputeSummary:
    events: int = 0
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    null_counts: dict[str, int] = field(default_factory=dict)


def compute_to_parquet(
    events: Iterable[MarketEvent],
    output: Path,
    engine: FeatureEngine,
    *,
    intervals_s: Iterable[int],
) -> ComputeSummary:
    summary = ComputeSummary()
    with VectorParquetWriter(output, plan=engine.plan) as writer:
        wanted = frozenset(intervals_s)
        for event in events:
            summary.events += 1
            for vector in engine.process(event):
                if vector.interval_s in wanted:
                    writer.write(vector)
                    if summary.first_ts is None:
                        summary.first_ts = vector.timestamp
                    summary.last_ts = vector.timestamp
    summary.rows = writer.rows_written
    counts: dict[str, int] = {}
    for (name, _reason), n in engine.null_counts.items():
        counts[name] = counts.get(name, 0) + n
    summary.null_counts = counts
    return summary
