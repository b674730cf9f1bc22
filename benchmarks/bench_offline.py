"""Offline rebuild: raw store -> FeatureEngine -> Parquet of 1 s vectors, and what a month costs.

Input: one hour (``minutes``) of the synthetic BTCUSDT market of ``bench_features`` (order book
deltas every 20 ms, 10-20 trades a second, 100 ms tickers, klines, funding), stored once with
``RawWriterSync`` into a temporary raw store, bodies as consumed, receive times as stamped.

Rows (wall time: the rebuild reads and writes files, and pyarrow decodes in its own threads):
- ``offline.rebuild``: ``RawReader(root).iter_events(symbols=[...])`` ->
  ``FeatureEngine(intervals_s=[1])`` -> ``VectorParquetWriter`` (``compute_to_parquet``, what
  the CLI runs), in stored rows (events) per second. Baseline: the same messages replayed
  through the live path, ``LiveEngine.ingest(body)`` with a fake clock returning each message's
  receive time (parse + the same engine; no bus, no raw store). Both produce the same vectors,
  which is checked.
- ``offline.month projection``: 30 days x this hour's events / the rebuild rate, against the
  live path at its rate. ``offline.month vs SC-005``: SC-005's 2 hours / that projection.
Passes run alternately (rebuild, live, rebuild, ...), best of ``repeat``.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_book import SYMBOL, parse_all
from benchmarks.bench_features import Market, synth_market
from benchmarks.common import Result, best, result
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine
from feature_service.engine.offline import compute_to_parquet

SC005_MINUTES = 120.0  # SC-005: one month of one symbol in <= 2 hours
AIM_MINUTES = 15.0  # our own aim, on one core
MONTH_HOURS = 30 * 24


class ReplayClock:
    """The live engine's clock during a replay: reads whatever receive time was set last."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 0.0


@dataclass(slots=True)
class Pass:
    seconds: float
    cpu_seconds: float  # the whole process, every thread
    events: int
    vectors: int
    last_features: dict[str, object]


def store_market(market: Market, root: Path) -> tuple[int, float]:
    """Write the hour into a raw store: (rows, wall seconds)."""
    events = parse_all(market.live)
    bodies = [body for _, body in market.live]
    started = time.perf_counter()
    written = RawWriterSync(root).write_events(events, bodies)
    return sum(p.rows for p in written), time.perf_counter() - started


def rebuild_pass(root: Path, output: Path) -> Pass:
    gc.collect()
    engine = FeatureEngine(intervals_s=[1])
    cpu_started = time.process_time()
    started = time.perf_counter()
    summary = compute_to_parquet(
        RawReader(root).iter_events(symbols=[SYMBOL]), output, engine, intervals_s=[1]
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    if summary.rows != engine.vectors_emitted:
        raise RuntimeError(f"{summary.rows} rows written of {engine.vectors_emitted} vectors")
    last = engine.states[SYMBOL].compute(summary.last_ts or 0).complete()
    return Pass(seconds, cpu_seconds, summary.events, summary.rows, last)


def live_pass(market: Market) -> Pass:
    gc.collect()
    clock = ReplayClock()
    engine = FeatureEngine(intervals_s=[1])
    live = LiveEngine(engine, clock)
    ingest = live.ingest
    last_ts = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    for receive_ts, body in market.live:
        clock.now = receive_ts
        ingest(body)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    vector = live.latest_vector(SYMBOL, 1)
    if vector is not None:
        last_ts = vector.timestamp
    last = engine.states[SYMBOL].compute(last_ts).complete()
    return Pass(seconds, cpu_seconds, engine.events_processed, engine.vectors_emitted, last)


def _check_same(rebuild: Pass, live: Pass) -> None:
    # Same messages, same engine: any difference means one side timed something else.
    if (rebuild.events, rebuild.vectors) != (live.events, live.vectors):
        raise RuntimeError(
            f"rebuild saw {rebuild.events} events / {rebuild.vectors} vectors, "
            f"live {live.events} / {live.vectors}"
        )
    if rebuild.last_features != live.last_features:
        raise RuntimeError("rebuild and live replay end in different states")


def measure(*, minutes: int, repeat: int, seed: int = 11) -> list[Result]:
    market = synth_market(minutes, history=0, seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        root = Path(tmp) / "raw"
        stored, store_s = store_market(market, root)
        if stored != len(market.live):
            raise RuntimeError(f"{stored} rows stored of {len(market.live)} messages")
        rebuilds: list[Pass] = []
        lives: list[Pass] = []
        for r in range(repeat):
            rebuilds.append(rebuild_pass(root, Path(tmp) / f"vectors-{r}.parquet"))
            lives.append(live_pass(market))
            _check_same(rebuilds[-1], lives[-1])
    events = rebuilds[0].events
    vectors = rebuilds[0].vectors
    fastest = min(rebuilds, key=lambda p: p.seconds)
    rebuild_rate = events / fastest.seconds
    live_rate = events / best([p.seconds for p in lives])
    per_hour = events * 60 / minutes
    month_events = per_hour * MONTH_HOURS
    rebuild_min = month_events / rebuild_rate / 60
    live_min = month_events / live_rate / 60
    data = (
        f"{events:,} events ({per_hour:,.0f}/h) -> {vectors:,} 1 s vectors; "
        f"raw store written at {stored / store_s:,.0f} rows/s; best of {repeat}"
    )
    verdict = "met" if rebuild_min <= AIM_MINUTES else "MISSED"
    return [
        result(
            "offline.rebuild",
            rebuild_rate,
            "rows/s",
            "live path replay (LiveEngine.ingest)",
            live_rate,
            f"wall; RawReader -> FeatureEngine -> VectorParquetWriter; "
            f"{fastest.cpu_seconds / fastest.seconds:.2f} CPU s per wall s; {data}",
        ),
        result(
            "offline.month projection",
            rebuild_min,
            "min",
            "live path replay, same month",
            live_min,
            f"30 days x {per_hour:,.0f} events/h, one symbol, one core; "
            f"aim <= {AIM_MINUTES:.0f} min: {verdict}",
        ),
        Result(
            name="offline.month vs SC-005",
            value=SC005_MINUTES / rebuild_min,
            unit="x",
            note=f"SC-005 2 h budget / projected {rebuild_min:.1f} min",
        ),
    ]


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(minutes=3, repeat=1)
    return measure(minutes=60, repeat=2)
