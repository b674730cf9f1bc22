"""Raw store writers: schema round trip per kind, batching, durability of acknowledgements."""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore import writer as writer_module
from feature_service.adapters.rawstore.layout import Kind, list_parts, symbol_dir
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.schema import (
    RecordMeta,
    message_key,
    schema_for,
    typed_events,
)
from feature_service.adapters.rawstore.writer import RawStoreError, RawWriter, RawWriterSync
from feature_service.market.events import MarketEvent
from tests.fixtures.events import FACTORIES, body, delta, kline, trade

T0 = 1_737_972_000_000_000  # 2025-01-27T10:00:00Z
DAY = "2025-01-27"
NEXT_FUNDING = 1_737_993_600_000_000  # 2025-01-27T16:00:00Z


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _rows_per_file(root: Path, kind: Kind, symbol: str = "BTCUSDT", day: str = DAY) -> list[int]:
    return [pq.read_metadata(p.path).num_rows for p in list_parts(root, kind, day, symbol)]


# -- schema round trip ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(FACTORIES))
def test_every_kind_round_trips_through_typed_columns_and_raw(tmp_path: Path, kind: Kind) -> None:
    events = [FACTORIES[kind](T0 + 1_000 * i, i) for i in range(4)]
    written = RawWriterSync(tmp_path, first_seq=100).write_events(events, [body(e) for e in events])

    assert len(written) == 1 and written[0].rows == 4
    table = pq.read_table(written[0].path)
    assert table.schema.equals(schema_for(kind), check_metadata=False)
    assert typed_events(kind, table) == events  # typed columns alone rebuild the events
    assert list(RawReader(tmp_path).iter_events([kind])) == events  # replay of raw
    assert table.column("arrival_seq").to_pylist() == [100, 101, 102, 103]
    assert table.column("raw").to_pylist() == [body(e).decode() for e in events]
    assert table.column("message_key").to_pylist() == [e.event_id for e in events]
    meta = pq.read_metadata(written[0].path)
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_sync_writer_rebuilds_a_body_when_none_is_given(tmp_path: Path) -> None:
    events = [trade(T0, 0), kline(T0 + 5, 1)]
    RawWriterSync(tmp_path).write_events(events)
    assert list(RawReader(tmp_path).iter_events()) == events


def test_message_key_is_event_id_or_hash_of_canonical_body() -> None:
    assert message_key("abc", b"{}") == "abc"
    assert message_key("abc", b"{}", 2) == "abc#2"
    reordered = message_key(None, b'{"b": 2, "a": 1}')
    assert reordered == message_key(None, '{"a":1,"b":2}')  # same JSON, other key order
    assert reordered.startswith("sha:") and len(reordered) == 4 + 32
    assert reordered != message_key(None, b'{"a":1,"b":3}')


