"""Events of a raw-store batch built from its typed columns, for the bulk replays.

The typed columns are written from the very event the live engine applied (``schema.py``), and
Parquet keeps float64, int64 and strings exactly, so an event rebuilt from them equals the one
``raw`` parses to (``tests/unit/test_rawstore_typed.py`` checks every row of a generated store).
Parsing ``raw`` again costs about three times as much as building from columns, and is what
dominated a warm start and a period rebuild (``benchmarks/bench_continuity.py``).

What the columns cannot say, ``raw`` still decides: a row whose body names a ``feed`` (the
REST depth source) is parsed, and so are book snapshots (rare on the stream, and the only kind a
REST poll produces). A file written without the typed columns is parsed as before.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pyarrow as pa

from feature_service.adapters.rawstore.layout import Kind
from feature_service.adapters.rawstore.schema import TICKER_COLUMNS, TYPED_FIELDS, typed_events
from feature_service.market.events import BookDelta, MarketEvent, Side, Ticker, Trade

# Kinds whose events the columns rebuild; every other kind is parsed from ``raw``.
TYPED_KINDS = frozenset({Kind.ORDERBOOK_DELTAS, Kind.TRADES, Kind.TICKER, Kind.KLINES})
_FEED_MARK = '"feed"'
_BASE = ("symbol", "topic", "exchange_ts", "gateway_ts", "receive_ts", "event_id", "trace_id")


def typed_columns(kind: Kind) -> tuple[str, ...]:
    """The columns a typed batch of ``kind`` needs besides the key columns and ``raw``."""
    return (
        "symbol",
        "topic",
        "event_id",
        "trace_id",
        *(f.name for f in TYPED_FIELDS[kind]),
    )


def _ints(batch: pa.RecordBatch, name: str) -> list[Any]:
    col = batch.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    return col.to_pylist()


def _base(batch: pa.RecordBatch) -> list[list[Any]]:
    return [_ints(batch, name) for name in _BASE]


def _sides(batch: pa.RecordBatch, name: str) -> list[list[tuple[float, float]]]:
    # Flat children plus offsets: far cheaper than a dict per level from ``to_pylist``.
    arr = batch.column(name)
    offsets = arr.offsets.to_pylist()
    values = arr.values
    # One pass pairs every level; each row is then a single slice of the pairs.
    prices, sizes = (child.to_pylist() for child in values.flatten())  # (price, size)
    pairs = list(zip(prices, sizes, strict=True))
    return [pairs[lo:hi] for lo, hi in pairwise(offsets)]


def _deltas(batch: pa.RecordBatch) -> list[MarketEvent]:
    sym, topic, ex, gw, rx, eid, tid = _base(batch)
    bids, asks = _sides(batch, "bids"), _sides(batch, "asks")
    update, seq, depth = (_ints(batch, n) for n in ("update_id", "seq", "depth"))
    return [
        BookDelta(
            symbol=sym[i],
            topic=topic[i],
            exchange_ts=ex[i],
            gateway_ts=gw[i],
            receive_ts=rx[i],
            event_id=eid[i],
            trace_id=tid[i],
            bids=bids[i],
            asks=asks[i],
            update_id=update[i],
            seq=seq[i],
            depth=depth[i],
        )
        for i in range(batch.num_rows)
    ]


def _trades(batch: pa.RecordBatch) -> list[MarketEvent]:
    sym, topic, ex, gw, rx, eid, tid = _base(batch)
    price, size, side, when, trade_id, block, seq = (
        _ints(batch, n)
        for n in ("price", "size", "side", "trade_time", "trade_id", "block_trade", "seq")
    )
    buy, sell = Side.BUY, Side.SELL
    return [
        Trade(
            symbol=sym[i],
            topic=topic[i],
            exchange_ts=ex[i],
            gateway_ts=gw[i],
            receive_ts=rx[i],
            event_id=eid[i],
            trace_id=tid[i],
            price=price[i],
            size=size[i],
            side=buy if side[i] == "Buy" else sell,
            trade_time=when[i],
            trade_id=trade_id[i],
            block_trade=block[i],
            seq=seq[i],
        )
        for i in range(batch.num_rows)
    ]


def _tickers(batch: pa.RecordBatch) -> list[MarketEvent]:
    sym, topic, ex, gw, rx, eid, tid = _base(batch)
    columns = [(name, _ints(batch, name)) for name in TICKER_COLUMNS]
    out: list[MarketEvent] = []
    for i in range(batch.num_rows):
        fields = {name: values[i] for name, values in columns if values[i] is not None}
        out.append(
            Ticker(
                symbol=sym[i],
                topic=topic[i],
                exchange_ts=ex[i],
                gateway_ts=gw[i],
                receive_ts=rx[i],
                event_id=eid[i],
                trace_id=tid[i],
                fields=fields,
            )
        )
    return out


_BUILDERS: dict[Kind, Callable[[pa.RecordBatch], list[MarketEvent]]] = {
    Kind.ORDERBOOK_DELTAS: _deltas,
    Kind.TRADES: _trades,
    Kind.TICKER: _tickers,
    Kind.KLINES: lambda batch: typed_events(Kind.KLINES, batch),
}


def batch_events(kind: Kind, batch: pa.RecordBatch, raws: list[str]) -> list[MarketEvent | None]:
    """One event per row of ``batch`` (a typed kind), None where ``raw`` must decide."""
    events: list[MarketEvent | None] = list(_BUILDERS[kind](batch))
    if kind is Kind.ORDERBOOK_DELTAS:
        for i, raw in enumerate(raws):
            if _FEED_MARK in raw:
                events[i] = None
    return events
