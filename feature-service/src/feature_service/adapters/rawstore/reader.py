"""Streaming reader of the raw store: events in the order the live engine saw them.

Order: ``receive_ts``, then ``arrival_seq``. Each part file is sorted on that key, so the reader
k-way merges files (across days, kinds and symbols) reading each by row batches; it never loads a
whole day. Files join the merge lazily: a file is opened only when the merge reaches its first
receive time (encoded in its name), and a day folder is listed only when the merge reaches that
day, so the number of open files stays about the number of overlapping ones.

Duplicates (same ``message_key``: a message stored, then redelivered because the crash came
before the acknowledgement) are dropped, keeping the first. Memory stays bounded: keys are kept
per (kind, symbol) for one to two windows of ``dedup_window_us`` of *gateway* time
(``market.keys.RecentKeys``, the same memory the live ingest sequencer uses, so live and
offline drop the same copies). A redelivered copy carries its original's gateway time and the
queue is FIFO, so on that axis the copy sits right next to its original even after an outage of
hours, while on the receive-time axis the two may be hours apart.

Replay is exact: ``raw`` is parsed again with ``receive_ts`` = the stored receive time.

A part file that disappears between listing and opening (compaction or archiving running
concurrently) is handled by listing its folder again and resuming after the last row emitted.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.layout import (
    US_PER_DAY,
    Kind,
    PartFile,
    day_start_us,
    list_days,
    list_parts,
    list_parts_in,
    list_symbols,
    resolve_kinds,
)
from feature_service.adapters.rawstore.typed import TYPED_KINDS, batch_events, typed_columns
from feature_service.logging import get_logger
from feature_service.market.errors import MessageRejected
from feature_service.market.events import MarketEvent
from feature_service.market.keys import DEFAULT_DEDUP_WINDOW_US, RecentKeys

log = get_logger(__name__)

_KEY_COLUMNS = ("receive_ts", "arrival_seq", "message_key", "part", "gateway_ts", "exchange_ts")
_NEG_INF = -(1 << 62)


class RawRecord(NamedTuple):
    receive_ts: int
    arrival_seq: int
    kind: Kind
    raw: str


@dataclass(slots=True)
class ReaderStats:
    rows: int = 0  # rows emitted
    duplicates: int = 0
    files_opened: int = 0
    files_vanished: int = 0
    rejected: int = 0


# -- one file -----------------------------------------------------------------------------------
def _receive_ts_column(md: pq.FileMetaData) -> int | None:
    if md.num_row_groups == 0:
        return None
    rg = md.row_group(0)
    for j in range(rg.num_columns):
        if rg.column(j).path_in_schema == "receive_ts":
            return j
    return None


def receive_ts_bounds(path: Path) -> tuple[int, int] | None:
    """Min and max receive time of a file from its footer statistics (None when empty)."""
    md = pq.read_metadata(path)
    col = _receive_ts_column(md)
    if col is None:
        return None
    lo: int | None = None
    hi: int | None = None
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        if rg.num_rows == 0:
            continue
        stats = rg.column(col).statistics
        if stats is None or not stats.has_min_max:
            table = pq.read_table(path, columns=["receive_ts"])
            values = table.column("receive_ts").cast(pa.int64())
            if len(values) == 0:
                return None
            return int(pc.min(values).as_py()), int(pc.max(values).as_py())
        lo = stats.min_raw if lo is None else min(lo, stats.min_raw)
        hi = stats.max_raw if hi is None else max(hi, stats.max_raw)
    return None if lo is None or hi is None else (int(lo), int(hi))


class _Cursor:
    """Position in one part file; exposes the current batch as Python lists."""

    __slots__ = (
        "_after",
        "_batches",
        "_columns",
        "_end",
        "_file",
        "_start",
        "batch",
        "dts",
        "events",
        "file",
        "i",
        "keys",
        "n",
        "parts",
        "raws",
        "seq",
        "stream",
        "ts",
        "typed",
    )

    def __init__(
        self,
        file: PartFile,
        columns: Sequence[str] | None,
        start: int | None,
        end: int | None,
        *,
        after: tuple[int, int] | None = None,
        typed: bool = False,
    ) -> None:
        self.file = file
        # Typed: events come from the typed columns (``typed.py``) where the kind allows it.
        self.typed = typed and file.kind in TYPED_KINDS
        self.stream = (file.kind, file.symbol)
        self._columns = list(columns) if columns is not None else None
        self._start = start
        self._end = end
        self._after = after
        self._file: pq.ParquetFile | None = None
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self.batch: pa.RecordBatch | None = None
        self.ts: list[int] = []
        self.seq: list[int] = []
        self.keys: list[str] = []
        self.parts: list[int] = []
        self.dts: list[int] = []
        self.raws: list[str] = []
        self.events: list[MarketEvent | None] | None = None
        self.i = 0
        self.n = 0

    def open(self, batch_rows: int) -> bool:
        """Open the file; False when it holds no row in range (and it is closed again)."""
        pf = pq.ParquetFile(self.file.path)
        self._file = pf
        if self.typed:
            wanted = typed_columns(self.file.kind)
            if set(wanted) <= set(pf.schema_arrow.names) and self._columns is not None:
                self._columns = [*self._columns, *wanted]
            else:
                self.typed = False  # a file without the typed columns: parse ``raw``
        groups = self._row_groups(pf.metadata)
        if not groups:
            self.close()
            return False
        self._batches = pf.iter_batches(
            batch_size=batch_rows, row_groups=groups, columns=self._columns
        )
        return self._load()

    def _row_groups(self, md: pq.FileMetaData) -> list[int]:
        col = _receive_ts_column(md)
        groups: list[int] = []
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            if rg.num_rows == 0:
                continue
            stats = rg.column(col).statistics if col is not None else None
            if stats is not None and stats.has_min_max:
                if self._start is not None and stats.max_raw < self._start:
                    continue
                if self._end is not None and stats.min_raw >= self._end:
                    continue
            groups.append(g)
        return groups

    def _load(self) -> bool:
        for batch in self._batches:
            ts = batch.column("receive_ts").cast(pa.int64()).to_pylist()
            i = bisect_left(ts, self._start) if self._start is not None else 0
            n = len(ts)
            if i == n:
                continue
            seq = batch.column("arrival_seq").to_pylist()
            if self._after is not None:
                after = self._after
                while i < n and (ts[i], seq[i]) <= after:
                    i += 1
                if i == n:
                    continue
                self._after = None
            if self._end is not None and ts[i] >= self._end:
                break
            self.batch = batch
            self.ts, self.seq, self.i, self.n = ts, seq, i, n
            self.keys = batch.column("message_key").to_pylist()
            self.parts = batch.column("part").to_pylist()
            gateway = batch.column("gateway_ts").cast(pa.int64())
            exchange = batch.column("exchange_ts").cast(pa.int64())
            received = batch.column("receive_ts").cast(pa.int64())
            self.dts = pc.coalesce(gateway, exchange, received).to_pylist()
            if self._columns is not None and "raw" in self._columns:
                self.raws = batch.column("raw").to_pylist()
            self.events = None  # built on first use, for the whole batch
            return True
        self.close()
        return False

    def typed_event(self) -> MarketEvent | None:
        """The current row's event from the typed columns (None: parse ``raw``)."""
        events = self.events
        if events is None:
            assert self.batch is not None
            events = self.events = batch_events(self.file.kind, self.batch, self.raws)
        return events[self.i]

    def advance(self) -> bool:
        self.i += 1
        if self.i < self.n:
            return self._end is None or self.ts[self.i] < self._end
        return self._load()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.batch = None


