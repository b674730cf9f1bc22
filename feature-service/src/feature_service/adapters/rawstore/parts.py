"""What both raw writers share: one immutable part file per batch, and the writer counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feature_service.adapters.rawstore.layout import Kind, part_path, write_table_atomic
from feature_service.adapters.rawstore.schema import PendingRow, build_table, sort_rows


@dataclass(frozen=True, slots=True)
class WrittenPart:
    path: Path
    kind: Kind
    day: str
    symbol: str
    rows: int
    bytes: int
    first_ts: int
    last_ts: int


def write_part(
    root: Path,
    kind: Kind,
    day: str,
    symbol: str,
    rows: Sequence[PendingRow],
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    source: str = "live",
) -> WrittenPart:
    """Write one immutable part file (blocking; the async writer calls it in a thread)."""
    ordered = sort_rows(rows)
    table = build_table(kind, ordered, source)
    first, last = ordered[0][0].receive_ts, ordered[-1][0].receive_ts
    path = part_path(root, kind, day, symbol, first)
    size = write_table_atomic(
        table, path, compression=compression, compression_level=compression_level
    )
    return WrittenPart(path, kind, day, symbol, len(ordered), size, first, last)


class _PartCounter:
    """Index of an event within its message: the live consumer submits every event of one body
    in a row with the same body object, so identity of the body tells parts apart cheaply."""

    __slots__ = ("_last_part", "_last_raw", "_last_ts")

    def __init__(self) -> None:
        self._last_raw: object = None
        self._last_ts = -1
        self._last_part = 0

    def next(self, raw: object, receive_ts: int) -> int:
        part = self._last_part + 1 if raw is self._last_raw and receive_ts == self._last_ts else 0
        self._last_raw, self._last_ts, self._last_part = raw, receive_ts, part
        return part


@dataclass(slots=True)
class WriterStats:
    rows_written: dict[str, int] = field(default_factory=dict)  # per kind
    files_written: int = 0
    bytes_written: int = 0
    pending_rows: int = 0  # submitted, not yet durable
    batches_failed: int = 0  # first attempts that failed (each is retried until written)
    rows_failed: int = 0
    batches_retried: int = 0  # failed batches written by a retry
    retries_failed: int = 0
    last_write_s: float | None = None  # duration of the last Parquet write
    max_write_s: float = 0.0
    last_flush_latency_s: float | None = None  # oldest row of the last batch: submit -> durable
    max_flush_latency_s: float = 0.0
    stale_tmp_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_written": dict(self.rows_written),
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "pending_rows": self.pending_rows,
            "batches_failed": self.batches_failed,
            "rows_failed": self.rows_failed,
            "batches_retried": self.batches_retried,
            "retries_failed": self.retries_failed,
            "last_write_s": self.last_write_s,
            "max_write_s": self.max_write_s,
            "last_flush_latency_s": self.last_flush_latency_s,
            "max_flush_latency_s": self.max_flush_latency_s,
            "stale_tmp_removed": self.stale_tmp_removed,
        }
