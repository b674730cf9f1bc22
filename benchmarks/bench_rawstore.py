"""Raw storage: rows written durably per second, bytes on disk per message, buffer memory.

Input: ws-gateway envelopes of every stored kind, parsed once up front -- the synthetic market of
``bench_features`` (``orderbook.50`` deltas, trades, tickers), book snapshots from ``BookSim``,
confirmed 1 m klines (``history_klines``) and funding messages.

Rows (wall time: a durable write waits for the disk, which CPU time would not see):
- ``rawstore.write <kind>``: ``RawWriterSync.write_events(events, bodies)`` into a fresh store
  (one part file per kind at these sizes: its default batch is 100,000 rows): rows -> columns,
  Parquet (zstd), fsync of file and folder, rename. Baseline: ``pq.write_table`` of an
  equivalent table (the writer's own columns, built beforehand, untimed) with the same
  compression, then an fsync of the file: the ratio is what the writer adds to a bare pyarrow
  write, mostly building the columns from Python objects.
- ``rawstore.async write``: the live writer (``RawWriter``: ``submit`` per event, batches of
  ``flush_rows`` written in worker threads) for order book deltas, with the live default of
  5,000 rows and with 500 (a live buffer holds one symbol-kind until it is 1 s old, so with
  many symbols the batches are small); baseline the same batches with ``pq.write_table`` +
  fsync.
- ``rawstore.bytes/msg <kind>``: bytes of the part files per message; baseline the bare pyarrow
  file (pyarrow's defaults otherwise: dictionary encoding and statistics on every column).
- ``rawstore.buffer memory``: what ``RawWriter`` keeps alive per 10,000 buffered messages
  (tracemalloc: the parsed events and the bodies, which would otherwise be freed once applied,
  plus its rows); baseline the JSON bodies alone.
Each timed pair runs interleaved (writer, baseline, writer, ...), best of ``repeat``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_book import (
    BOOK_TOPIC,
    START_US,
    BookSim,
    Wire,
    book_payload,
)
from benchmarks.bench_features import FUNDING_TOPIC, history_klines, synth_market
from benchmarks.common import Result, best, result
from feature_service.adapters.rawstore.layout import Kind, kind_of
from feature_service.adapters.rawstore.schema import build_table
from feature_service.adapters.rawstore.writer import RawWriter, RawWriterSync
from feature_service.market.events import MarketEvent
from feature_service.market.parsing import parse_message

SYMBOL = "BTCUSDT"
COMPRESSION = "zstd"
ASYNC_FLUSH_ROWS = 5_000  # the live default (Settings.raw_flush_rows)
SMALL_FLUSH_ROWS = 500
MEMORY_MESSAGES = 10_000
KIND_LABELS: dict[Kind, str] = {
    Kind.ORDERBOOK_DELTAS: "orderbook deltas",
    Kind.ORDERBOOK_SNAPSHOTS: "orderbook snapshots",
    Kind.TRADES: "trades",
    Kind.KLINES: "klines",
    Kind.TICKER: "ticker",
    Kind.FUNDING: "funding",
}


@dataclass(slots=True)
class KindData:
    kind: Kind
    events: list[MarketEvent]
    bodies: list[bytes]

    @property
    def json_bytes(self) -> int:
        return sum(map(len, self.bodies))


# --------------------------------------------------------------------------- input


def snapshot_messages(n: int, seed: int = 5, every: int = 10) -> list[tuple[int, bytes]]:
    """``n`` full ``orderbook.50`` snapshots of an evolving book, one per ``every`` deltas."""
    rng = random.Random(seed)
    sim = BookSim(rng)
    wire = Wire(random.Random(seed + 1))
    out: list[tuple[int, bytes]] = []
    seq = 8_000_000_000
    for i in range(n):
        for _ in range(every):
            sim.step()
        bids, asks, u = sim.snapshot()
        seq += rng.randint(1, 400)
        ts = START_US + i * 200_000
        payload = book_payload(bids, asks, u, seq, "snapshot")
        out.append(wire.envelope("orderbook", BOOK_TOPIC, ts, payload))
    return out


def funding_messages(n: int, seed: int = 6) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    wire = Wire(random.Random(seed + 1))
    out: list[tuple[int, bytes]] = []
    for i in range(n):
        ts = START_US + i * 1_000_000
        next_ms = (ts // 1_000 // 28_800_000 + 1) * 28_800_000
        payload = {
            "symbol": SYMBOL,
            "fundingRate": f"{rng.uniform(-0.0005, 0.0005):.6f}",
            "fundingRateTimestamp": str(next_ms - 28_800_000),
            "nextFundingTime": str(next_ms),
            "topic": FUNDING_TOPIC,
        }
        out.append(wire.envelope("funding", FUNDING_TOPIC, ts, payload))
    return out


def build_inputs(minutes: int, snapshots: int, klines: int, funding: int) -> dict[Kind, KindData]:
    by_kind: dict[Kind, KindData] = {k: KindData(k, [], []) for k in KIND_LABELS}
    market = synth_market(minutes, history=0)
    # Klines: confirmed 1 m candles only (the live stream's few are mostly unconfirmed updates),
    # all on one day, as most of a day's kline file is.
    live = [m for m in market.live if b'"event_type":"kline"' not in m[1]]
    kline_end = START_US + klines * 60_000_000
    streams = [
        live,
        snapshot_messages(snapshots),
        history_klines(klines, last_close_tick=1_000_000, seed=13, end_us=kline_end),
        funding_messages(funding),
    ]
    for messages in streams:
        for receive_ts, body in messages:
            for event in parse_message(body, receive_ts=receive_ts):
                data = by_kind[kind_of(event)]
                data.events.append(event)
                data.bodies.append(body)
    return by_kind


# --------------------------------------------------------------------------- timing


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dir_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of the part files under ``root``."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.endswith(".parquet"):
                total += os.path.getsize(os.path.join(dirpath, name))
                files += 1
    return total, files


def bare_write(tables: Sequence[pa.Table], root: Path) -> int:
    """``pq.write_table`` + fsync of each table; returns the bytes written."""
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, table in enumerate(tables):
        path = root / f"bare-{i}.parquet"
        pq.write_table(table, path, compression=COMPRESSION)
        _fsync_file(path)
        total += path.stat().st_size
    return total


def sync_write(data: KindData, root: Path) -> int:
    written = RawWriterSync(root, compression=COMPRESSION).write_events(data.events, data.bodies)
    rows = sum(p.rows for p in written)
    if rows != len(data.events):
        raise RuntimeError(f"{data.kind}: {rows} rows written of {len(data.events)}")
    return sum(p.bytes for p in written)


def async_write(data: KindData, root: Path, flush_rows: int = ASYNC_FLUSH_ROWS) -> int:
    async def main() -> int:
        writer = RawWriter(root, flush_rows=flush_rows, flush_age_s=3600.0)
        await writer.start()
        futures = [writer.submit(e, b) for e, b in zip(data.events, data.bodies, strict=True)]
        await writer.close()
        await asyncio.gather(*futures)
        if sum(writer.stats.rows_written.values()) != len(data.events):
            raise RuntimeError(f"async writer: {writer.stats.rows_written}")
        return writer.stats.bytes_written

    return asyncio.run(main())


def equivalent_tables(data: KindData, chunk: int | None = None) -> list[pa.Table]:
    """The writer's own columns for the same rows (built untimed), whole or in chunks."""
    rows = [(e, b, i, 0) for i, (e, b) in enumerate(zip(data.events, data.bodies, strict=True))]
    if chunk is None:
        return [build_table(data.kind, rows)]
    return [build_table(data.kind, rows[i : i + chunk]) for i in range(0, len(rows), chunk)]