# -- readable without our code ----------------------------------------------------------------
@pytest.fixture()
def store_of_every_kind(tmp_path: Path) -> tuple[Path, dict[Kind, list[MarketEvent]]]:
    by_kind = {kind: [f(T0 + 1_000 * i, i) for i in range(3)] for kind, f in FACTORIES.items()}
    events = [e for kind_events in by_kind.values() for e in kind_events]
    RawWriterSync(tmp_path).write_events(events, [body(e) for e in events])
    return tmp_path, by_kind


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_pandas_polars_and_duckdb_read_every_kind(
    store_of_every_kind: tuple[Path, dict[Kind, list[MarketEvent]]], kind: Kind
) -> None:
    root, by_kind = store_of_every_kind
    events = by_kind[kind]
    folder = root / kind.value
    expected_ts = [_ts(e.receive_ts) for e in events]
    expected_raw = [body(e).decode() for e in events]

    df = pd.read_parquet(folder)
    assert list(df["receive_ts"]) == [pd.Timestamp(t) for t in expected_ts]
    assert list(df["raw"]) == expected_raw

    pf = pl.read_parquet(f"{folder}/**/*.parquet")
    assert pf["receive_ts"].to_list() == expected_ts
    assert pf["symbol"].to_list() == ["BTCUSDT"] * 3

    rows = duckdb.sql(
        f"select receive_ts, raw from read_parquet('{folder}/**/*.parquet') order by receive_ts"
    ).fetchall()
    assert [r[1] for r in rows] == expected_raw
    assert [r[0].astimezone(UTC) for r in rows] == expected_ts

    match kind:
        case Kind.ORDERBOOK_DELTAS:
            assert df["bids"].iloc[0].tolist() == [
                {"price": 50000.1, "size": 0.0},
                {"price": 50000.0, "size": 2.5},
            ]
            total = duckdb.sql(
                f"select sum(len(bids)) from read_parquet('{folder}/**/*.parquet')"
            ).fetchall()
            assert total == [(6,)]
            assert pf["bids"].to_list()[1] == [
                {"price": 50000.1, "size": 0.0},
                {"price": 50000.0, "size": 2.5},
            ]
        case Kind.TRADES:
            assert list(df["side"]) == ["Buy", "Sell", "Buy"]
            assert pf["price"].to_list() == [50000.2, 50001.2, 50002.2]
        case Kind.TICKER:
            assert pf["last_price"].to_list() == [50000.2, None, 50002.2]
            assert df["next_funding_time"].iloc[0] == pd.Timestamp("2025-01-27T16:00:00Z")
        case Kind.KLINES:
            got = duckdb.sql(
                "select count(*) filter (where confirmed) "
                f"from read_parquet('{folder}/**/*.parquet')"
            ).fetchall()
            assert got == [(1,)]
        case _:
            assert len(df) == 3


