"""Backfill from the fake Bybit server into a real raw store: pagination, known time, validation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.clients.bybit_rest import BybitRestClient, TokenBucket
from feature_service.adapters.rawstore.layout import Kind, day_start_us, list_parts
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.market.events import Funding, Kline, MarketEvent
from feature_service.registry.loader import load_registry
from feature_service.services.backfill import Backfiller, days_between, required_data_types
from tests.fixtures.fake_bybit import FakeBybit, funding_at, kline_at

DAY0 = "2025-11-01"
T0_MS = day_start_us(DAY0) // 1000
MIN = 60_000
NOW_MS = T0_MS + 30 * 86_400_000 + 90 * MIN + 20_000  # 2025-12-01 01:30:20 UTC


@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    with FakeBybit(now_ms=NOW_MS) as server:
        yield server


@pytest.fixture
async def client(fake: FakeBybit) -> AsyncIterator[BybitRestClient]:
    bucket = TokenBucket(500, 5.0)
    c = BybitRestClient(fake.base_url, bucket=bucket, backoff_base_s=0.01, timeout_s=2.0)
    yield c
    await c.aclose()


def backfiller(client: BybitRestClient, root: Path, **kw: object) -> Backfiller:
    return Backfiller(client, root, now_ms=lambda: NOW_MS, **kw)  # type: ignore[arg-type]


def stored_klines(root: Path) -> list[Kline]:
    return [e for e in RawReader(root).iter_events(["klines"]) if isinstance(e, Kline)]


async def test_a_month_of_minute_candles_is_stored_exactly_once(
    fake: FakeBybit, client: BybitRestClient, tmp_path: Path
) -> None:
    import datetime as dt

    days = days_between(dt.date(2025, 11, 1), dt.date(2025, 12, 1))
    bf = backfiller(client, tmp_path)
    fake.inject("429", 1)
    fake.inject("10006", 1)
    fake.inject("malformed", 1)
    outcomes = [await bf.klines_day("BTCUSDT", d) for d in days]
    assert all(o.status == "stored" for o in outcomes)

    klines = stored_klines(tmp_path)
    starts = [k.start // 1000 for k in klines]
    # Every closed candle whose close lies in the range, from 23:59 of Oct 31 (closing at
    # midnight) to the one closing at 01:30 on Dec 1; the open 01:30 candle is not stored.
    expected = list(range(T0_MS - MIN, T0_MS + 30 * 86_400_000 + 89 * MIN + 1, MIN))
    assert starts == expected
    assert len(set(starts)) == len(starts) == 30 * 1440 + 91
    for k in klines[::997]:
        o, h, low, c = kline_at("BTCUSDT", k.start // 1000)
        assert (k.open, k.high, k.low, k.close) == (float(o), float(h), float(low), float(c))
        assert k.receive_ts == k.start + 60_000_000  # known at its close, never its start
    # Two windows of <= 1000 bars a day, plus the three injected failures retried.
    assert fake.request_count("/v5/market/kline") == 2 * 30 + 1 + 3

    again = [await bf.klines_day("BTCUSDT", d) for d in days]  # complete days are skipped
    assert all(o.status == "complete" for o in again)
    assert fake.request_count("/v5/market/kline") == 2 * 30 + 1 + 3
    assert len(stored_klines(tmp_path)) == len(expected)


async def test_rows_are_labelled_and_in_the_live_schema(
    client: BybitRestClient, tmp_path: Path
) -> None:
    await backfiller(client, tmp_path).klines_day("BTCUSDT", "2025-11-05")
    (part,) = list_parts(tmp_path, Kind.KLINES, "2025-11-05", "BTCUSDT")
    table = pq.read_table(part.path)
    assert set(table.column("source").to_pylist()) == {"backfill"}
    assert table.num_rows == 1440


async def test_only_missing_candles_are_fetched_next_to_live_ones(
    client: BybitRestClient, tmp_path: Path
) -> None:
    day = "2025-11-10"
    t = day_start_us(day) // 1000
    bf = backfiller(client, tmp_path)
    # A live recording already holds 100 candles of the day.
    live = [_kline_from_fake(t + i * MIN) for i in range(500, 600)]
    RawWriterSync(tmp_path).write_events(live)
    outcome = await bf.klines_day("BTCUSDT", day)
    assert outcome.status == "stored" and outcome.rows == 1440 - 100
    starts = [
        k.start
        for k in stored_klines(tmp_path)
        if k.receive_ts // 86_400_000_000 == t // 86_400_000
    ]
    assert len(starts) == len(set(starts)) == 1440


def _kline_from_fake(start_ms: int) -> Kline:
    from feature_service.adapters.clients.bybit_rest import Kline as RestKline
    from feature_service.services.backfill import kline_event

    o, h, low, c = kline_at("BTCUSDT", start_ms)
    ev = kline_event("BTCUSDT", "1", RestKline(start_ms, o, h, low, c, "1", "1"), "linear")
    ev.event_id = f"live-{start_ms}"
    ev.receive_ts += 150_000  # a live candle arrives a little after its close
    return ev


async def test_a_corrupted_save_is_detected_deleted_and_retried(
    client: BybitRestClient, tmp_path: Path
) -> None:
    calls: list[list[Path]] = []

    def corrupting_write(events: Sequence[MarketEvent]) -> list[Path]:
        writer = RawWriterSync(tmp_path, source="backfill")
        paths = [p.path for p in writer.write_events(events)]
        if not calls:  # the first save loses its last rows (a torn write)
            table = pq.read_table(paths[0])
            pq.write_table(table.slice(0, table.num_rows - 7), paths[0])
        calls.append(paths)
        return paths

    bf = backfiller(client, tmp_path, write=corrupting_write)
    outcome = await bf.klines_day("BTCUSDT", "2025-11-20")
    assert outcome.status == "stored" and outcome.attempts == 2
    assert "1433 rows read back, 1440 fetched" in outcome.problems[0]
    assert not calls[0][0].exists()  # the corrupted file is gone
    parts = list_parts(tmp_path, Kind.KLINES, "2025-11-20", "BTCUSDT")
    assert [p.path for p in parts] == calls[1]
    assert sum(pq.read_metadata(p.path).num_rows for p in parts) == 1440


async def test_a_day_that_never_validates_fails_without_leaving_files(
    client: BybitRestClient, tmp_path: Path
) -> None:
    def bad_write(events: Sequence[MarketEvent]) -> list[Path]:
        paths = [p.path for p in RawWriterSync(tmp_path, source="live").write_events(events)]
        return paths

    bf = backfiller(client, tmp_path, write=bad_write, max_day_attempts=2)
    outcome = await bf.klines_day("BTCUSDT", "2025-11-21")
    assert outcome.status == "failed" and outcome.attempts == 2
    assert "rows not labelled source=backfill" in outcome.problems
    assert list_parts(tmp_path, Kind.KLINES, "2025-11-21", "BTCUSDT") == []


async def test_funding_history_pages_backwards_and_is_stamped_at_its_time(
    fake: FakeBybit, client: BybitRestClient, tmp_path: Path
) -> None:
    import datetime as dt

    days = days_between(dt.date(2025, 9, 1), dt.date(2025, 11, 30))  # 91 days, 273 records
    outcomes = await backfiller(client, tmp_path).funding_days("BTCUSDT", days)
    assert all(o.status == "stored" and o.rows == 3 for o in outcomes)
    events = [e for e in RawReader(tmp_path).iter_events(["funding"]) if isinstance(e, Funding)]
    stamps = [e.receive_ts for e in events]
    first = day_start_us("2025-09-01")
    assert stamps == [first + i * 8 * 3_600_000_000 for i in range(273)]
    assert all(e.funding_rate_ts == e.receive_ts for e in events)
    assert events[5].funding_rate == float(funding_at("BTCUSDT", stamps[5] // 1000))
    # Paging by endTime: 273 records from the end of the range need two pages of 200.
    assert fake.request_count("/v5/market/funding") == 2
    again = await backfiller(client, tmp_path).funding_days("BTCUSDT", days)
    assert all(o.status == "complete" for o in again)


def test_the_registry_decides_the_data_types() -> None:
    types = required_data_types(load_registry())
    assert types[:2] == ["klines", "funding"]
    assert {"trades", "orderbook"} <= set(types)


def test_old_files_without_a_source_column_still_read(tmp_path: Path) -> None:
    events = [_kline_from_fake(T0_MS + i * MIN) for i in range(3)]
    (part,) = RawWriterSync(tmp_path).write_events(events)
    table = pq.read_table(part.path)
    pq.write_table(table.drop_columns(["source"]), part.path)
    assert pa.types.is_string(pq.read_schema(part.path).field("raw").type)
    assert stored_klines(tmp_path) == events