def timed_pair(
    work: Callable[[Path], int], base: Callable[[Path], int], scratch: Path, repeat: int
) -> tuple[float, float, int, int]:
    """Best wall seconds of ``work`` and ``base`` run alternately, each into a fresh folder;
    also the bytes each wrote (the last run's)."""
    times: dict[str, list[float]] = {"work": [], "base": []}
    sizes = {"work": 0, "base": 0}
    for r in range(repeat):
        for name, fn in (("work", work), ("base", base)):
            target = scratch / f"{name}-{r}"
            gc.collect()
            started = time.perf_counter()
            sizes[name] = fn(target)
            times[name].append(time.perf_counter() - started)
            shutil.rmtree(target, ignore_errors=True)
    return best(times["work"]), best(times["base"]), sizes["work"], sizes["base"]


def write_rows(data: KindData, scratch: Path, repeat: int) -> tuple[Result, Result]:
    """The write rate and the bytes per message of one kind."""
    n = len(data.events)
    label = KIND_LABELS[data.kind]
    tables = equivalent_tables(data)
    work_s, base_s, work_bytes, base_bytes = timed_pair(
        lambda root: sync_write(data, root),
        lambda root: bare_write(tables, root),
        scratch,
        repeat,
    )
    json_per_msg = data.json_bytes / n
    note = f"{n:,} msgs, {json_per_msg:.0f} B JSON each; best of {repeat}"
    return (
        result(
            f"rawstore.write {label}",
            n / work_s,
            "rows/s",
            "pq.write_table + fsync (prebuilt)",
            n / base_s,
            f"wall, RawWriterSync, durable; {note}",
        ),
        result(
            f"rawstore.bytes/msg {label}",
            work_bytes / n,
            "B",
            "bare pyarrow file",
            base_bytes / n,
            f"{COMPRESSION}; {work_bytes / data.json_bytes:.1%} of the JSON bodies; {note}",
        ),
    )


