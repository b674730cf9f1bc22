"""Raw store reader: live order across files and kinds, dedup, ranges, streaming."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore import reader as reader_module
from feature_service.adapters.rawstore.layout import Kind, list_parts
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.retention import compact_symbol_day
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.market.errors import MessageRejected
from feature_service.market.events import MarketEvent
from feature_service.market.keys import RecentKeys
from tests.fixtures.events import body, delta, ticker, trade

T0 = 1_737_972_000_000_000  # 2025-01-27T10:00:00Z
MIDNIGHT_28 = 1_738_022_400_000_000  # 2025-01-28T00:00:00Z
HOUR = 3_600_000_000


def write(root: Path, events: list[MarketEvent], *, first_seq: int, raws: Any = None) -> None:
    bodies = raws if raws is not None else [body(e) for e in events]
    RawWriterSync(root, first_seq=first_seq).write_events(events, bodies)


def test_merge_order_across_kinds_is_receive_time_then_arrival_seq(tmp_path: Path) -> None:
    trades = [trade(T0 + 5, 0), trade(T0 + 10, 1), trade(T0 + 10, 2)]  # seq 10, 11, 12
    deltas = [delta(T0 + 10, 0), delta(T0 + 2, 1)]  # seq 5, 6 (arrived out of time order)
    tickers = [ticker(T0 + 10, 0), ticker(T0, 1)]  # seq 20, 21
    write(tmp_path, trades, first_seq=10)
    write(tmp_path, deltas, first_seq=5)
    write(tmp_path, tickers, first_seq=20)

    expected = [
        (T0, 21, tickers[1]),
        (T0 + 2, 6, deltas[1]),
        (T0 + 5, 10, trades[0]),
        (T0 + 10, 5, deltas[0]),
        (T0 + 10, 11, trades[1]),
        (T0 + 10, 12, trades[2]),
        (T0 + 10, 20, tickers[0]),
    ]
    reader = RawReader(tmp_path, batch_rows=1)
    assert list(reader.iter_events()) == [e for _, _, e in expected]
    records = list(reader.iter_records(["trades", "orderbook", "ticker"]))
    assert [(r.receive_ts, r.arrival_seq) for r in records] == [(t, s) for t, s, _ in expected]
    assert records[1].kind is Kind.ORDERBOOK_DELTAS
    assert records[1].raw == body(deltas[1]).decode()


def test_overlapping_files_of_one_folder_are_merged(tmp_path: Path) -> None:
    a = [trade(T0 + t, t) for t in (1, 3, 5)]
    b = [trade(T0 + t, t) for t in (2, 4)]
    write(tmp_path, a, first_seq=0)
    write(tmp_path, b, first_seq=100)
    assert len(list_parts(tmp_path, Kind.TRADES, "2025-01-27", "BTCUSDT")) == 2
    got = [e.receive_ts - T0 for e in RawReader(tmp_path, batch_rows=1).iter_events()]
    assert got == [1, 2, 3, 4, 5]


def test_time_range_is_half_open_and_crosses_day_boundaries(tmp_path: Path) -> None:
    times = [MIDNIGHT_28 - 1_000_000, MIDNIGHT_28 - 1, MIDNIGHT_28, MIDNIGHT_28 + 500_000]
    events = [trade(t, i) for i, t in enumerate(times)]
    write(tmp_path, events, first_seq=0)
    assert (tmp_path / "trades" / "2025-01-27").is_dir()
    assert (tmp_path / "trades" / "2025-01-28").is_dir()

    reader = RawReader(tmp_path)
    window = list(reader.iter_events(start_us=MIDNIGHT_28 - 1, end_us=MIDNIGHT_28 + 500_000))
    assert [e.receive_ts for e in window] == [MIDNIGHT_28 - 1, MIDNIGHT_28]
    assert [e.receive_ts for e in reader.iter_events(start_us=MIDNIGHT_28)] == times[2:]
    assert [e.receive_ts for e in reader.iter_events(end_us=MIDNIGHT_28)] == times[:2]
    assert list(reader.iter_events(start_us=MIDNIGHT_28 + 500_001)) == []


def test_symbols_filter(tmp_path: Path) -> None:
    events = [trade(T0, 0), trade(T0 + 1, 1, symbol="ETHUSDT"), trade(T0 + 2, 2)]
    write(tmp_path, events, first_seq=0)
    reader = RawReader(tmp_path)
    assert list(reader.iter_events(symbols=["ETHUSDT"])) == [events[1]]
    assert list(reader.iter_events(symbols="BTCUSDT")) == [events[0], events[2]]
    assert reader.symbols() == ["BTCUSDT", "ETHUSDT"]


# -- duplicates ---------------------------------------------------------------------------------
def test_redelivered_messages_are_dropped_keeping_the_first(tmp_path: Path) -> None:
    originals = [trade(T0 + i, i) for i in range(3)]
    # The service died before acknowledging the last two; they came back 3 hours later with
    # new receive times but the same bodies (same event_id, same gateway time).
    redelivered = [
        dataclasses.replace(e, receive_ts=e.receive_ts + 3 * HOUR) for e in originals[1:]
    ]
    fresh = trade(T0 + 3 * HOUR + 10, 9)
    write(tmp_path, originals, first_seq=0)
    write(tmp_path, [*redelivered, fresh], first_seq=1_000)

    reader = RawReader(tmp_path)
    assert list(reader.iter_events()) == [*originals, fresh]
    assert reader.stats.duplicates == 2


def test_dedup_memory_is_bounded_by_the_gateway_time_window(tmp_path: Path) -> None:
    original = trade(T0, 0)
    # Same id, but stamped by the gateway an hour later: outside a 15 min window, kept.
    late = dataclasses.replace(
        original, receive_ts=T0 + HOUR, gateway_ts=original.gateway_ts + HOUR
    )
    write(tmp_path, [original, late], first_seq=0)
    assert len(list(RawReader(tmp_path).iter_events())) == 2
    assert len(list(RawReader(tmp_path, dedup_window_us=2 * HOUR).iter_events())) == 1

    dedup = RecentKeys(window_us=10)
    assert [dedup.seen(f"k{t}", t) for t in range(100)] == [False] * 100
    assert len(dedup) <= 20  # two generations of one window each
    assert dedup.seen("k99", 100) is True
    assert dedup.seen("k50", 100) is False  # evicted long ago


def test_bare_frames_are_deduplicated_by_body_hash(tmp_path: Path) -> None:
    from feature_service.market.parsing import parse_message

    def frame(trade_id: str, price: str) -> bytes:
        data = {"T": 1737972000120, "s": "BTCUSDT", "S": "Buy", "v": "0.010", "p": price,
                "i": trade_id, "BT": False}  # fmt: skip
        return orjson.dumps(
            {
                "topic": "publicTrade.BTCUSDT",
                "type": "snapshot",
                "ts": 1737972000125,
                "data": [data],
            }
        )

    one, two = frame("a1", "50000.2"), frame("a2", "50000.3")
    events = [
        parse_message(one, receive_ts=T0)[0],
        parse_message(two, receive_ts=T0 + 1)[0],
        parse_message(one, receive_ts=T0 + 60_000_000)[0],  # redelivered a minute later
    ]
    assert events[0].event_id is None
    write(tmp_path, events, first_seq=0, raws=[one, two, one])
    got = list(RawReader(tmp_path).iter_events())
    assert [(e.trade_id, e.receive_ts) for e in got] == [("a1", T0), ("a2", T0 + 1)]


# -- streaming ----------------------------------------------------------------------------------
def test_files_join_the_merge_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(20):  # 20 files that follow one another in time
        write(tmp_path, [trade(T0 + 10 * i, 2 * i), trade(T0 + 10 * i + 5, 2 * i + 1)], first_seq=i)

    open_now = 0
    peak = 0
    real = pq.ParquetFile

    class CountingFile(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            nonlocal open_now, peak
            super().__init__(*args, **kwargs)
            open_now += 1
            peak = max(peak, open_now)

        def close(self, *args: Any, **kwargs: Any) -> None:
            nonlocal open_now
            open_now -= 1
            super().close(*args, **kwargs)

    monkeypatch.setattr(reader_module.pq, "ParquetFile", CountingFile)
    reader = RawReader(tmp_path, batch_rows=1)
    assert len(list(reader.iter_events())) == 40
    assert peak == 1 and open_now == 0
    assert reader.stats.files_opened == 20

    early = RawReader(tmp_path)
    assert [e.receive_ts for e in early.iter_events(end_us=T0 + 10)] == [T0, T0 + 5]
    assert early.stats.files_opened == 1  # later files start at or after the end


def test_a_file_compacted_away_mid_read_is_followed(tmp_path: Path) -> None:
    first = [trade(T0 + t, t) for t in range(5)]
    second = [trade(T0 + 100 + t, 10 + t) for t in range(5)]
    write(tmp_path, first, first_seq=0)
    write(tmp_path, second, first_seq=100)

    reader = RawReader(tmp_path, batch_rows=2)
    events = reader.iter_events()
    got = [next(events), next(events)]  # the first file is open, the second not yet
    action = compact_symbol_day(tmp_path, Kind.TRADES, "2025-01-27", "BTCUSDT")
    assert action is not None and action.files == 2
    got.extend(events)
    assert got == first + second
    assert reader.stats.files_vanished == 1


def test_rows_the_parser_rejects_raise_or_are_skipped(tmp_path: Path) -> None:
    good = trade(T0 + 1, 1)
    write(tmp_path, [trade(T0, 0), good], first_seq=0, raws=[b'{"not": "a message"}', body(good)])
    with pytest.raises(MessageRejected):
        list(RawReader(tmp_path).iter_events())
    skipping = RawReader(tmp_path, on_reject="skip")
    assert list(skipping.iter_events()) == [good]
    assert skipping.stats.rejected == 1


def test_executions_cannot_be_parsed_as_market_events(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executions"):
        next(RawReader(tmp_path).iter_events(["executions"]))


# -- what exists --------------------------------------------------------------------------------
def test_available_days_and_range(tmp_path: Path) -> None:
    write(tmp_path, [trade(T0, 0), trade(T0 + HOUR, 1)], first_seq=0)
    write(tmp_path, [delta(MIDNIGHT_28 + 7, 0)], first_seq=10)
    write(tmp_path, [delta(MIDNIGHT_28 + 2 * HOUR, 1), delta(MIDNIGHT_28 + 3, 2)], first_seq=20)
    write(tmp_path, [ticker(T0 - 5, 0, symbol="ETHUSDT")], first_seq=30)

    reader = RawReader(tmp_path)
    assert reader.available_days("BTCUSDT") == ["2025-01-27", "2025-01-28"]
    assert reader.available_days("BTCUSDT", ["trades"]) == ["2025-01-27"]
    assert reader.available_range("BTCUSDT") == (T0, MIDNIGHT_28 + 2 * HOUR)
    assert reader.available_range("BTCUSDT", ["trades"]) == (T0, T0 + HOUR)
    assert reader.available_range("ETHUSDT") == (T0 - 5, T0 - 5)
    assert reader.available_range("SOLUSDT") is None
    assert reader.available_days("SOLUSDT") == []
