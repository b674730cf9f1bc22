"""Explicit Parquet schemas of the raw store, and the conversions rows <-> columns.

Every kind shares the common columns; ``raw`` (the message body exactly as received) is what
replay parses, so a replay is exact. The typed columns make the files useful without our code
(pandas, polars, duckdb) and are checked against the events by the round-trip tests.

Common columns:
- ``receive_ts`` timestamp[us, UTC]: the service receive time (the replay clock)
- ``exchange_ts``, ``gateway_ts`` timestamp[us, UTC] (``gateway_ts`` null for bare Bybit frames)
- ``symbol``, ``topic``, ``event_id``, ``trace_id`` strings
- ``message_key``: stable per message (``market.keys.message_key``: ``event_id``, else a hash
  of the canonical body; ``#n`` for the n-th event of a message that carried several)
- ``part`` int32: that index n, so a replay takes the right event out of a multi-event body
- ``arrival_seq`` int64: consumption order in the writer; tie-breaker after ``receive_ts``
- ``raw`` string: the original body
- ``source`` string: where the row came from: ``live`` (consumed from the bus), ``backfill``
  (Bybit REST history) or ``import`` (Bybit public archives, our own recordings). Files written
  before the column existed lack it; readers treat a missing or null source as ``live``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa

from feature_service.adapters.rawstore.layout import Kind
from feature_service.market.events import (
    TICKER_FIELDS,
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Side,
    Ticker,
    Trade,
)
from feature_service.market.keys import message_key

if TYPE_CHECKING:
    from feature_service.book.checkpoint import BookCheckpoint

TS = pa.timestamp("us", tz="UTC")
LEVEL = pa.struct(
    [
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
    ]
)
LEVELS = pa.list_(pa.field("item", LEVEL, nullable=False))


@dataclass(slots=True, kw_only=True)
class RecordMeta:
    """The common columns of a message that is not a ``MarketEvent`` (own-order executions)."""

    symbol: str
    topic: str
    receive_ts: int
    exchange_ts: int | None = None
    gateway_ts: int | None = None
    event_id: str | None = None
    trace_id: str | None = None


@dataclass(slots=True, kw_only=True)
class CheckpointMeta(RecordMeta):
    """A book checkpoint row: the common columns plus the book it holds (``raw`` is the full
    checkpoint document, ``book.checkpoint.BookCheckpoint``)."""

    update_id: int | None = None
    seq: int | None = None
    depth: int | None = None
    status: str = ""
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def of(cls, checkpoint: BookCheckpoint) -> CheckpointMeta:
        """The row of a checkpoint, stamped at the receive time it was taken after."""
        return cls(
            symbol=checkpoint.symbol,
            topic=checkpoint.topic or "",
            receive_ts=checkpoint.taken_at,
            update_id=checkpoint.update_id,
            seq=checkpoint.seq,
            depth=checkpoint.depth,
            status=checkpoint.status,
            bids=checkpoint.bids,
            asks=checkpoint.asks,
        )


Item: TypeAlias = MarketEvent | RecordMeta
PendingRow: TypeAlias = tuple[Item, bytes | str, int, int]
"""What a writer buffers per message: ``(event or meta, raw body, arrival_seq, part)``."""

COMMON_FIELDS: tuple[pa.Field, ...] = (
    pa.field("receive_ts", TS, nullable=False),
    pa.field("exchange_ts", TS),
    pa.field("gateway_ts", TS),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("topic", pa.string()),
    pa.field("event_id", pa.string()),
    pa.field("trace_id", pa.string()),
    pa.field("message_key", pa.string(), nullable=False),
    pa.field("part", pa.int32(), nullable=False),
    pa.field("arrival_seq", pa.int64(), nullable=False),
    pa.field("raw", pa.string(), nullable=False),
    pa.field("source", pa.string()),
)
SOURCES = ("live", "backfill", "import")

_BOOK_FIELDS = (
    pa.field("update_id", pa.int64(), nullable=False),
    pa.field("seq", pa.int64()),
    pa.field("depth", pa.int32()),
    pa.field("bids", LEVELS, nullable=False),
    pa.field("asks", LEVELS, nullable=False),
)
# Ticker fields are parsed floats, except next_funding_time, a time (kept exact as a timestamp).
TICKER_COLUMNS: tuple[str, ...] = tuple(TICKER_FIELDS.values())
_TICKER_TIME_COLUMNS = frozenset({"next_funding_time"})

TYPED_FIELDS: dict[Kind, tuple[pa.Field, ...]] = {
    Kind.ORDERBOOK_SNAPSHOTS: _BOOK_FIELDS,
    Kind.ORDERBOOK_DELTAS: _BOOK_FIELDS,
    Kind.TRADES: (
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
        pa.field("side", pa.string(), nullable=False),
        pa.field("trade_time", TS, nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("block_trade", pa.bool_(), nullable=False),
        pa.field("seq", pa.int64()),
    ),
    Kind.KLINES: (
        pa.field("interval", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),
        pa.field("end", TS, nullable=False),
        *(
            pa.field(name, pa.float64(), nullable=False)
            for name in ("open", "high", "low", "close", "volume", "turnover")
        ),
        pa.field("confirmed", pa.bool_(), nullable=False),
    ),
    Kind.TICKER: tuple(
        pa.field(name, TS if name in _TICKER_TIME_COLUMNS else pa.float64())
        for name in TICKER_COLUMNS
    ),
    Kind.FUNDING: (
        pa.field("funding_rate", pa.float64(), nullable=False),
        pa.field("next_funding_time", TS),
        pa.field("funding_rate_ts", TS),
    ),
    Kind.EXECUTIONS: (),
    Kind.ORDERBOOK_CHECKPOINTS: (
        pa.field("update_id", pa.int64()),
        pa.field("seq", pa.int64()),
        pa.field("depth", pa.int32()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("bids", LEVELS, nullable=False),
        pa.field("asks", LEVELS, nullable=False),
    ),
}


@cache
def schema_for(kind: Kind) -> pa.Schema:
    return pa.schema(
        [*COMMON_FIELDS, *TYPED_FIELDS[kind]],
        metadata={b"feature_service.rawstore.kind": kind.value.encode()},
    )


# -- rows -> table ------------------------------------------------------------------------------
def sort_rows(rows: Sequence[PendingRow]) -> Sequence[PendingRow]:
    """Rows in (receive_ts, arrival_seq) order; arrival order already is, unless the clock
    stepped back, so the sort only runs when needed."""
    previous = None
    for row in rows:
        ts = row[0].receive_ts
        if previous is not None and ts < previous:
            return sorted(rows, key=lambda r: (r[0].receive_ts, r[2]))
        previous = ts
    return rows


def build_table(kind: Kind, rows: Sequence[PendingRow], source: str = "live") -> pa.Table:
    """The columns of ``rows`` (already in order) under ``schema_for(kind)``; every row of one
    write shares its ``source``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    items = [row[0] for row in rows]
    raws = [row[1] for row in rows]
    raw_array = pa.array(raws, type=pa.string())
    raw_array.validate(full=True)  # bytes go in unchecked; refuse a body that is not UTF-8
    columns: list[pa.Array] = [
        pa.array([it.receive_ts for it in items], type=TS),
        pa.array([it.exchange_ts for it in items], type=TS),
        pa.array([it.gateway_ts for it in items], type=TS),
        pa.array([it.symbol for it in items], type=pa.string()),
        pa.array([it.topic for it in items], type=pa.string()),
        pa.array([it.event_id for it in items], type=pa.string()),
        pa.array([it.trace_id for it in items], type=pa.string()),
        pa.array(
            [message_key(it.event_id, raw, part) for it, raw, _, part in rows], type=pa.string()
        ),
        pa.array([row[3] for row in rows], type=pa.int32()),
        pa.array([row[2] for row in rows], type=pa.int64()),
        raw_array,
        pa.repeat(pa.scalar(source, type=pa.string()), len(rows)),
    ]
    columns.extend(_TYPED_BUILDERS[kind](items))
    return pa.Table.from_arrays(columns, schema=schema_for(kind))


