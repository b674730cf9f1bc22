"""The last stored row before a moment, read the cheap way: for seeding state as of T.

A day of tickers is ~860k rows at 10 Hz; reading its ``raw`` column to find one row cost more
than the rest of a warm start. So: files newest first, skipped by their footer's max receive time
once a later row is known; only the ordering columns (and the one that must be set) are read;
``raw`` is read for the winning row's row group alone.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.layout import US_PER_DAY, Kind, day_name, list_parts
from feature_service.adapters.rawstore.reader import receive_ts_bounds

Found = tuple[int, str, int]
"""``(receive_ts, raw, part)`` of a stored row."""
RawFilter = tuple[str, bool]
"""``(regex, wanted)``: only rows whose ``raw`` matches (``wanted``) or does not match it."""


def _best_in_file(
    path: object, before_us: int, not_null: str | None, raw: RawFilter | None
) -> tuple[int, int, int, int] | None:
    """``(receive_ts, arrival_seq, part, row)`` of the file's last row before ``before_us``."""
    columns = ["receive_ts", "arrival_seq", "part"]
    if not_null:
        columns.append(not_null)
    if raw is not None:
        columns.append("raw")
    table = pq.read_table(path, columns=columns)
    ts = table.column("receive_ts").cast(pa.int64())
    mask = pc.less(ts, before_us)
    if not_null:
        mask = pc.and_(mask, pc.is_valid(table.column(not_null)))
    if raw is not None:
        pattern, wanted = raw
        matches = pc.match_substring_regex(table.column("raw"), pattern)
        mask = pc.and_(mask, matches if wanted else pc.invert(matches))
    rows = pc.indices_nonzero(mask).to_pylist()
    if not rows:
        return None
    ts_l = ts.to_pylist()
    seq = table.column("arrival_seq").to_pylist()
    part = table.column("part").to_pylist()
    # Rows of one message share their receive time and differ in arrival_seq; the last applied
    # is the largest (receive_ts, arrival_seq).
    i = max(rows, key=lambda k: (ts_l[k], seq[k]))
    return ts_l[i], seq[i], part[i], i


def _raw_at(path: object, row: int) -> str:
    pf = pq.ParquetFile(path)
    md = pf.metadata
    start = 0
    for g in range(md.num_row_groups):
        n = md.row_group(g).num_rows
        if row < start + n:
            return pf.read_row_group(g, columns=["raw"]).column("raw")[row - start].as_py()
        start += n
    raise IndexError(f"row {row} is not in {path}")


def last_row_before(
    root: object,
    kind: Kind,
    symbol: str,
    before_us: int,
    *,
    not_null: str | None = None,
    raw: RawFilter | None = None,
    max_days_back: int = 3,
) -> Found | None:
    """``(receive_ts, raw, part)`` of the last stored row of ``kind`` with receive time
    < ``before_us`` (and ``not_null`` set, and ``raw`` passing the filter), looking back at
    most ``max_days_back`` days. The filter reads ``raw``: for kinds of small files only."""
    day = (before_us - 1) // US_PER_DAY
    for n in range(day, day - max_days_back - 1, -1):
        best: tuple[int, int, int, int] | None = None
        best_path: object = None
        parts = list_parts(root, kind, day_name(n), symbol)  # type: ignore[arg-type]
        # Newest first: with files that do not overlap, the first hit decides.
        for p in sorted(parts, key=lambda q: -(q.first_ts or 0)):
            if p.first_ts is not None and p.first_ts >= before_us:
                continue
            if best is not None:
                bounds = receive_ts_bounds(p.path)
                if bounds is None or bounds[1] < best[0]:
                    continue
            found = _best_in_file(p.path, before_us, not_null, raw)
            if found is not None and (best is None or found[:2] > best[:2]):
                best, best_path = found, p.path
        if best is not None:
            return best[0], _raw_at(best_path, best[3]), best[2]
    return None
