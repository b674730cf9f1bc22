"""One dataset build, start to finish, as a plain synchronous function (run in a worker process).

raw Parquet --(RawReader, receive order)--> FeatureEngine (the live code) --> feature rows,
spilled in row groups --> targets from the future only (a look-ahead of one horizon) -->
splits with purge + embargo, streamed into their files --> leakage check --> manifest.
Memory is bounded by the batch size, not the period (issue 9). Nothing here knows about HTTP,
the database or the bus.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_service import __version__
from feature_service.adapters.rawstore.layout import (
    MARKET_KINDS,
    US_PER_DAY,
    day_number,
    iter_symbol_dirs,
)
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.datasets import (
    DatasetBuildRequest,
    LeakageGuard,
    Period,
    build_manifest,
    check_no_leakage,
    content_hash,
    iter_targets,
    manifest_hash,
    timestamps_us,
    walk_forward_counts,
    walk_forward_warnings,
    write_manifest,
)
from feature_service.datasets.stream import RandomStream, TimeBasedStream, WalkForwardStream
from feature_service.engine.offline import QUALITY_COLUMNS
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.registry.loader import Registry
from feature_service.services.dataset_rows import (
    REFERENCE_PRICE,
    Progress,
    ProgressFn,
    RowGauge,
    SpilledRows,
    read_rows,
    spill_rows,
)

# Rows per batch of every pass over the spilled rows (and per row group of the split files):
# a build holds about this many rows (plus one target horizon of rows) whatever its period.
BATCH_ROWS = 10_000
# Vectors held before they go to the spill as one table: a FeatureVector with its dicts costs
# ~7 KB against ~0.5 KB as a table row (2 days of 1 s rows: peak RSS 588 MB at 50,000, 230 MB
# at 5,000).
VECTOR_BATCH = 5_000
SPILL_FILE = ".rows.spill.parquet"
META_COLUMNS = ("timestamp", "symbol", "interval_s")
TARGET_COLUMNS = ("target", "target_return")


class BuildFailed(Exception):
    """A build that cannot complete, with a message meant for the requester."""


@dataclass(slots=True)
class BuildResult:
    files: dict[str, str]  # split (or fold_k_split) -> file path relative to the dataset dir
    counts: dict[str, int]  # train / validation / test records
    splits_info: dict[str, Any]
    folds: list[dict[str, Any]] | None
    warnings: list[str]
    manifest: dict[str, Any]
    rows: int
    dropped_targets: int
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def available_period(raw_root: Path, symbol: str) -> Period | None:
    found = RawReader(raw_root).available_range(symbol)
    return None if found is None else Period(found[0], found[1])


def check_data_available(raw_root: Path, req: DatasetBuildRequest) -> str | None:
    """A message naming what exists when the requested span has no raw data, else None."""
    span = req.span()
    if span is None:
        return None
    have = available_period(raw_root, req.symbol)
    if have is None:
        return f"no raw data stored for {req.symbol}"
    if have.end_us <= span.start_us or have.start_us >= span.end_us:
        return (
            f"no raw data for {req.symbol} in the requested period {_fmt(span)}; "
            f"available: {_fmt(have)}"
        )
    return None


def _fmt(p: Period) -> str:
    d = p.to_dict()
    return f"[{d['start']}, {d['end']})"


def missing_inputs(raw_root: Path, symbol: str, window: Period) -> dict[str, str]:
    """Inputs with no stored data in the window, and what that leaves null (for the manifest:
    a history of backfilled klines or imported trades says plainly what it lacks)."""
    first, last = window.start_us // US_PER_DAY, (window.end_us - 1) // US_PER_DAY
    present = {
        kind.value
        for kind, day, sym, folder in iter_symbol_dirs(raw_root, MARKET_KINDS)
        if sym == symbol and first <= day_number(day) <= last and any(folder.glob("part-*"))
    }
    wanted = {
        "orderbook": ("orderbook/snapshots", "book features are null (no_book)"),
        "trades": ("trades", "trade-flow features are null (no trades)"),
        "klines": ("klines", "candle features are null (warming_up)"),
        "ticker": ("ticker", "ticker-derived values are missing"),
        "funding": ("funding", "funding features rely on the ticker, if any"),
    }
    return {name: why for name, (kind, why) in wanted.items() if kind not in present}


def build_dataset(
    req: DatasetBuildRequest,
    registry: Registry,
    raw_root: Path,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
) -> BuildResult:
    """Replay the period once into a spill file of feature rows, then stream the rows back
    through targets, the quality filter and the splits into the split files: memory holds at
    most ``BATCH_ROWS`` rows plus one target horizon of rows, whatever the period."""
    started = time.monotonic()
    span = req.span()
    if span is None:
        raise BuildFailed("the request defines no period")
    guard = LeakageGuard.for_request(req, registry)
    window = guard.read_window(span)
    tracker = Progress(window, progress)
    keep = Period(span.start_us, span.end_us + guard.horizon_s * 1_000_000)
    missing = missing_inputs(raw_root, req.symbol, window)
    gauge = RowGauge()
    out_dir.mkdir(parents=True, exist_ok=True)
    spill = out_dir / SPILL_FILE
    try:
        spilled = spill_rows(
            req,
            raw_root,
            window,
            keep,
            tracker,
            registry.plan or BUNDLED_PLAN,
            spill,
            batch_rows=min(VECTOR_BATCH, BATCH_ROWS),
            gauge=gauge,
        )
        if not spilled.rows:
            spill.unlink()
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if the build created it and wrote nothing else
            raise BuildFailed(f"no feature rows for {req.symbol} in {_fmt(span)}")
        tracker.update(window.end_us, "split", force=True)
        # With an order book, targets come from the mid, as always.
        drop = (REFERENCE_PRICE,) if "orderbook" not in missing else ()
        rows = _LabelledRows(req, registry, spilled, gauge, drop)
        outcome = _write_splits(req, guard, span, rows, out_dir)
    finally:
        spill.unlink(missing_ok=True)
    files, counts, splits_info, folds_info, warnings, leaks = outcome
    _refuse_empty(counts, req, raw_root, span)
    if leaks and req.data_leakage_check:
        raise BuildFailed("leakage check failed: " + "; ".join(leaks))
    warnings += [f"leakage: {msg}" for msg in leaks]

    hashes = {name: content_hash(out_dir / file) for name, file in files.items()}
    have = available_period(raw_root, req.symbol)
    manifest = build_manifest(
        req,
        registry,
        __version__,
        window
        if have is None
        else Period(max(window.start_us, have.start_us), min(window.end_us, have.end_us)),
        _raw_files(raw_root, req.symbol, window),
        counts,
        folds_info,
        hashes,
    )
    manifest["outputs"] = dict(sorted(files.items()))
    manifest["warnings"] = warnings
    manifest["missing_inputs"] = missing
    if missing.get("orderbook"):
        manifest["target_price"] = "reference_price (last trade, else last candle close)"
    manifest["dropped_rows_without_target"] = rows.dropped
    manifest["quality_filter"] = req.quality_filter
    manifest["dropped_rows_quality"] = rows.dropped_quality
    manifest["content_sha256"] = manifest_hash(manifest)
    write_manifest(out_dir, manifest)
    tracker.update(window.end_us, "done", force=True)
    return BuildResult(
        files=files,
        counts={k: int(counts.get(k, 0)) for k in ("train", "validation", "test")},
        splits_info=splits_info,
        folds=folds_info,
        warnings=warnings,
        manifest=manifest,
        rows=rows.rows,
        dropped_targets=rows.dropped,
        elapsed_s=time.monotonic() - started,
        extra={"peak_rows_held": gauge.peak, "batch_rows": BATCH_ROWS},
    )


class _LabelledRows:
    """The dataset's rows, streamed from the spill: with targets (rows wait at most one
    horizon for their future), quality-filtered, in the dataset's columns. Each pass counts
    afresh; the counts are those of the last complete pass."""

    def __init__(
        self,
        req: DatasetBuildRequest,
        registry: Registry,
        spilled: SpilledRows,
        gauge: RowGauge,
        drop: tuple[str, ...],
    ) -> None:
        self.req = req
        self.spilled = spilled
        self.gauge = gauge
        self.drop = drop
        features = list(req.selected_features(registry))
        self.columns = [*META_COLUMNS, *features, *QUALITY_COLUMNS, *TARGET_COLUMNS]
        self.rows = self.dropped = self.dropped_quality = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        self.rows = self.dropped = self.dropped_quality = 0
        batches = read_rows(self.spilled, batch_rows=BATCH_ROWS, gauge=self.gauge, drop=self.drop)
        for frame, dropped in iter_targets(batches, self.req.target_config, self.req.interval_s):
            self.gauge.release(len(frame) + dropped)
            self.dropped += dropped
            if self.req.quality_filter:
                ok = frame["quality_ok"].fillna(False).astype(bool)
                self.dropped_quality += int((~ok).sum())
                frame = frame[ok]
            frame = frame[self.columns]
            self.rows += len(frame)
            yield frame


def _write_splits(
    req: DatasetBuildRequest,
    guard: LeakageGuard,
    span: Period,
    rows: _LabelledRows,
    out_dir: Path,
) -> tuple[dict[str, str], dict[str, int], dict[str, Any], Any, list[str], list[str]]:
    """Stream the rows into the request's split files; (files, counts, splits_info, folds,
    warnings, leakage problems)."""
    fmt = req.output_format
    stream: WalkForwardStream | RandomStream | TimeBasedStream
    if req.split_strategy == "walk_forward":
        assert req.walk_forward_config is not None
        stream = WalkForwardStream(
            req.walk_forward_config, guard.horizon_s, guard.embargo_s, out_dir, fmt
        )
    elif req.split_strategy == "random":
        assert req.random_config is not None
        # The assignment is a permutation of every row of the period: count them first.
        in_span = sum(_rows_within(frame, span) for frame in rows)
        stream = RandomStream(req.random_config, span, in_span, out_dir, fmt)
    else:
        stream = TimeBasedStream(req, guard, out_dir, fmt)
    try:
        for frame in rows:
            stream.feed(frame)
        if isinstance(stream, WalkForwardStream):
            folds, paths = stream.close()
        else:
            splits, paths = stream.close()
    except BaseException:
        stream.abort()
        raise
    files = {name: path.name for name, path in paths.items()}
    leaks: list[str] = []
    if isinstance(stream, WalkForwardStream):
        folds_info = [f.info() for f in folds]
        for fold in folds:
            if not fold.skipped:
                leaks += check_no_leakage(list(fold), guard.horizon_s, guard.embargo_s)
        warnings = walk_forward_warnings(folds)
        return files, walk_forward_counts(folds), {"folds": folds_info}, folds_info, warnings, leaks
    if req.split_strategy == "time_based":
        leaks += check_no_leakage(list(splits), guard.horizon_s, guard.embargo_s)
    return files, splits.counts(), splits.info(), None, list(splits.warnings), leaks


def _rows_within(frame: pd.DataFrame, period: Period) -> int:
    lo, hi = np.searchsorted(timestamps_us(frame), [period.start_us, period.end_us])
    return int(hi - lo)


def _refuse_empty(
    counts: dict[str, int], req: DatasetBuildRequest, raw_root: Path, span: Period
) -> None:
    """A dataset is never "ready" with an empty split: fail with the reason and what exists."""
    if req.split_strategy == "walk_forward":
        wanted = ["train", "test"]  # validation exists only with more than one fold
    elif req.split_strategy == "random" and req.random_config is not None:
        rnd = req.random_config
        wanted = ["train"] + [
            name
            for name, fraction in (
                ("validation", rnd.validation_fraction),
                ("test", rnd.test_fraction),
            )
            if fraction > 0
        ]
    else:
        wanted = ["train", "validation", "test"]
    empty = [name for name in wanted if not counts.get(name)]
    if not empty:
        return
    have = available_period(raw_root, req.symbol)
    available = "nothing" if have is None else _fmt(have)
    raise BuildFailed(
        f"split(s) {', '.join(empty)} came out empty for {req.symbol} in {_fmt(span)} "
        f"(rows per split: {dict(sorted(counts.items()))}); stored raw data: {available}"
    )


def _raw_files(raw_root: Path, symbol: str, window: Period) -> list[str]:
    """The stored part files of the days the build read (for the manifest)."""
    first, last = window.start_us // US_PER_DAY, (window.end_us - 1) // US_PER_DAY
    return sorted(
        str(path.relative_to(raw_root))
        for _kind, day, sym, folder in iter_symbol_dirs(raw_root, MARKET_KINDS)
        if sym == symbol and first <= day_number(day) <= last
        for path in folder.glob("part-*.parquet")
    )
