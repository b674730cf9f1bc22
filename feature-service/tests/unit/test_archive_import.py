"""Import of Bybit public archives: trade CSVs (derivatives, spot) and the real order book."""

from __future__ import annotations

import csv
import gzip
import random
import zipfile
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore.layout import Kind, list_parts
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.book.orderbook import OrderBook
from feature_service.engine.core import FeatureEngine
from feature_service.market.events import BookDelta, BookSnapshot, Side, Trade
from feature_service.services.archive_import import import_orderbook_files, import_trade_files

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bybit"
OB_FILE = FIXTURES / "2024-12-01_XRPUSDT_ob500.data"
DAY_S = 1_767_225_600  # 2026-01-01 00:00:00 UTC


def write_derivatives_csv(path: Path, n: int, seed: int = 7) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    rows = []
    t = DAY_S * 10_000
    for i in range(n):
        t += rnd.randint(0, 30_000)  # 1e-4 s steps: the archive's resolution
        size = f"{rnd.randint(1, 5000) / 1000:.3f}"
        price = f"{87000 + rnd.randint(-5000, 5000) / 10:.1f}"
        rows.append(
            {"timestamp": f"{t // 10_000}.{t % 10_000:04d}", "symbol": "BTCUSDT",
             "side": rnd.choice(["Buy", "Sell"]), "size": size, "price": price,
             "tickDirection": "ZeroPlusTick", "trdMatchID": f"{i:08x}-aaaa-5bbb-8ccc-{seed:012x}",
             "grossValue": "8.7e+08", "homeNotional": size,
             "foreignNotional": f"{float(size) * float(price):.4f}", "RPI": "0"}
        )  # fmt: skip
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def stored_trades(root: Path) -> list[Trade]:
    return [e for e in RawReader(root).iter_events(["trades"]) if isinstance(e, Trade)]


def test_derivatives_csv_import_equals_the_file_and_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "BTCUSDT2026-01-01.csv.gz"
    rows = write_derivatives_csv(src, 20_000)
    root = tmp_path / "raw"
    summary = import_trade_files(root, [src])
    assert summary.rows_read == summary.rows_stored == 20_000 and summary.rows_rejected == 0

    trades = stored_trades(root)
    assert len(trades) == len(rows)
    assert Counter(t.side for t in trades) == Counter(
        Side.BUY if r["side"] == "Buy" else Side.SELL for r in rows
    )
    by_id = {r["trdMatchID"]: r for r in rows}
    for t in trades:
        r = by_id[t.trade_id]
        assert t.size == float(r["size"]) and t.price == float(r["price"])
        sec, frac = r["timestamp"].split(".")
        assert t.receive_ts == int(sec) * 1_000_000 + int(frac) * 100  # exact, from the text
        assert t.trade_time == t.receive_ts // 1000 * 1000
    (part,) = list_parts(root, Kind.TRADES, "2026-01-01", "BTCUSDT")
    assert set(pq.read_table(part.path, columns=["source"]).column(0).to_pylist()) == {"import"}

    again = import_trade_files(root, [src])
    assert again.rows_stored == 0 and again.rows_skipped_existing == 20_000
    assert len(stored_trades(root)) == 20_000