def _levels(sides: list[list[tuple[float, float]]]) -> pa.Array:
    # Flat values plus offsets: far cheaper than building a Python dict per level.
    offsets = [0, *accumulate(len(levels) for levels in sides)]
    prices = pa.array([p for levels in sides for p, _ in levels], type=pa.float64())
    sizes = pa.array([s for levels in sides for _, s in levels], type=pa.float64())
    values = pa.StructArray.from_arrays([prices, sizes], fields=list(LEVEL))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values, type=LEVELS)


def _book_columns(items: list[Any]) -> list[pa.Array]:
    return [
        pa.array([e.update_id for e in items], type=pa.int64()),
        pa.array([e.seq for e in items], type=pa.int64()),
        pa.array([e.depth for e in items], type=pa.int32()),
        _levels([e.bids for e in items]),
        _levels([e.asks for e in items]),
    ]


def _trade_columns(items: list[Any]) -> list[pa.Array]:
    return [
        pa.array([e.price for e in items], type=pa.float64()),
        pa.array([e.size for e in items], type=pa.float64()),
        pa.array(["Buy" if e.side is Side.BUY else "Sell" for e in items], type=pa.string()),
        pa.array([e.trade_time for e in items], type=TS),
        pa.array([e.trade_id for e in items], type=pa.string()),
        pa.array([e.block_trade for e in items], type=pa.bool_()),
        pa.array([e.seq for e in items], type=pa.int64()),
    ]


