"""Raw store layout: paths, day boundaries, names, and the temp-then-rename write protocol."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pytest

from feature_service.adapters.rawstore.layout import (
    MARKET_KINDS,
    Kind,
    atomic_parquet_writer,
    clean_stale_tmp,
    day_of,
    day_start_us,
    days_in_range,
    kind_of,
    list_parts,
    part_first_ts,
    part_path,
    resolve_kinds,
    symbol_dir,
    tmp_path_for,
    write_table_atomic,
)
from feature_service.market.events import (
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    Side,
    Ticker,
    Trade,
)

# 2025-01-27T00:00:00Z = 1737936000 s (2025-01-27T10:00:00Z is 1737972000, minus 10 h).
MIDNIGHT_27 = 1_737_936_000_000_000
TEN_AM_27 = 1_737_972_000_000_000


def _base(ts: int) -> dict[str, object]:
    return {
        "symbol": "BTCUSDT",
        "topic": "t",
        "exchange_ts": ts,
        "gateway_ts": ts,
        "receive_ts": ts,
    }


def test_part_path_follows_kind_day_symbol_layout(tmp_path: Path) -> None:
    path = part_path(tmp_path, Kind.ORDERBOOK_DELTAS, "2025-01-27", "BTCUSDT", TEN_AM_27)
    rel = path.relative_to(tmp_path).as_posix()
    assert re.fullmatch(
        r"orderbook/deltas/2025-01-27/BTCUSDT/part-1737972000000000-[0-9a-f]{8}\.parquet", rel
    )
    assert part_first_ts(path.name) == TEN_AM_27
    assert tmp_path_for(path).name == f".{path.name}.tmp"


@pytest.mark.parametrize(
    ("ts", "day"),
    [
        (MIDNIGHT_27 - 1, "2025-01-26"),
        (MIDNIGHT_27, "2025-01-27"),
        (TEN_AM_27, "2025-01-27"),
        (MIDNIGHT_27 + 86_400_000_000 - 1, "2025-01-27"),
        (0, "1970-01-01"),
    ],
)
def test_day_is_the_utc_date_of_the_receive_time(ts: int, day: str) -> None:
    assert day_of(ts) == day


def test_day_start_and_days_in_range_are_half_open() -> None:
    assert day_start_us("2025-01-27") == MIDNIGHT_27
    assert days_in_range(MIDNIGHT_27 - 1, MIDNIGHT_27) == ["2025-01-26"]
    assert days_in_range(MIDNIGHT_27 - 1, MIDNIGHT_27 + 1) == ["2025-01-26", "2025-01-27"]
    assert days_in_range(MIDNIGHT_27, MIDNIGHT_27) == []
    with pytest.raises(ValueError):
        day_start_us("2025-1-27")


def test_kind_of_maps_every_event_type() -> None:
    b = _base(1)
    assert kind_of(BookSnapshot(**b, bids=[], asks=[], update_id=2)) is Kind.ORDERBOOK_SNAPSHOTS
    assert kind_of(BookDelta(**b, bids=[], asks=[], update_id=2)) is Kind.ORDERBOOK_DELTAS
    trade = Trade(**b, price=1.0, size=1.0, side=Side.BUY, trade_time=1, trade_id="x")
    assert kind_of(trade) is Kind.TRADES
    kline = Kline(
        **b,
        interval="1",
        start=0,
        end=59_999_000,
        open=1.0,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=0.0,
        turnover=0.0,
        confirmed=True,
    )
    assert kind_of(kline) is Kind.KLINES
    assert kind_of(Ticker(**b, fields={})) is Kind.TICKER
    assert kind_of(Funding(**b, funding_rate=0.0, next_funding_time=None)) is Kind.FUNDING
    with pytest.raises(TypeError):
        kind_of("not an event")  # type: ignore[arg-type]


def test_resolve_kinds_accepts_names_and_aliases_in_a_stable_order() -> None:
    assert resolve_kinds(None) == MARKET_KINDS
    assert Kind.EXECUTIONS not in MARKET_KINDS
    assert resolve_kinds(["trades", "orderbook"]) == (
        Kind.ORDERBOOK_SNAPSHOTS,
        Kind.ORDERBOOK_DELTAS,
        Kind.TRADES,
    )
    assert resolve_kinds(["orderbook/deltas", "kline", Kind.FUNDING]) == (
        Kind.ORDERBOOK_DELTAS,
        Kind.KLINES,
        Kind.FUNDING,
    )
    with pytest.raises(ValueError, match="unknown raw data kind"):
        resolve_kinds(["candles"])


@pytest.mark.parametrize("symbol", ["../etc", ".hidden", "a/b", "", "BTC..USDT"])
def test_symbols_that_could_escape_their_folder_are_refused(tmp_path: Path, symbol: str) -> None:
    with pytest.raises(ValueError):
        symbol_dir(tmp_path, Kind.TRADES, "2025-01-27", symbol)


def test_list_parts_sees_only_complete_part_files_in_time_order(tmp_path: Path) -> None:
    folder = symbol_dir(tmp_path, Kind.TRADES, "2025-01-27", "BTCUSDT")
    folder.mkdir(parents=True)
    # 9-digit vs 10-digit times: the order must be numeric, not lexicographic.
    for name in (
        "part-1000000000-aaaaaaaa.parquet",
        "part-999999999-bbbbbbbb.parquet",
        ".part-5-cccccccc.parquet.tmp",
        ".restored",
        "notes.txt",
    ):
        (folder / name).write_bytes(b"x")
    parts = list_parts(tmp_path, Kind.TRADES, "2025-01-27", "BTCUSDT")
    assert [p.path.name for p in parts] == [
        "part-999999999-bbbbbbbb.parquet",
        "part-1000000000-aaaaaaaa.parquet",
    ]
    assert [p.first_ts for p in parts] == [999_999_999, 1_000_000_000]
    assert list_parts(tmp_path, Kind.TRADES, "2025-01-28", "BTCUSDT") == []


def test_atomic_write_appears_only_when_complete(tmp_path: Path) -> None:
    table = pa.table({"receive_ts": pa.array([1, 2], pa.timestamp("us", tz="UTC"))})
    final = tmp_path / "a" / "b" / "part-1-00000000.parquet"
    size = write_table_atomic(table, final)
    assert final.is_file() and size == final.stat().st_size > 0
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]

    failed = tmp_path / "a" / "b" / "part-2-00000000.parquet"
    with (
        pytest.raises(RuntimeError, match="boom"),
        atomic_parquet_writer(failed, table.schema) as writer,
    ):
        writer.write_table(table)
        raise RuntimeError("boom")
    assert not failed.exists()
    assert not tmp_path_for(failed).exists()


def test_clean_stale_tmp_spares_recent_files(tmp_path: Path) -> None:
    folder = tmp_path / "trades" / "2025-01-27" / "BTCUSDT"
    folder.mkdir(parents=True)
    old = folder / ".part-1-aaaaaaaa.parquet.tmp"
    fresh = folder / ".part-2-bbbbbbbb.parquet.tmp"
    keep = folder / "part-1-aaaaaaaa.parquet"
    for path in (old, fresh, keep):
        path.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 3600, now - 3600))
    removed = clean_stale_tmp(tmp_path, older_than_s=300, now=now)
    assert removed == [old]
    assert fresh.exists() and keep.exists()
    assert clean_stale_tmp(tmp_path, older_than_s=0, now=now + 1) == [fresh]
    assert keep.exists()
    assert clean_stale_tmp(tmp_path / "missing") == []