# -- merge --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _DayGroup:
    """A day folder not listed yet: joins the merge when the merge reaches the day."""

    kind: Kind
    day: str
    symbols: frozenset[str] | None


class _Merge:
    """K-way merge of part files on (receive_ts, arrival_seq), yielding the cursor of each row
    (positioned at ``cursor.i``) after dropping duplicates."""

    def __init__(
        self,
        root: Path | None,
        sources: Iterable[_DayGroup | PartFile],
        *,
        columns: Sequence[str] | None,
        start: int | None,
        end: int | None,
        batch_rows: int,
        dedup_window_us: int,
        stats: ReaderStats,
        typed: bool = False,
    ) -> None:
        self.root = root
        self.typed = typed
        self.columns = columns
        self.start = start
        self.end = end
        self.batch_rows = batch_rows
        self.dedup_window_us = dedup_window_us
        self.stats = stats
        self._order = itertools.count()
        self._pending: list[tuple[int, int, _DayGroup | PartFile]] = []
        self._known: set[Path] = set()
        for source in sources:
            self._push(source)

    def _push(self, source: _DayGroup | PartFile) -> None:
        if isinstance(source, _DayGroup):
            bound = day_start_us(source.day)
        else:
            if self.end is not None and source.first_ts is not None and source.first_ts >= self.end:
                return
            self._known.add(source.path)
            bound = source.first_ts if source.first_ts is not None else _NEG_INF
        heapq.heappush(self._pending, (bound, next(self._order), source))

    def _list_day(self, group: _DayGroup) -> None:
        assert self.root is not None, "day groups need the store root"
        for symbol in list_symbols(self.root, group.kind, group.day):
            if group.symbols is None or symbol in group.symbols:
                for part in list_parts(self.root, group.kind, group.day, symbol):
                    self._push(part)

    def _relist(self, vanished: PartFile) -> list[PartFile]:
        """Files that replaced a vanished one (a compaction output), not seen before."""
        self.stats.files_vanished += 1
        fresh = [
            p
            for p in list_parts_in(
                vanished.path.parent, vanished.kind, vanished.day, vanished.symbol
            )
            if p.path not in self._known
        ]
        log.warning(
            "raw_file_vanished", path=str(vanished.path), replacements=[p.path.name for p in fresh]
        )
        return fresh

    def __iter__(self) -> Iterator[_Cursor]:
        pending = self._pending
        heap: list[tuple[int, int, int, _Cursor]] = []
        dedups: dict[tuple[Kind, str], RecentKeys] = {}
        last: tuple[int, int] | None = None
        resume: set[Path] = set()
        stats = self.stats
        try:
            while heap or pending:
                # Every row of a pending source is >= its bound, so joining sources whose bound
                # is <= the smallest current row keeps the merge exact.
                while pending and (not heap or pending[0][0] <= heap[0][0]):
                    source = heapq.heappop(pending)[2]
                    if isinstance(source, _DayGroup):
                        self._list_day(source)
                        continue
                    after = last if source.path in resume else None
                    cursor = _Cursor(
                        source, self.columns, self.start, self.end, after=after, typed=self.typed
                    )
                    try:
                        ok = cursor.open(self.batch_rows)
                    except FileNotFoundError:
                        for fresh in self._relist(source):
                            resume.add(fresh.path)
                            self._push(fresh)
                        continue
                    stats.files_opened += 1
                    if ok:
                        i = cursor.i
                        entry = (cursor.ts[i], cursor.seq[i], next(self._order), cursor)
                        heapq.heappush(heap, entry)
                if not heap:
                    continue
                ts, seq, order, cursor = heap[0]
                last = (ts, seq)
                i = cursor.i
                dedup = dedups.get(cursor.stream)
                if dedup is None:
                    dedup = dedups[cursor.stream] = RecentKeys(self.dedup_window_us)
                if dedup.seen(cursor.keys[i], cursor.dts[i]):
                    stats.duplicates += 1
                else:
                    stats.rows += 1
                    yield cursor
                if cursor.advance():
                    j = cursor.i
                    heapq.heapreplace(heap, (cursor.ts[j], cursor.seq[j], order, cursor))
                else:
                    heapq.heappop(heap)
        finally:
            for entry in heap:
                entry[3].close()


