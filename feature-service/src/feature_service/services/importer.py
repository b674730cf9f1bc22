"""``feature-service storage import``: a recording into the raw store, as if received live.

The twin of ``storage export``. Each line goes through the ingest boundary (so duplicate lines
are skipped) and is stored with the receive time it was recorded with (``service_received_at``,
else ``received_at``, else the exchange time; a bare frame's ``ts``). The stored body is the
line without ``service_received_at`` -- what the service stores for a consumed message -- so
its ``message_key`` is the one live would have written. Idempotent: a message whose key is
already stored for its kind, day and symbol is not written again. Book checkpoints are written
as live would write them (every ``checkpoint_every_s`` of receive time and at each UTC day's
first book event), so state as of any imported moment starts from a nearby book.

Bad lines (garbled JSON, a frame missing its data, a value the strict parser refuses, a
truncated gzip tail) are skipped and counted by reason, as the live path dead-letters them,
and the import goes on; the first few are kept with their line numbers for the summary. With
``strict`` the import stops at the first bad line, having stored every line before it, and
raises ``RecordingError`` (its line number and reason).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.layout import US_PER_DAY, Kind, day_name, kind_of, list_parts
from feature_service.adapters.rawstore.schema import CheckpointMeta
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.book.checkpoint import BookCheckpoint
from feature_service.book.orderbook import OrderBook
from feature_service.engine.checkpoints import BookCheckpointer
from feature_service.features.state import DEFAULT_CHURN_WINDOW_US
from feature_service.ingest import IngestBoundary
from feature_service.market.errors import MessageRejected
from feature_service.market.events import US_PER_S, BookDelta, BookSnapshot, MarketEvent
from feature_service.market.keys import message_key
from feature_service.market.recording import RecordingError, iter_lines


@dataclass(slots=True)
class ImportSummary:
    lines: int = 0
    events: int = 0
    stored: int = 0
    already_stored: int = 0
    duplicates: int = 0
    checkpoints: int = 0
    first_us: int | None = None
    last_us: int | None = None
    rejected: Counter[str] = field(default_factory=Counter)  # bad lines by reason code
    errors: list[str] = field(default_factory=list)  # the first MAX_ERRORS, with line numbers

    @property
    def rejected_lines(self) -> int:
        return sum(self.rejected.values())

    def reject(self, error: RecordingError) -> None:
        self.rejected[error.reason.value] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(str(error))


MAX_ERRORS = 20


class _StoredKeys:
    """Message keys already in the store, loaded per (kind, day, symbol) on first use."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._keys: dict[tuple[Kind, int, str], set[str]] = {}

    def has(self, kind: Kind, day: int, symbol: str, key: str) -> bool:
        slot = (kind, day, symbol)
        keys = self._keys.get(slot)
        if keys is None:
            keys = self._keys[slot] = set()
            for part in list_parts(self._root, kind, day_name(day), symbol):
                keys.update(pq.read_table(part.path, columns=["message_key"])[0].to_pylist())
        if key in keys:
            return True
        keys.add(key)
        return False


def import_recording(
    path: Path | str,
    raw_root: Path | str,
    *,
    checkpoint_every_s: float = 60.0,
    flush_rows: int = 50_000,
    strict: bool = False,
) -> ImportSummary:
    root = Path(raw_root)
    summary = ImportSummary()
    boundary = IngestBoundary()
    stored = _StoredKeys(root)
    writer = RawWriterSync(root, flush_rows=flush_rows)
    pending_events: list[MarketEvent] = []
    pending_raws: list[bytes] = []
    checkpoints: list[tuple[CheckpointMeta, bytes]] = []
    books: dict[str, OrderBook] = {}
    grid: dict[str, tuple[int, float | None]] = {}

    def keep(checkpoint: BookCheckpoint, body: bytes) -> None:
        meta = CheckpointMeta.of(checkpoint)
        key = message_key(None, body)
        day = checkpoint.taken_at // US_PER_DAY
        if not stored.has(Kind.ORDERBOOK_CHECKPOINTS, day, checkpoint.symbol, key):
            checkpoints.append((meta, body))
            summary.checkpoints += 1

    checkpointer = BookCheckpointer(books.get, keep, every_s=checkpoint_every_s)

    def flush() -> None:
        if pending_events:
            writer.write_events(pending_events, pending_raws)
            pending_events.clear()
            pending_raws.clear()
        if checkpoints:
            writer.write_records(Kind.ORDERBOOK_CHECKPOINTS, checkpoints)
            checkpoints.clear()

    def bad_line(error: RecordingError) -> None:
        summary.reject(error)
        if strict:
            flush()  # every line before the bad one is stored
            raise error

    lines = iter_lines(path)
    while True:
        try:
            line_no, line = next(lines)
        except StopIteration:
            break
        except RecordingError as error:  # a truncated gzip stream: nothing readable after it
            bad_line(error)
            break
        summary.lines += 1
        try:
            events, fresh = boundary.ingest(line)
        except MessageRejected as exc:
            bad_line(RecordingError(path, line_no, exc))
            continue
        summary.events += len(events)
        summary.duplicates += len(events) - len(fresh)
        if not fresh:
            continue
        doc = orjson.loads(line)
        doc.pop("service_received_at", None)
        body = orjson.dumps(doc)  # one object per message: the writer numbers its parts by it
        # A message is one unit (the writer numbers the parts of a body in order).
        first = events[0]
        key = message_key(first.event_id, body, 0)
        if stored.has(kind_of(first), first.receive_ts // US_PER_DAY, first.symbol, key):
            summary.already_stored += len(fresh)
        else:
            pending_events.extend(fresh)
            pending_raws.extend([body] * len(fresh))
            summary.stored += len(fresh)
        for event in fresh:
            if type(event) is BookSnapshot or type(event) is BookDelta:
                book = books.get(event.symbol)
                if book is None:
                    book = books[event.symbol] = OrderBook(
                        event.symbol, churn_window_us=2 * DEFAULT_CHURN_WINDOW_US
                    )
                # The mid as of each whole second: the book before that second's first event
                # (what the engine's 1 s grid records), carried by a checkpoint taken in it.
                second = event.receive_ts - event.receive_ts % US_PER_S
                if grid.get(event.symbol, (None,))[0] != second:
                    grid[event.symbol] = (second, book.mid())
                book.apply(event)
                checkpointer.after(event, grid[event.symbol][1])
            ts = event.receive_ts
            summary.first_us = ts if summary.first_us is None else min(summary.first_us, ts)
            summary.last_us = ts if summary.last_us is None else max(summary.last_us, ts)
        if len(pending_events) >= flush_rows:
            flush()
    flush()
    return summary
