"""Archive of the vectors the live engine published, so identity with the offline rebuild can be
checked on any stored period (`feature-service validate-identity`).

Layout: ``{root}/{interval}/{YYYY-MM-DD}/{SYMBOL}/part-{first_ts}-{token}.parquet`` with the
dataset column layout plus ``session_start`` (when the live process that computed the vector
started: its state began empty then, so a faithful offline replay starts there too).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.adapters.rawstore.layout import (
    US_PER_DAY,
    day_number,
    day_of,
    is_day_name,
    write_table_atomic,
)
from feature_service.engine.offline import vector_schema, vectors_to_table
from feature_service.engine.vector import FeatureVector, interval_label
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.logging import get_logger

log = get_logger(__name__)


def archive_schema(plan: FeaturePlan = BUNDLED_PLAN) -> pa.Schema:
    return vector_schema(plan).append(pa.field("session_start", pa.timestamp("us", tz="UTC")))


class VectorArchive:
    def __init__(
        self,
        root: Path,
        *,
        session_start_us: int,
        flush_rows: int = 20_000,
        flush_age_s: float = 5.0,
    ) -> None:
        self.root = root
        self.session_start_us = session_start_us
        self._flush_rows = flush_rows
        self._flush_age_s = flush_age_s
        self._pending: list[FeatureVector] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.rows_written = 0
        self.failures = 0
        # Columns follow each vector's registry version (a file never mixes two versions).
        self.plans: dict[str, FeaturePlan] = {BUNDLED_PLAN.version: BUNDLED_PLAN}

    def add(self, vectors: Iterable[FeatureVector]) -> None:
        self._pending.extend(vectors)
        if len(self._pending) >= self._flush_rows and self._task is not None:
            asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                await asyncio.to_thread(self._write, rows)
                self.rows_written += len(rows)
            except Exception:
                # The archive is an audit trail, not the product: log, count, carry on.
                self.failures += 1
                log.exception("vector_archive_write_failed", rows=len(rows))

    def _write(self, rows: list[FeatureVector]) -> None:
        groups: dict[tuple[int, str, str, str], list[FeatureVector]] = defaultdict(list)
        for v in rows:
            groups[(v.interval_s, day_of(v.timestamp), v.symbol, v.registry_version)].append(v)
        for (interval_s, day, symbol, version), vectors in groups.items():
            plan = self.plans.get(version, BUNDLED_PLAN)
            table = vectors_to_table(vectors, plan=plan)
            table = table.append_column(
                pa.field("session_start", pa.timestamp("us", tz="UTC")),
                pa.array([self.session_start_us] * len(vectors), pa.timestamp("us", tz="UTC")),
            )
            name = f"part-{vectors[0].timestamp}-{secrets.token_hex(4)}.parquet"
            path = self.root / interval_label(interval_s) / day / symbol / name
            write_table_atomic(table, path)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_age_s)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vector-archive")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def read_archived(
    root: Path, symbol: str, interval_s: int, start_us: int, end_us: int
) -> pd.DataFrame:
    """Archived live vectors with ``start_us <= timestamp < end_us``, sorted by time."""
    base = root / interval_label(interval_s)
    frames = []
    # Only the day folders the range touches: an archive grows by a folder a day.
    first, last = start_us // US_PER_DAY, (end_us - 1) // US_PER_DAY
    days = sorted(p.name for p in base.iterdir() if is_day_name(p.name)) if base.is_dir() else []
    for day in days:
        if first <= day_number(day) <= last:
            for path in sorted((base / day / symbol).glob("part-*.parquet")):
                frames.append(pq.read_table(path).to_pandas())
    if not frames:
        return pd.DataFrame(columns=archive_schema().names)
    df = pd.concat(frames, ignore_index=True)
    stamps = df["timestamp"].dt.as_unit("us").astype("int64")
    mask = (stamps >= start_us) & (stamps < end_us)
    return df[mask].sort_values("timestamp", kind="stable").reset_index(drop=True)