def async_rows(data: KindData, scratch: Path, repeat: int, flush_rows: int) -> list[Result]:
    n = len(data.events)
    tables = equivalent_tables(data, flush_rows)
    work_s, base_s, _, _ = timed_pair(
        lambda root: async_write(data, root, flush_rows),
        lambda root: bare_write(tables, root),
        scratch,
        repeat,
    )
    return [
        result(
            f"rawstore.async write {KIND_LABELS[data.kind]} ({flush_rows:,}-row batches)",
            n / work_s,
            "rows/s",
            f"pq.write_table + fsync per {flush_rows:,} rows",
            n / base_s,
            f"wall, RawWriter (submit per event, {len(tables)} batches in worker threads), "
            f"durable; {n:,} msgs; best of {repeat}",
        )
    ]


# --------------------------------------------------------------------------- memory


@dataclass(slots=True)
class Memory:
    buffered: int  # bytes kept alive by the writer's buffers
    flush_peak: int  # Python heap peak above that while writing them
    arrow: int  # size of the Arrow table the flush builds (outside tracemalloc)
    json: int  # bytes of the bodies alone


def buffer_memory(data: KindData, root: Path, n: int = MEMORY_MESSAGES) -> Memory:
    """Parse ``n`` messages from fresh copies of their bodies (as consumed: a new bytes object
    per delivery), submit them and drop every other reference: what stays allocated is what
    the writer holds until its flush."""
    sources = [(e.receive_ts, b) for e, b in zip(data.events[:n], data.bodies[:n], strict=True)]
    json_bytes = sum(len(b) for _, b in sources)

    async def main() -> tuple[int, int]:
        writer = RawWriter(root, flush_rows=10 * n, flush_age_s=3600.0)
        await writer.start()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for receive_ts, body in sources:
                raw = bytes(memoryview(body))  # a new object, like a delivery's body
                for event in parse_message(raw, receive_ts=receive_ts):
                    writer.submit(event, raw)
            del raw, event
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.reset_peak()
            await writer.close()
            peak = tracemalloc.get_traced_memory()[1] - before - held
        finally:
            tracemalloc.stop()
        return held, peak

    held, peak = asyncio.run(main())
    arrow = equivalent_tables(KindData(data.kind, data.events[:n], data.bodies[:n]))[0].nbytes
    return Memory(held, max(peak, 0), arrow, json_bytes)


def memory_row(data: KindData, scratch: Path) -> Result:
    n = min(MEMORY_MESSAGES, len(data.events))
    mem = buffer_memory(data, scratch / "memory", n)
    shutil.rmtree(scratch / "memory", ignore_errors=True)
    scale = MEMORY_MESSAGES / n / 1e6
    return result(
        f"rawstore.buffer memory {KIND_LABELS[data.kind]}",
        mem.buffered * scale,
        "MB/10k msgs",
        "the JSON bodies alone",
        mem.json * scale,
        f"tracemalloc; the flush adds a {mem.flush_peak * scale:.1f} MB Python-heap peak and "
        f"a {mem.arrow * scale:.1f} MB Arrow table; {n:,} msgs measured",
    )


# --------------------------------------------------------------------------- entry points


def measure(
    *,
    minutes: int,
    snapshots: int,
    klines: int,
    funding: int,
    repeat: int,
) -> list[Result]:
    inputs = build_inputs(minutes, snapshots, klines, funding)
    rows: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-rawstore-") as tmp:
        scratch = Path(tmp)
        sizes: list[Result] = []
        for kind in KIND_LABELS:
            if not inputs[kind].events:
                raise RuntimeError(f"no {kind} input")
            write, size = write_rows(inputs[kind], scratch, repeat)
            rows.append(write)
            sizes.append(size)
        deltas = inputs[Kind.ORDERBOOK_DELTAS]
        rows += async_rows(deltas, scratch, repeat, ASYNC_FLUSH_ROWS)
        # What a live batch looks like with 10 symbols: each buffer holds one symbol's second.
        rows += async_rows(deltas, scratch, repeat, SMALL_FLUSH_ROWS)
        rows += sizes
        rows.append(memory_row(inputs[Kind.ORDERBOOK_DELTAS], scratch))
        rows.append(memory_row(inputs[Kind.TRADES], scratch))
    return rows


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(minutes=2, snapshots=100, klines=300, funding=300, repeat=1)
    return measure(minutes=15, snapshots=2_000, klines=1_200, funding=5_000, repeat=3)
