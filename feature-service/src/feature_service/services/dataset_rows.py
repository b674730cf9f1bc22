"""A dataset build's feature rows, streamed: one replay into a spill file, read back in batches.

The replay (the expensive part: every stored event through the live engine) runs once and
writes its rows to a Parquet spill file in row groups of ``batch_rows``, so memory holds one
batch whatever the period. Reading it back gives the rows in the same batches as pandas frames
with the dtypes the whole period would have in one frame: Arrow's conversion makes an int or
bool column float64 or object only when it holds a null, which a single batch cannot know; the
spill pass counts nulls per column, so every batch gets the whole period's dtype and the split
files come out as the whole-frame build wrote them. A second read (the random split counts its
rows first) costs a Parquet scan, not a replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.datasets import DatasetBuildRequest, Period
from feature_service.engine.core import FeatureEngine
from feature_service.engine.offline import vector_schema, vectors_to_table
from feature_service.engine.vector import FeatureVector
from feature_service.engine.warmup import Lookbacks
from feature_service.features.library import FeaturePlan
from feature_service.ingest import IngestBoundary
from feature_service.ingest.replay import stored_events
from feature_service.market.events import Kline, Trade
from feature_service.services.state_asof import state_as_of

ProgressFn = Callable[[dict[str, Any]], None]
REFERENCE_PRICE = "reference_price"


class Progress:
    """Replay progress by receive time through the read window, with an ETA."""

    def __init__(self, window: Period, report: ProgressFn | None) -> None:
        self._window = window
        self._report = report
        self._started = time.monotonic()
        self._last = 0.0
        self.rows = 0

    def update(self, t_us: int, stage: str = "replay", *, force: bool = False) -> None:
        if self._report is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        span = max(1, self._window.end_us - self._window.start_us)
        replay = min(1.0, max(0.0, (t_us - self._window.start_us) / span))
        fraction = 0.9 * replay if stage == "replay" else 0.95 if stage == "split" else 1.0
        elapsed = now - self._started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        self._report(
            {
                "stage": stage,
                "fraction": round(fraction, 4),
                "rows": self.rows,
                "elapsed_s": round(elapsed, 3),
                "eta_s": None if eta is None else round(eta, 3),
            }
        )


class RowGauge:
    """How many rows a build holds at once (pending vectors, the batch read back and the rows
    waiting for their target's future), and the peak: the bound the streaming keeps."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0

    def hold(self, rows: int) -> None:
        self.held += rows
        self.peak = max(self.peak, self.held)

    def release(self, rows: int) -> None:
        self.held -= rows


@dataclass(frozen=True, slots=True)
class SpilledRows:
    path: Path
    rows: int
    # int and bool columns with a null somewhere in the period (float64 / object throughout)
    nullable: frozenset[str]


def spill_rows(
    req: DatasetBuildRequest,
    raw_root: Path,
    window: Period,
    keep: Period,
    progress: Progress,
    plan: FeaturePlan,
    path: Path,
    *,
    batch_rows: int,
    gauge: RowGauge,
) -> SpilledRows:
    """Feature rows of ``req.interval_s`` with close times in ``keep``, replaying every stored
    event of ``window`` through the engine, written to ``path`` ``batch_rows`` at a time.

    Each row also gets ``reference_price`` (the last trade price, else the last confirmed candle
    close, received before the row's time): the target's price when the window has no order
    book at all (backfilled klines, imported trades), so such a dataset still has labels."""
    # A plan with normalisation samples every 1 s close, so the engine must close them all.
    intervals = {req.interval_s, 1} if plan.needs_every_second else {req.interval_s}
    # State as of the window's start from the stored history before it (the last checkpoint or
    # snapshot, the candle lookback, ...): rows equal what live published, whatever the period.
    boundary = IngestBoundary()
    engine, seeded = state_as_of(
        raw_root,
        [req.symbol],
        window.start_us,
        engine=FeatureEngine(intervals_s=sorted(intervals), plan=plan),
        boundary=boundary,
        lookbacks=Lookbacks.for_plan(plan),
    )
    schema = vector_schema(plan).append(pa.field(REFERENCE_PRICE, pa.float64()))
    watched = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)]
    nullable: set[str] = set()
    pending: list[FeatureVector] = []
    prices: list[float | None] = []
    # Seeded from before the window, so a period's first rows carry the price the whole
    # stream's rebuild (and live) had there.
    last_trade: float | None = seeded.last_trade_price.get(req.symbol)
    last_close: float | None = seeded.last_candle_close.get(req.symbol)
    writer = pq.ParquetWriter(path, schema, compression="lz4")

    def take(vectors: list[FeatureVector]) -> None:
        for v in vectors:
            if v.interval_s == req.interval_s and keep.start_us <= v.timestamp <= keep.end_us:
                pending.append(v)
                prices.append(last_trade if last_trade is not None else last_close)
                gauge.hold(1)
                if len(pending) >= batch_rows:  # inside the loop: a long quiet gap closes
                    flush()  # many boundaries at once

    def flush() -> None:
        if not pending:
            return
        table = vectors_to_table(pending, plan=plan)
        table = table.append_column(REFERENCE_PRICE, pa.array(prices, pa.float64()))
        nullable.update(name for name in watched if table.column(name).null_count)
        writer.write_table(table)
        # The quality monitor keeps its per-minute summaries and incidents for a reader the
        # live service has (quality_live) and a build has not: dropped here, or they would
        # grow with the period (8,640 minutes in 6 days).
        engine.quality.drain()
        progress.rows += len(pending)
        gauge.release(len(pending))
        pending.clear()
        prices.clear()

    try:
        events = stored_events(
            RawReader(raw_root, typed=True),
            boundary,
            symbols=[req.symbol],
            start_us=window.start_us,
            end_us=window.end_us,
        )
        for event in events:
            # Vectors closed by this event precede it: the reference price moves after them.
            take(engine.process(event))
            if isinstance(event, Trade):
                last_trade = event.price
            elif isinstance(event, Kline) and event.confirmed:
                last_close = event.close
            progress.update(event.receive_ts)
        # Boundaries after the last stored event close as the live timer would close them.
        take(engine.advance_to(window.end_us))
        flush()
    finally:
        writer.close()
    return SpilledRows(path, progress.rows, frozenset(nullable))


def conform_dtypes(frame: pd.DataFrame, nullable: set[str] | frozenset[str]) -> pd.DataFrame:
    """``frame`` (one batch) with the dtypes of the whole period: an int column that holds a
    null somewhere is float64, a bool one object, in every batch."""
    casts: dict[str, Any] = {}
    for name in nullable:
        if name not in frame.columns:
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            casts[name] = object
        elif pd.api.types.is_integer_dtype(dtype):
            casts[name] = "float64"
    return frame.astype(casts) if casts else frame


def read_rows(
    spilled: SpilledRows, *, batch_rows: int, gauge: RowGauge, drop: tuple[str, ...] = ()
) -> Iterator[pd.DataFrame]:
    """The spilled rows in batches of ``batch_rows``, as pandas frames (``gauge`` holds each
    batch; the consumer releases the rows it is done with)."""
    source = pq.ParquetFile(spilled.path)
    try:
        for batch in source.iter_batches(batch_size=batch_rows):
            frame = conform_dtypes(batch.to_pandas(), spilled.nullable)
            if drop:
                frame = frame.drop(columns=list(drop))
            gauge.hold(len(frame))
            yield frame
    finally:
        source.close()