# -- async writer: batching -------------------------------------------------------------------
async def test_batches_are_written_when_they_reach_flush_rows(tmp_path: Path) -> None:
    clock = FakeClock()  # frozen: only size can trigger a write
    writer = RawWriter(tmp_path, flush_rows=3, flush_age_s=60, clock=clock)
    events = [trade(T0 + i, i) for i in range(7)]
    futures = [writer.submit(e, body(e)) for e in events]
    await asyncio.wait_for(asyncio.gather(*futures[:6]), 5)

    assert futures[0] is futures[2] and futures[3] is futures[5]  # one future per batch
    assert not futures[6].done()
    assert _rows_per_file(tmp_path, Kind.TRADES) == [3, 3]
    assert writer.stats.pending_rows == 1
    assert writer.stats.rows_written == {"trades": 6}

    await writer.close()
    assert futures[6].done() and futures[6].exception() is None
    assert _rows_per_file(tmp_path, Kind.TRADES) == [3, 3, 1]
    assert list(RawReader(tmp_path).iter_events()) == events
    stats = writer.stats
    assert stats.files_written == 3 and stats.pending_rows == 0
    sizes = sum(p.path.stat().st_size for p in list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT"))
    assert stats.bytes_written == sizes


async def test_batches_are_written_when_their_oldest_row_reaches_flush_age(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RawWriter(tmp_path, flush_rows=1000, flush_age_s=1.0, clock=clock)
    first = writer.submit(trade(T0, 0), body(trade(T0, 0)))
    clock.t = 0.6
    second = writer.submit(trade(T0 + 1, 1), body(trade(T0 + 1, 1)))
    assert first is second

    clock.t = 0.999
    assert await writer.flush_due() == 0
    assert not first.done() and list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT") == []

    clock.t = 1.0  # the oldest row is now 1 s old; the newest only 0.4 s, but they go together
    assert await writer.flush_due() == 1
    assert first.done() and first.exception() is None
    assert _rows_per_file(tmp_path, Kind.TRADES) == [2]
    assert writer.stats.last_flush_latency_s == pytest.approx(1.0)
    await writer.close()


async def test_background_task_flushes_by_age_on_the_real_clock(tmp_path: Path) -> None:
    async with RawWriter(tmp_path, flush_rows=1000, flush_age_s=0.05) as writer:
        future = writer.submit(trade(T0, 0), body(trade(T0, 0)))
        await asyncio.wait_for(future, 5)
        assert _rows_per_file(tmp_path, Kind.TRADES) == [1]


async def test_buffers_split_by_kind_day_and_symbol(tmp_path: Path) -> None:
    midnight = 1_737_936_000_000_000 + 86_400_000_000  # 2025-01-28T00:00:00Z
    events = [
        trade(midnight - 1, 0),
        trade(midnight, 1),
        trade(midnight + 1, 2, symbol="ETHUSDT"),
        delta(midnight + 2, 3),
    ]
    async with RawWriter(tmp_path, flush_rows=100, flush_age_s=60) as writer:
        futures = [writer.submit(e, body(e)) for e in events]
        assert len({id(f) for f in futures}) == 4
    assert _rows_per_file(tmp_path, Kind.TRADES, day="2025-01-27") == [1]
    assert _rows_per_file(tmp_path, Kind.TRADES, day="2025-01-28") == [1]
    assert _rows_per_file(tmp_path, Kind.TRADES, "ETHUSDT", day="2025-01-28") == [1]
    assert _rows_per_file(tmp_path, Kind.ORDERBOOK_DELTAS, day="2025-01-28") == [1]


# -- async writer: durability -----------------------------------------------------------------
async def test_future_resolves_only_after_the_file_is_complete_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = writer_module.write_part

    def slow_write_part(*args: Any, **kwargs: Any) -> Any:
        assert release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_part", slow_write_part)
    seen_at_resolution: list[int] = []

    def on_done(_: asyncio.Future[None]) -> None:
        parts = list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT")
        seen_at_resolution.extend(pq.read_table(p.path).num_rows for p in parts)

    writer = RawWriter(tmp_path, flush_rows=2, flush_age_s=60)
    events = [trade(T0, 0), trade(T0 + 1, 1)]
    future = writer.submit(events[0], body(events[0]))
    writer.submit(events[1], body(events[1]))
    future.add_done_callback(on_done)
    await asyncio.sleep(0.05)  # the write is in progress, blocked
    assert not future.done()
    assert list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT") == []

    release.set()
    await asyncio.wait_for(future, 5)
    await asyncio.sleep(0)  # let the done-callback run
    assert seen_at_resolution == [2]
    await writer.close()


async def test_a_failed_write_is_retried_until_it_succeeds_and_never_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_part = writer_module.write_part
    disk_full = [True]

    def flaky_write_part(*args: Any, **kwargs: Any) -> Any:
        if disk_full[0]:
            raise OSError(28, "No space left on device")
        return real_write_part(*args, **kwargs)

    monkeypatch.setattr(writer_module, "write_part", flaky_write_part)
    writer = RawWriter(tmp_path, flush_rows=100, flush_age_s=60, retry_initial_s=0.01)
    future = writer.submit(trade(T0, 0), body(trade(T0, 0)))
    with pytest.raises(RawStoreError, match="No space left"):
        await writer.flush()
    assert not future.done(), "a failed batch must wait for its retry, not fail its messages"
    assert not writer.healthy and "No space left" in (writer.failure or "")
    later = writer.submit(trade(T0 + 1, 1), body(trade(T0 + 1, 1)))
    with pytest.raises(RawStoreError):
        await writer.flush()
    await asyncio.sleep(0.05)  # a few retries fail while the disk is full
    assert writer.stats.retries_failed >= 1
    assert not future.done() and not later.done()

    disk_full[0] = False  # space is back: the retry writes both, in order, by itself
    await asyncio.wait_for(writer.wait_healthy(), 5)
    await asyncio.wait_for(asyncio.gather(future, later), 5)
    assert writer.healthy and writer.failure is None
    # the second batch waited behind the first instead of hitting the full disk again
    assert writer.stats.batches_failed == 1 and writer.stats.batches_retried == 2
    assert writer.stats.pending_rows == 0
    assert [e.receive_ts for e in RawReader(tmp_path).iter_events()] == [T0, T0 + 1]
    await writer.close()


async def test_close_gives_up_on_batches_that_still_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_write_part(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module, "write_part", failing_write_part)
    writer = RawWriter(tmp_path, flush_rows=100, flush_age_s=60, retry_initial_s=60)
    future = writer.submit(trade(T0, 0), body(trade(T0, 0)))
    await writer.close()
    # The error stays on the future: the message is never acknowledged, so it is redelivered.
    assert isinstance(future.exception(), RawStoreError)
    assert list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT") == []
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(trade(T0, 1), body(trade(T0, 1)))


async def test_leftover_tmp_is_ignored_by_readers_and_removed_at_start(tmp_path: Path) -> None:
    events = [trade(T0, 0), trade(T0 + 1, 1)]
    RawWriterSync(tmp_path).write_events(events, [body(e) for e in events])
    folder = symbol_dir(tmp_path, Kind.TRADES, DAY, "BTCUSDT")
    good = list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT")[0].path
    # A crash mid-write: a truncated temp file, and a complete one never renamed.
    (folder / ".part-1737972000000005-deadbeef.parquet.tmp").write_bytes(good.read_bytes()[:100])
    (folder / ".part-1737972000000009-feedface.parquet.tmp").write_bytes(good.read_bytes())

    assert list(RawReader(tmp_path).iter_events()) == events
    assert len(pd.read_parquet(tmp_path / "trades")) == 2

    writer = RawWriter(tmp_path, stale_tmp_age_s=0)
    await writer.start()
    await writer.close()
    assert sorted(p.name for p in folder.iterdir()) == [good.name]
    assert writer.stats.stale_tmp_removed == 2


async def test_events_of_one_body_are_stored_as_parts_and_replayed(tmp_path: Path) -> None:
    from feature_service.market.parsing import parse_message

    frame = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1737972000125,
        "data": [
            {"T": 1737972000120, "s": "BTCUSDT", "S": "Buy", "v": "0.010", "p": "50000.20",
             "i": "a1", "BT": False},
            {"T": 1737972000121, "s": "BTCUSDT", "S": "Sell", "v": "0.020", "p": "50000.10",
             "i": "a2", "BT": False},
        ],
    }  # fmt: skip
    raw = orjson.dumps(frame)
    events = parse_message(raw, receive_ts=T0)
    async with RawWriter(tmp_path, flush_rows=100, flush_age_s=60) as writer:
        for event in events:  # as the live consumer does: same body object for each event
            writer.submit(event, raw)
    table = pq.read_table(list_parts(tmp_path, Kind.TRADES, DAY, "BTCUSDT")[0].path)
    assert table.column("part").to_pylist() == [0, 1]
    keys = table.column("message_key").to_pylist()
    assert keys[1] == keys[0] + "#1" and keys[0].startswith("sha:")
    assert list(RawReader(tmp_path).iter_events()) == events


async def test_records_that_are_not_market_events_are_stored(tmp_path: Path) -> None:
    meta = RecordMeta(symbol="BTCUSDT", topic="order", receive_ts=T0, event_id="o-1")
    raw = b'{"event_type":"order","payload":{"orderId":"1"}}'
    async with RawWriter(tmp_path, first_seq=7) as writer:
        await asyncio.wait_for(writer.submit_record(Kind.EXECUTIONS, meta, raw), 5)
    records = list(RawReader(tmp_path).iter_records([Kind.EXECUTIONS]))
    assert records == [(T0, 7, Kind.EXECUTIONS, raw.decode())]


async def test_unusable_symbol_fails_the_future(tmp_path: Path) -> None:
    event = trade(T0, 0, symbol="../../etc")
    async with RawWriter(tmp_path) as writer:
        future = writer.submit(event, body(event))
        with pytest.raises(ValueError, match="folder name"):
            await future
    assert os.listdir(tmp_path) == []


def test_schema_types_are_explicit() -> None:
    trades = schema_for(Kind.TRADES)
    assert trades.field("receive_ts").type == pa.timestamp("us", tz="UTC")
    assert not trades.field("receive_ts").nullable
    assert trades.field("gateway_ts").nullable
    assert trades.field("arrival_seq").type == pa.int64()
    assert trades.field("trade_time").type == pa.timestamp("us", tz="UTC")
    book = schema_for(Kind.ORDERBOOK_SNAPSHOTS)
    assert str(book.field("bids").type) == (
        "list<item: struct<price: double not null, size: double not null> not null>"
    )
    assert schema_for(Kind.EXECUTIONS).names[-2:] == ["raw", "source"]
