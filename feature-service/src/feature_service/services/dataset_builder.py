"""One dataset build, start to finish, as a plain synchronous function (run in a worker thread).

raw Parquet --(RawReader, receive order)--> FeatureEngine (the live code) --> feature rows
--> targets from the future only --> splits with purge + embargo --> leakage check --> files
--> manifest. Nothing here knows about HTTP, the database or the bus.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    add_targets,
    build_manifest,
    check_no_leakage,
    content_hash,
    manifest_hash,
    random_split,
    time_based_split,
    walk_forward_counts,
    walk_forward_folds,
    walk_forward_warnings,
    write_manifest,
    write_split,
)
from feature_service.engine.core import FeatureEngine
from feature_service.engine.offline import QUALITY_COLUMNS, vectors_to_table
from feature_service.engine.vector import FeatureVector
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.ingest import IngestBoundary
from feature_service.ingest.replay import stored_events
from feature_service.market.events import Kline, Trade
from feature_service.registry.loader import Registry
from feature_service.services.state_asof import state_as_of

ProgressFn = Callable[[dict[str, Any]], None]
BATCH_ROWS = 50_000
META_COLUMNS = ("timestamp", "symbol", "interval_s")
REFERENCE_PRICE = "reference_price"
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


class _Progress:
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


def compute_rows(
    req: DatasetBuildRequest,
    raw_root: Path,
    window: Period,
    keep: Period,
    progress: _Progress,
    plan: FeaturePlan = BUNDLED_PLAN,
) -> pd.DataFrame:
    """Feature rows of ``req.interval_s`` with close times in ``keep``, replaying every stored
    event of ``window`` through the engine in batches (memory grows with rows, not events).

    Each row also gets ``reference_price`` (the last trade price, else the last confirmed candle
    close, received before the row's time): the target's price when the window has no order
    book at all (backfilled klines, imported trades), so such a dataset still has labels."""
    # A plan with normalisation samples every 1 s close, so the engine must close them all.
    intervals = {req.interval_s, 1} if plan.needs_every_second else {req.interval_s}
    # State as of the window's start from the stored history before it (the last checkpoint or
    # snapshot, the candle lookback, ...): rows equal what live published, whatever the period.
    boundary = IngestBoundary()
    engine, _ = state_as_of(
        raw_root,
        [req.symbol],
        window.start_us,
        engine=FeatureEngine(intervals_s=sorted(intervals), plan=plan),
        boundary=boundary,
    )
    reader = RawReader(raw_root)
    batches: list[pd.DataFrame] = []
    pending: list[FeatureVector] = []
    prices: list[float | None] = []
    last_trade: float | None = None
    last_close: float | None = None

    def take(vectors: list[FeatureVector]) -> None:
        for v in vectors:
            if v.interval_s == req.interval_s and keep.start_us <= v.timestamp <= keep.end_us:
                pending.append(v)
                prices.append(last_trade if last_trade is not None else last_close)
        if len(pending) >= BATCH_ROWS:
            flush()

    def flush() -> None:
        if pending:
            frame = vectors_to_table(pending, plan=plan).to_pandas()
            frame[REFERENCE_PRICE] = pd.array(prices, dtype="Float64")
            batches.append(frame)
            progress.rows += len(pending)
            pending.clear()
            prices.clear()

    events = stored_events(
        reader,
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
    if not batches:
        empty = vectors_to_table([], plan=plan).to_pandas()
        empty[REFERENCE_PRICE] = pd.array([], dtype="Float64")
        return empty
    return pd.concat(batches, ignore_index=True)


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
    started = time.monotonic()
    span = req.span()
    if span is None:
        raise BuildFailed("the request defines no period")
    guard = LeakageGuard.for_request(req, registry)
    window = guard.read_window(span)
    tracker = _Progress(window, progress)
    keep = Period(span.start_us, span.end_us + guard.horizon_s * 1_000_000)
    rows = compute_rows(req, raw_root, window, keep, tracker, registry.plan or BUNDLED_PLAN)
    missing = missing_inputs(raw_root, req.symbol, window)
    if "orderbook" not in missing:
        rows = rows.drop(columns=[REFERENCE_PRICE])  # targets come from the mid, as always
    if rows.empty:
        raise BuildFailed(f"no feature rows for {req.symbol} in {_fmt(span)}")
    tracker.update(window.end_us, "split", force=True)

    rows, dropped = add_targets(rows, req.target_config, req.interval_s)
    dropped_quality = 0
    if req.quality_filter:
        ok = rows["quality_ok"].fillna(False).astype(bool)
        dropped_quality = int((~ok).sum())
        rows = rows[ok].reset_index(drop=True)
    features = list(req.selected_features(registry))
    rows = rows[[*META_COLUMNS, *features, *QUALITY_COLUMNS, *TARGET_COLUMNS]]

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    warnings: list[str] = []
    folds_info: list[dict[str, Any]] | None = None
    leaks: list[str] = []

    def write(name: str, frame: pd.DataFrame) -> None:
        path = write_split(frame.reset_index(drop=True), out_dir / name, req.output_format)
        files[name] = path.name

    if req.split_strategy == "walk_forward":
        cfg = req.walk_forward_config
        assert cfg is not None
        folds = walk_forward_folds(rows, cfg, guard.horizon_s, guard.embargo_s)
        warnings += walk_forward_warnings(folds)
        folds_info = [f.info() for f in folds]
        for fold in folds:
            if fold.skipped:
                continue
            leaks += check_no_leakage(list(fold), guard.horizon_s, guard.embargo_s)
            for split in fold:
                write(f"fold_{fold.index}_{split.name}", split.frame)
        counts = walk_forward_counts(folds)
        splits_info: dict[str, Any] = {"folds": folds_info}
    else:
        if req.split_strategy == "random":
            rnd = req.random_config
            assert rnd is not None
            splits = random_split(
                rows,
                (rnd.train_fraction, rnd.validation_fraction, rnd.test_fraction),
                rnd.seed,
                span,
            )
        else:
            splits = time_based_split(rows, req, guard)
            leaks += check_no_leakage(list(splits), guard.horizon_s, guard.embargo_s)
        warnings += splits.warnings
        for split in splits:
            write(split.name, split.frame)
        counts = splits.counts()
        splits_info = splits.info()
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
    manifest["dropped_rows_without_target"] = dropped
    manifest["quality_filter"] = req.quality_filter
    manifest["dropped_rows_quality"] = dropped_quality
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
        rows=len(rows),
        dropped_targets=dropped,
        elapsed_s=time.monotonic() - started,
    )


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