def _kline_columns(items: list[Any]) -> list[pa.Array]:
    return [
        pa.array([e.interval for e in items], type=pa.string()),
        pa.array([e.start for e in items], type=TS),
        pa.array([e.end for e in items], type=TS),
        *(
            pa.array([getattr(e, name) for e in items], type=pa.float64())
            for name in ("open", "high", "low", "close", "volume", "turnover")
        ),
        pa.array([e.confirmed for e in items], type=pa.bool_()),
    ]


def _ticker_columns(items: list[Any]) -> list[pa.Array]:
    return [
        pa.array(
            [e.fields.get(name) for e in items],
            type=TS if name in _TICKER_TIME_COLUMNS else pa.float64(),
        )
        for name in TICKER_COLUMNS
    ]


def _funding_columns(items: list[Any]) -> list[pa.Array]:
    return [
        pa.array([e.funding_rate for e in items], type=pa.float64()),
        pa.array([e.next_funding_time for e in items], type=TS),
        pa.array([e.funding_rate_ts for e in items], type=TS),
    ]


_TYPED_BUILDERS: dict[Kind, Callable[[list[Any]], list[pa.Array]]] = {
    Kind.ORDERBOOK_SNAPSHOTS: _book_columns,
    Kind.ORDERBOOK_DELTAS: _book_columns,
    Kind.TRADES: _trade_columns,
    Kind.KLINES: _kline_columns,
    Kind.TICKER: _ticker_columns,
    Kind.FUNDING: _funding_columns,
    Kind.EXECUTIONS: lambda items: [],
    Kind.ORDERBOOK_CHECKPOINTS: lambda items: [
        *_book_columns(items)[:3],
        pa.array([e.status for e in items], type=pa.string()),
        *_book_columns(items)[3:],
    ],
}


# -- table -> events (typed columns only) -------------------------------------------------------
def _column(data: pa.Table | pa.RecordBatch, name: str) -> list[Any]:
    col = data.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    return col.to_pylist()


def _to_levels(rows: list[list[dict[str, float]]]) -> list[list[tuple[float, float]]]:
    return [[(lv["price"], lv["size"]) for lv in levels] for levels in rows]


def typed_events(kind: Kind, data: pa.Table | pa.RecordBatch) -> list[MarketEvent]:
    """Events rebuilt from the typed columns alone (no parsing of ``raw``).

    Replay re-parses ``raw``; this path serves tools that only have the files, and proves the
    typed columns are complete."""
    if kind is Kind.EXECUTIONS or kind is Kind.ORDERBOOK_CHECKPOINTS:
        raise ValueError(f"{kind.value} rows are not market events")
    n = data.num_rows
    c = {name: _column(data, name) for name in data.schema.names if name not in ("raw", "source")}
    base = [
        {
            "symbol": c["symbol"][i],
            "topic": c["topic"][i],
            "exchange_ts": c["exchange_ts"][i],
            "gateway_ts": c["gateway_ts"][i],
            "receive_ts": c["receive_ts"][i],
            "event_id": c["event_id"][i],
            "trace_id": c["trace_id"][i],
        }
        for i in range(n)
    ]
    match kind:
        case Kind.ORDERBOOK_SNAPSHOTS | Kind.ORDERBOOK_DELTAS:
            cls = BookSnapshot if kind is Kind.ORDERBOOK_SNAPSHOTS else BookDelta
            bids, asks = _to_levels(c["bids"]), _to_levels(c["asks"])
            return [
                cls(
                    **base[i],
                    bids=bids[i],
                    asks=asks[i],
                    update_id=c["update_id"][i],
                    seq=c["seq"][i],
                    depth=c["depth"][i],
                )
                for i in range(n)
            ]
        case Kind.TRADES:
            return [
                Trade(
                    **base[i],
                    price=c["price"][i],
                    size=c["size"][i],
                    side=Side.BUY if c["side"][i] == "Buy" else Side.SELL,
                    trade_time=c["trade_time"][i],
                    trade_id=c["trade_id"][i],
                    block_trade=c["block_trade"][i],
                    seq=c["seq"][i],
                )
                for i in range(n)
            ]
        case Kind.KLINES:
            names = ("interval", "start", "end", "open", "high", "low", "close", "volume")
            return [
                Kline(
                    **base[i],
                    **{name: c[name][i] for name in names},
                    turnover=c["turnover"][i],
                    confirmed=c["confirmed"][i],
                )
                for i in range(n)
            ]
        case Kind.TICKER:
            return [
                Ticker(
                    **base[i],
                    fields={name: c[name][i] for name in TICKER_COLUMNS if c[name][i] is not None},
                )
                for i in range(n)
            ]
        case Kind.FUNDING:
            return [
                Funding(
                    **base[i],
                    funding_rate=c["funding_rate"][i],
                    next_funding_time=c["next_funding_time"][i],
                    funding_rate_ts=c["funding_rate_ts"][i],
                )
                for i in range(n)
            ]
    raise AssertionError(kind)
