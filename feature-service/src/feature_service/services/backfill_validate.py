"""Validation of a saved backfill day (T263a): re-read what was written and check it.

A day passes when every file written for it reads back under the current schema with exactly
the rows that were fetched, every row is labelled ``backfill``, times and prices are sane,
``raw`` parses back to the very event that was meant (so a replay sees what was fetched), and
the day as a whole (every source) holds no duplicate candle / funding record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.layout import US_PER_DAY, Kind, day_start_us, list_parts
from feature_service.adapters.rawstore.schema import schema_for
from feature_service.market.errors import MessageRejected
from feature_service.market.events import Funding, Kline, MarketEvent
from feature_service.market.parsing import parse_message


class DayInvalid(Exception):
    """The saved day failed validation; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def day_keys(root: Path, kind: Kind, day: str, symbol: str) -> list[int]:
    """Identity of each stored row of one symbol-day, all sources: a kline's start (confirmed
    1 m-or-other candles alike), a funding record's ``funding_rate_ts``. Duplicates kept."""
    column, where = _key_column(kind)
    keys: list[int] = []
    for part in list_parts(root, kind, day, symbol):
        names = pq.read_schema(part.path).names
        cols = [column] + ([where] if where in names else [])
        table = pq.read_table(part.path, columns=cols)
        if where in names:
            table = table.filter(pc.field(where))
        values = table.column(column).cast(pa.int64()).to_pylist()
        keys.extend(v for v in values if v is not None)
    return keys


def _key_column(kind: Kind) -> tuple[str, str]:
    if kind is Kind.KLINES:
        return "start", "confirmed"
    if kind is Kind.FUNDING:
        return "funding_rate_ts", ""
    raise ValueError(f"no backfill key for {kind.value}")


def validate_saved_day(
    root: Path,
    kind: Kind,
    day: str,
    symbol: str,
    paths: Sequence[Path],
    expected: Sequence[MarketEvent],
) -> None:
    """Raise ``DayInvalid`` unless ``paths`` hold exactly ``expected`` (in order) and the day is
    free of duplicates."""
    problems: list[str] = []
    start, end = day_start_us(day), day_start_us(day) + US_PER_DAY
    tables: list[pa.Table] = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except Exception as exc:  # unreadable, truncated, not Parquet
            problems.append(f"{path.name}: unreadable ({exc!r})")
            continue
        if not table.schema.equals(schema_for(kind), check_metadata=False):
            problems.append(f"{path.name}: schema differs from the {kind.value} schema")
            continue
        tables.append(table)
    if problems:
        raise DayInvalid(problems)
    table = pa.concat_tables(tables) if tables else schema_for(kind).empty_table()
    if table.num_rows != len(expected):
        problems.append(f"{table.num_rows} rows read back, {len(expected)} fetched")
        raise DayInvalid(problems)
    if table.column("source").null_count or set(table.column("source").to_pylist()) != {"backfill"}:
        problems.append("rows not labelled source=backfill")
    ts = table.column("receive_ts").cast(pa.int64()).to_pylist()
    if any(not start <= t < end for t in ts):
        problems.append(f"receive times outside {day}")
    problems += _check_rows(kind, table, ts, expected)
    keys = day_keys(root, kind, day, symbol)
    if len(keys) != len(set(keys)):
        problems.append(f"{len(keys) - len(set(keys))} duplicate record(s) in the day")
    if problems:
        raise DayInvalid(problems)


def _check_rows(
    kind: Kind, table: pa.Table, ts: list[int], expected: Sequence[MarketEvent]
) -> list[str]:
    problems: list[str] = []
    if kind is Kind.KLINES:
        for name in ("open", "high", "low", "close"):
            values = table.column(name)
            if values.null_count or pc.min(values).as_py() <= 0:
                problems.append(f"non-positive {name}")
        if pc.any(pc.less(table.column("high"), table.column("low"))).as_py():
            problems.append("high below low")
    elif kind is Kind.FUNDING and table.column("funding_rate").null_count:
        problems.append("funding rate missing")
    raws = table.column("raw").to_pylist()
    for i, (raw, want) in enumerate(zip(raws, expected, strict=True)):
        try:
            got = parse_message(raw, receive_ts=ts[i])
        except MessageRejected as exc:
            problems.append(f"row {i}: raw does not parse ({exc})")
            break
        if got != [want]:
            problems.append(f"row {i}: stored event differs from the fetched one")
            break
        if isinstance(want, Kline) and ts[i] != want.end + 1000:
            problems.append(f"row {i}: candle stamped before its close")
            break
        if isinstance(want, Funding) and ts[i] != want.funding_rate_ts:
            problems.append(f"row {i}: funding not stamped at its fundingRateTimestamp")
            break
    return problems
