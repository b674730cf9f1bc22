"""Continuity: warm start and period rebuilds from the raw store (issue 8).

Data: the seeded sample generator (BTCUSDT) with ``kline_hours`` of confirmed candles and
``dense_minutes`` of live-like traffic (50-level book with a delta every 20 ms, trades, 100 ms
tickers, klines, funding), stored with ``storage import`` (so book checkpoints every 60 s, as the
live service writes them).

Rows:
- ``continuity.warm start``: ``state_as_of`` for 1 symbol at the end of the stored data (what
  the service runs at start-up before consuming): the last checkpoint, 26 h of candles, the
  last trades / tickers / funding. Baseline: a cold replay of every stored event (what would be
  needed to reach the same state without state as of T).
- ``continuity.rebuild one hour``: ``rebuild_period`` of one hour in the middle of the dense
  part (state as of its start from the store, then the hour). Baseline: the same hour replayed
  by a cold engine (no state as of T: wrong rows, but the same events).

Clock: process CPU time (pyarrow decodes Parquet on its own threads, which the thread clock would
miss); the wall time of the same run is in the note. Both replays build events from the typed
columns (``adapters/rawstore/typed.py``); the cold baselines parse ``raw`` as the default
reader does, so the ratio also shows what the typed columns save.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, result
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.engine.core import FeatureEngine
from feature_service.sample.generator import generate
from feature_service.services.importer import import_recording
from feature_service.services.state_asof import rebuild_period, state_as_of

SYMBOL = "BTCUSDT"
S = 1_000_000


def _clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(started: tuple[float, float]) -> tuple[float, float]:
    """(CPU s, wall s) since ``started``."""
    cpu, wall = _clocks()
    return cpu - started[0], wall - started[1]


def _cold(root: Path, start: int | None, end: int | None) -> tuple[float, int]:
    started = _clocks()
    engine = FeatureEngine()
    n = 0
    for event in RawReader(root).iter_events(symbols=[SYMBOL], start_us=start, end_us=end):
        engine.process(event)
        n += 1
    return _since(started)[0], n


def measure(kline_hours: int, dense_minutes: int, rebuild_minutes: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec.jsonl.gz"
        generate(rec, seed=3, kline_hours=kline_hours, dense_minutes=dense_minutes)
        root = Path(tmp) / "raw"
        summary = import_recording(rec, root)
        assert summary.first_us is not None and summary.last_us is not None
        t_end = summary.last_us + 1
        dense_start = t_end - dense_minutes * 60 * S

        started = _clocks()
        _, report = state_as_of(root, [SYMBOL], t_end)
        warm_s, warm_wall = _since(started)
        cold_s, cold_events = _cold(root, None, t_end)
        note = (
            f"{kline_hours} h stored ({summary.stored:,} messages, {summary.checkpoints} "
            f"checkpoints; dense traffic in the last {dense_minutes} min); replayed "
            f"{report.events:,} events, book from {report.book_from[SYMBOL]}; "
            f"wall {warm_wall:.1f} s"
        )
        rows = [
            result(
                "continuity.warm start (1 symbol, state as of now)",
                warm_s,
                "s",
                f"cold replay of all {cold_events:,} stored events",
                cold_s,
                note,
            )
        ]

        a = dense_start + (dense_minutes - rebuild_minutes) * 30 * S
        b = a + rebuild_minutes * 60 * S
        started = _clocks()
        vectors = rebuild_period(root, SYMBOL, a, b)
        rebuild_s, rebuild_wall = _since(started)
        base_s, base_events = _cold(root, a, b)
        rows.append(
            result(
                f"continuity.rebuild {rebuild_minutes} min mid-stream",
                rebuild_s,
                "s",
                "the same period replayed cold (no state as of T)",
                base_s,
                f"{len(vectors):,} vectors, {base_events:,} events in the period; "
                f"wall {rebuild_wall:.1f} s",
            )
        )
        return rows


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(kline_hours=24, dense_minutes=12, rebuild_minutes=5)
    return measure(kline_hours=24, dense_minutes=75, rebuild_minutes=60)