# -- public reader ------------------------------------------------------------------------------
class RawReader:
    """Reads a raw store root (the hot store, or an archive: same layout).

    Time ranges are half-open ``[start_us, end_us)`` on receive time; ``None`` is unbounded."""

    def __init__(
        self,
        root: Path | str,
        *,
        batch_rows: int = 8192,
        dedup_window_us: int = DEFAULT_DEDUP_WINDOW_US,
        on_reject: Literal["raise", "skip"] = "raise",
        typed: bool = False,
    ) -> None:
        """``typed``: build events from the typed columns where they say everything
        (``typed.py``; the bulk replays: state as of T, period rebuilds, datasets) instead of
        parsing ``raw`` again; the events are equal either way."""
        self.root = Path(root)
        self.typed = typed
        self.batch_rows = batch_rows
        self.dedup_window_us = dedup_window_us
        self.on_reject = on_reject
        self.stats = ReaderStats()

    # -- iteration -----------------------------------------------------------------------------
    def iter_events(
        self,
        kinds: Iterable[Kind | str] | None = None,
        symbols: Iterable[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> Iterator[MarketEvent]:
        """Events in live order, parsed from ``raw`` with the stored receive time."""
        for _key, event in self.iter_keyed_events(kinds, symbols, start_us, end_us):
            yield event

    def iter_keyed_events(
        self,
        kinds: Iterable[Kind | str] | None = None,
        symbols: Iterable[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> Iterator[tuple[str, MarketEvent]]:
        """``(message_key, event)`` in live order: what the ingest boundary replays."""
        from feature_service.market.parsing import parse_message

        wanted = resolve_kinds(kinds)
        if Kind.EXECUTIONS in wanted or Kind.ORDERBOOK_CHECKPOINTS in wanted:
            raise ValueError("executions and checkpoints are not market events; use iter_records")
        cached_raw: str | None = None
        cached_ts = 0
        cached: list[MarketEvent] = []
        for cursor in self._merge(wanted, symbols, start_us, end_us, typed=self.typed):
            i = cursor.i
            if cursor.typed:
                typed = cursor.typed_event()
                if typed is not None:
                    yield cursor.keys[i], typed
                    continue
            raw, ts, part = cursor.raws[i], cursor.ts[i], cursor.parts[i]
            try:
                # The events of a multi-event body are consecutive rows: parse the body once.
                if not (part and ts == cached_ts and raw == cached_raw):
                    cached = parse_message(raw, receive_ts=ts)
                    cached_raw, cached_ts = raw, ts
                event = cached[part]
            except (MessageRejected, IndexError) as exc:
                if self.on_reject == "raise":
                    raise
                self.stats.rejected += 1
                log.warning("raw_row_rejected", kind=cursor.file.kind.value, error=repr(exc))
                continue
            yield cursor.keys[i], event

    def iter_records(
        self,
        kinds: Iterable[Kind | str] | None = None,
        symbols: Iterable[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> Iterator[RawRecord]:
        """``(receive_ts, arrival_seq, kind, raw)`` in live order, without parsing."""
        for cursor in self._merge(resolve_kinds(kinds), symbols, start_us, end_us):
            i = cursor.i
            yield RawRecord(cursor.ts[i], cursor.seq[i], cursor.file.kind, cursor.raws[i])

    def iter_rows(
        self,
        kinds: Iterable[Kind | str] | None = None,
        symbols: Iterable[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stored key columns of each row as a dict (``receive_ts, arrival_seq, kind, symbol,
        message_key, part, raw``); for tools such as export."""
        for cursor in self._merge(resolve_kinds(kinds), symbols, start_us, end_us):
            i = cursor.i
            yield {
                "receive_ts": cursor.ts[i],
                "arrival_seq": cursor.seq[i],
                "kind": cursor.file.kind,
                "symbol": cursor.file.symbol,
                "message_key": cursor.keys[i],
                "part": cursor.parts[i],
                "raw": cursor.raws[i],
            }

    def _merge(
        self,
        kinds: Sequence[Kind],
        symbols: Iterable[str] | None,
        start_us: int | None,
        end_us: int | None,
        *,
        typed: bool = False,
    ) -> _Merge:
        wanted: frozenset[str] | None = None
        if isinstance(symbols, str):
            wanted = frozenset([symbols])
        elif symbols is not None:
            wanted = frozenset(symbols)
        first_day = start_us // US_PER_DAY if start_us is not None else None
        last_day = (end_us - 1) // US_PER_DAY if end_us is not None else None
        groups: list[_DayGroup] = []
        for kind in kinds:
            for day in list_days(self.root, kind):
                n = day_start_us(day) // US_PER_DAY
                if (first_day is not None and n < first_day) or (
                    last_day is not None and n > last_day
                ):
                    continue
                groups.append(_DayGroup(kind, day, wanted))
        return _Merge(
            self.root,
            groups,
            columns=[*_KEY_COLUMNS, "raw"],
            start=start_us,
            end=end_us,
            batch_rows=self.batch_rows,
            dedup_window_us=self.dedup_window_us,
            stats=self.stats,
            typed=typed,
        )

    # -- what exists ---------------------------------------------------------------------------
    def symbols(self, kinds: Iterable[Kind | str] | None = None) -> list[str]:
        found: set[str] = set()
        for kind in resolve_kinds(kinds):
            for day in list_days(self.root, kind):
                found.update(list_symbols(self.root, kind, day))
        return sorted(found)

    def available_days(self, symbol: str, kinds: Iterable[Kind | str] | None = None) -> list[str]:
        """Days (``YYYY-MM-DD``) holding at least one part file of ``symbol``."""
        days: set[str] = set()
        for kind in resolve_kinds(kinds):
            for day in list_days(self.root, kind):
                if day not in days and list_parts(self.root, kind, day, symbol):
                    days.add(day)
        return sorted(days)

    def available_range(
        self, symbol: str, kinds: Iterable[Kind | str] | None = None
    ) -> tuple[int, int] | None:
        """``(first_us, last_us)``: receive times of the first and last stored rows.

        Cheap: reads the footers of the first day's files and of the last few files of the last
        day. The writers produce files whose rows follow their start times (one writer's
        batches of a symbol-day do not overlap), so the newest files hold the last row."""
        first: int | None = None
        last: int | None = None
        for kind in resolve_kinds(kinds):
            days = [d for d in list_days(self.root, kind) if list_parts(self.root, kind, d, symbol)]
            if not days:
                continue
            for part in list_parts(self.root, kind, days[0], symbol):
                lo = part.first_ts
                if lo is None:
                    bounds = receive_ts_bounds(part.path)
                    lo = bounds[0] if bounds else None
                if lo is not None and (first is None or lo < first):
                    first = lo
            tail = list_parts(self.root, kind, days[-1], symbol)
            named = [p for p in tail if p.first_ts is not None]
            candidates = named[-16:] + [p for p in tail if p.first_ts is None]
            for part in candidates:
                bounds = receive_ts_bounds(part.path)
                if bounds is not None and (last is None or bounds[1] > last):
                    last = bounds[1]
        if first is None or last is None:
            return None
        return first, last


def merged_tables(
    files: Sequence[PartFile],
    schema: pa.Schema,
    *,
    rows_per_table: int = 100_000,
    batch_rows: int = 16_384,
    dedup_window_us: int = DEFAULT_DEDUP_WINDOW_US,
    stats: ReaderStats | None = None,
) -> Iterator[pa.Table]:
    """All columns of ``files`` merged in live order without duplicates, as tables of about
    ``rows_per_table`` rows (for compaction and archiving; memory stays bounded)."""
    merge = _Merge(
        None,
        files,
        columns=None,
        start=None,
        end=None,
        batch_rows=batch_rows,
        dedup_window_us=dedup_window_us,
        stats=stats or ReaderStats(),
    )
    slices: list[pa.RecordBatch] = []
    rows = 0
    run_batch: pa.RecordBatch | None = None
    run_start = run_end = 0
    for cursor in merge:
        batch, i = cursor.batch, cursor.i
        if batch is run_batch and i == run_end:
            run_end += 1
            continue
        if run_batch is not None:
            slices.append(_conform(run_batch.slice(run_start, run_end - run_start), schema))
            rows += run_end - run_start
            if rows >= rows_per_table:
                yield pa.Table.from_batches(slices, schema=schema)
                slices, rows = [], 0
        run_batch, run_start, run_end = batch, i, i + 1
    if run_batch is not None:
        slices.append(_conform(run_batch.slice(run_start, run_end - run_start), schema))
    if slices:
        yield pa.Table.from_batches(slices, schema=schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Fit a batch from an older file to the current schema (missing columns become null)."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    arrays = [
        batch.column(f.name).cast(f.type)
        if f.name in batch.schema.names
        else pa.nulls(batch.num_rows, type=f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