def test_unordered_file_over_two_days_and_two_symbols_is_split_and_time_ordered(
    tmp_path: Path,
) -> None:
    src = tmp_path / "mixed.csv.gz"
    rows = write_derivatives_csv(src, 2_000)
    for i, r in enumerate(rows):  # every third row on the next day, every other ETH
        sec, frac = r["timestamp"].split(".")
        if i % 3 == 0:
            r["timestamp"] = f"{int(sec) + 86_400}.{frac}"
        if i % 2:
            r["symbol"] = "ETHUSDT"
    random.Random(3).shuffle(rows)
    with gzip.open(src, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    root = tmp_path / "raw"
    summary = import_trade_files(root, [src])
    assert summary.rows_stored == 2_000
    expected = Counter(
        ("2026-01-02" if int(r["timestamp"].split(".")[0]) >= DAY_S + 86_400 else "2026-01-01",
         r["symbol"])
        for r in rows
    )  # fmt: skip
    for (day, symbol), count in expected.items():
        (part,) = list_parts(root, Kind.TRADES, day, symbol)
        ts = pq.read_table(part.path, columns=["receive_ts"]).column(0).to_pylist()
        assert len(ts) == count and ts == sorted(ts)


def test_spot_csv_with_ms_and_lower_case_sides(tmp_path: Path) -> None:
    src = tmp_path / "ETHUSDT_2026-01-01.csv.gz"
    with gzip.open(src, "wt") as fh:
        fh.write("id,timestamp,price,volume,side,rpi\n")
        fh.write(f"1,{DAY_S * 1000 + 5},2950.12,0.5,buy,0\n")
        fh.write(f"2,{DAY_S * 1000 + 7},2950.10,1.25,sell,0\n")
        fh.write(f"3,{DAY_S * 1000 + 9},-1,1,sell,0\n")  # a bad row is rejected, not guessed
    summary = import_trade_files(tmp_path / "raw", [src])
    assert (summary.rows_stored, summary.rows_rejected) == (2, 1)
    a, b = stored_trades(tmp_path / "raw")
    assert (a.symbol, a.side, a.size, a.price) == ("ETHUSDT", Side.BUY, 0.5, 2950.12)
    assert (b.side, b.size, b.receive_ts) == (Side.SELL, 1.25, (DAY_S * 1000 + 7) * 1000)
    assert a.trade_id == "ETHUSDT-20260101-1"


def independent_book(path: Path) -> tuple[dict[float, float], dict[float, float]]:
    """A plain dict book from the file's frames: a snapshot replaces, size "0" deletes."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for line in path.read_bytes().splitlines():
        frame = orjson.loads(line)
        data = frame["data"]
        if frame["type"] == "snapshot":
            bids.clear()
            asks.clear()
        for side, levels in ((bids, data["b"]), (asks, data["a"])):
            for price, size in levels:
                if float(size) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = float(size)
    return bids, asks


@pytest.mark.parametrize("zipped", [False, True])
def test_real_orderbook_archive_import_rebuilds_the_same_book(tmp_path: Path, zipped: bool) -> None:
    src = OB_FILE
    if zipped:
        src = tmp_path / "2024-12-01_XRPUSDT_ob500.data.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.write(OB_FILE, OB_FILE.name)
    root = tmp_path / "raw"
    summary = import_orderbook_files(root, [src])
    assert summary.rows_read == summary.rows_stored == 50

    events = list(RawReader(root).iter_events(["orderbook"], symbols=["XRPUSDT"]))
    assert [type(e) for e in events] == [BookSnapshot] + [BookDelta] * 49
    book = OrderBook("XRPUSDT")
    for e in events:
        book.apply(e)
    bids, asks = independent_book(OB_FILE)
    assert book.usable
    assert book.top_bids(10_000) == sorted(bids.items(), reverse=True)
    assert book.top_asks(10_000) == sorted(asks.items())

    again = import_orderbook_files(root, [src])
    assert again.rows_stored == 0 and again.rows_skipped_existing == 50


def test_compute_on_the_imported_book_gives_book_features(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    import_orderbook_files(root, [OB_FILE])
    engine = FeatureEngine(intervals_s=[1])
    vectors = []
    for event in RawReader(root).iter_events(symbols=["XRPUSDT"]):
        vectors += engine.process(event)
    last = vectors[-1]
    for name in ("mid_price", "spread_abs", "spread_rel", "depth_imbalance_top5", "slope_bid"):
        assert last.features[name] is not None, (name, last.null_reasons.get(name))
    bids, asks = independent_book(OB_FILE)
    assert last.features["mid_price"] > 0
    assert min(asks) > max(bids)
