"""History: backfill of 1 m candles through fetch -> validate -> store, and trade CSV import.

Rows (wall time: HTTP round trips and file writes are the work):
- ``history.backfill candles``: days of 1 m klines backfilled from the fake Bybit server of the
  test suite (real HTTP on loopback, 2 requests of <= 1000 bars a day), each day written to the
  raw store and validated after save (re-read, re-parsed), in candles per second. Baseline: the
  same requests with the pages only decoded (fetch alone), so the ratio is what storing and
  validating add on top of the network.
- ``history.import trades``: a derivatives trade archive (``{SYMBOL}{DATE}.csv.gz``, generated,
  same columns as Bybit's) imported with ``import_trade_files``, in rows per second. Baseline:
  ``pyarrow.csv.read_csv`` of the same file alone. ``history.import 1 M rows`` projects the
  seconds a 1 M-row day takes (the aim: a 1-3 M row day in under a minute).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv

from benchmarks.common import Result, result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "feature-service"))

from tests.fixtures.fake_bybit import FakeBybit

from feature_service.adapters.clients.bybit_rest import BybitRestClient, TokenBucket
from feature_service.adapters.rawstore.layout import day_start_us
from feature_service.services.archive_import import import_trade_files
from feature_service.services.backfill import Backfiller, days_between

NOW_MS = day_start_us("2025-12-01") // 1000


async def _backfill(base_url: str, root: Path, days: list[str], store: bool) -> int:
    bucket = TokenBucket(10_000, 5.0)  # the fake has no IP limit; measure the work, not pacing
    async with BybitRestClient(base_url, bucket=bucket) as client:
        if store:
            bf = Backfiller(client, root, now_ms=lambda: NOW_MS)
            outcomes = [await bf.klines_day("BTCUSDT", d) for d in days]
            return sum(o.rows for o in outcomes)
        total = 0
        for d in days:
            t0 = day_start_us(d) // 1000 - 60_000
            for start in (t0, t0 + 1000 * 60_000):
                end = min(start + 999 * 60_000, t0 + 1439 * 60_000)
                total += len(await client.get_klines("BTCUSDT", "1", start, end))
        return total


def _write_csv(path: Path, n: int) -> None:
    rnd = random.Random(11)
    t = 1_767_225_600 * 10_000
    with gzip.open(path, "wt", newline="", compresslevel=1) as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "timestamp",
                "symbol",
                "side",
                "size",
                "price",
                "tickDirection",
                "trdMatchID",
                "grossValue",
                "homeNotional",
                "foreignNotional",
                "RPI",
            ]
        )
        for i in range(n):
            t += rnd.randint(0, 600)
            size = f"{rnd.randint(1, 5000) / 1000:.3f}"
            w.writerow(
                [
                    f"{t // 10_000}.{t % 10_000:04d}",
                    "BTCUSDT",
                    "Buy" if i % 3 else "Sell",
                    size,
                    f"{87000 + rnd.randint(-5000, 5000) / 10:.1f}",
                    "ZeroPlusTick",
                    f"{i:08x}-aaaa-5bbb-8ccc-000000000000",
                    "8.7e+08",
                    size,
                    "1.0",
                    "0",
                ]
            )


def run(quick: bool) -> list[Result]:
    n_days = 2 if quick else 10
    days = days_between(dt.date(2025, 11, 1), dt.date(2025, 11, n_days))
    rows: list[Result] = []
    with FakeBybit(now_ms=NOW_MS) as fake, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        fetched = asyncio.run(_backfill(fake.base_url, Path(tmp), days, store=False))
        fetch_s = time.perf_counter() - started
        started = time.perf_counter()
        stored = asyncio.run(_backfill(fake.base_url, Path(tmp) / "raw", days, store=True))
        store_s = time.perf_counter() - started
    rows.append(
        result(
            "history.backfill candles",
            stored / store_s,
            "candles/s",
            "fetch only",
            fetched / fetch_s,
            note=f"{n_days} days of 1 m candles, wall",
        )
    )
    n = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "BTCUSDT2026-01-01.csv.gz"
        _write_csv(src, n)
        started = time.perf_counter()
        pacsv.read_csv(src)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        summary = import_trade_files(Path(tmp) / "raw", [src])
        import_s = time.perf_counter() - started
    assert summary.rows_stored == n
    rate = n / import_s
    rows.append(
        result(
            "history.import trades",
            rate,
            "rows/s",
            "pyarrow read_csv",
            n / read_s,
            note=f"{n} rows, wall",
        )
    )
    rows.append(
        Result("history.import 1 M rows", 1_000_000 / rate, "s", note="aim: < 60 s per day")
    )
    return rows
