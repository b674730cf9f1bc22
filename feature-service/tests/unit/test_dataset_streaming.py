"""A dataset build streams (issue 9): its files hold exactly the rows, columns, order and dtypes
of the whole-period in-memory build, and the rows it holds at once stay bounded by its batch
size (plus the target horizon), however long the period.

The reference here is the in-memory pipeline rebuilt from the pure pieces (one engine replay
into one table, ``add_targets``, the whole-frame split functions); the build runs with a tiny
batch size so every split, fold and target look-ahead crosses many batch boundaries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.datasets import (
    DatasetBuildRequest,
    LeakageGuard,
    Period,
    add_targets,
    random_split,
    read_split,
    time_based_split,
    walk_forward_folds,
    write_split,
)
from feature_service.engine.core import FeatureEngine
from feature_service.engine.offline import QUALITY_COLUMNS, vectors_to_table
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.ingest import IngestBoundary
from feature_service.ingest.replay import stored_events
from feature_service.market.events import (
    US_PER_S,
    BookSnapshot,
    Kline,
    MarketEvent,
    Side,
    Ticker,
    Trade,
)
from feature_service.market.recording import event_to_envelope
from feature_service.registry.loader import Registry, load_registry
from feature_service.services import dataset_builder
from feature_service.services.dataset_builder import build_dataset, missing_inputs
from feature_service.services.dataset_rows import conform_dtypes
from feature_service.services.state_asof import state_as_of
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S

BATCH = 23  # rows per batch in the builds under test: every boundary is crossed many times
DAY_US = 86_400 * US_PER_S


def _store(root: Path, events: list[MarketEvent]) -> Path:
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(root).write_events(events, bodies)
    return root


def _at(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight minutes of the clean stream, with a ticker gap (quality mask) and a trade gap."""
    events = dq.clean_stream(minutes=8)
    events = dq.drop(events, Ticker, T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    events = dq.drop(events, Trade, T0 + 4 * MINUTE, T0 + 4 * MINUTE + 20 * S)
    return _store(tmp_path_factory.mktemp("dense") / "raw", events)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of a snapshot and a trade every 2 minutes (1 m rows for walk-forward folds)."""
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * US_PER_S
    events: list[MarketEvent] = []
    price = 50_000.0
    for k in range(4 * 720):
        t = start + k * 120 * US_PER_S + 1000
        price *= 1.0 + (0.0004 if (k * 7919) % 13 < 6 else -0.00035)
        bid = round(price, 1)
        common = {"symbol": "BTCUSDT", "exchange_ts": t, "gateway_ts": t, "receive_ts": t}
        events.append(
            BookSnapshot(
                topic="orderbook.50.BTCUSDT",
                bids=[(round(bid - 0.1 * i, 1), 1.0 + i) for i in range(5)],
                asks=[(round(bid + 0.1 * (i + 1), 1), 1.0 + i) for i in range(5)],
                update_id=k + 1,
                event_id=f"b{k}",
                **common,
            )
        )
        events.append(
            Trade(
                topic="publicTrade.BTCUSDT",
                price=bid,
                size=0.01,
                side=Side.BUY if k % 2 else Side.SELL,
                trade_time=t,
                trade_id=f"t{k}",
                event_id=f"t{k}",
                **{**common, "receive_ts": t + 1},
            )
        )
    return _store(tmp_path_factory.mktemp("sparse") / "raw", events)


def _time_based(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": _at(T0 + MINUTE),
        "train_period_end": _at(T0 + 5 * MINUTE),
        "validation_period_start": _at(T0 + 5 * MINUTE),
        "validation_period_end": _at(T0 + 6 * MINUTE),
        "test_period_start": _at(T0 + 6 * MINUTE),
        "test_period_end": _at(T0 + 7 * MINUTE),
        "target_config": {"type": "regression", "horizon": 5},
        "feature_registry_version": "1.1.0",
    }
    body.update(overrides)
    return body


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "time_based regression, every feature": ("dense", _time_based()),
    "classification, quality filter, csv": (
        "dense",
        _time_based(
            target_config={"type": "classification", "horizon": 3, "threshold": 0.00001},
            quality_filter=True,
            output_format="csv",
        ),
    ),
    "risk_adjusted, 3 s rows, 21 s embargo, hdf5": (
        "dense",
        _time_based(
            target_config={"type": "risk_adjusted", "horizon": 9},
            feature_interval="3s",
            features=["mid_price", "trade_count_3s", "spread_rel"],
            embargo_seconds=21,
            output_format="hdf5",
        ),
    ),
    "random": (
        "dense",
        {
            "symbol": "BTCUSDT",
            "split_strategy": "random",
            "random_config": {
                "start_date": _at(T0 + MINUTE),
                "end_date": _at(T0 + 7 * MINUTE),
                "train_fraction": 0.6,
                "validation_fraction": 0.25,
                "seed": 11,
            },
            "target_config": {"type": "regression", "horizon": 2},
            "feature_registry_version": "1.1.0",
        },
    ),
    "walk_forward, overlapping folds, 1 m rows": (
        "sparse",
        {
            "symbol": "BTCUSDT",
            "split_strategy": "walk_forward",
            "walk_forward_config": {
                "train_window_days": 2,
                "validation_window_days": 1,
                "step_days": 1,
                "start_date": "2026-01-01T00:00:00",
                "end_date": "2026-01-05T00:00:00",
                "min_train_samples": 100,
            },
            "target_config": {"type": "classification", "horizon": 300, "threshold": 0.0001},
            "feature_registry_version": "1.1.0",
            "feature_interval": "1m",
            "features": ["mid_price", "spread_rel", "trade_count_1m", "volume_1m"],
        },
    ),
}


def _in_memory(req: DatasetBuildRequest, registry: Registry, root: Path) -> dict[str, Any]:
    """The whole period in memory: every row, then targets, filter, columns, splits."""
    span = req.span()
    assert span is not None
    guard = LeakageGuard.for_request(req, registry)
    window = guard.read_window(span)
    keep = Period(span.start_us, span.end_us + guard.horizon_s * US_PER_S)
    plan = registry.plan or BUNDLED_PLAN
    intervals = {req.interval_s, 1} if plan.needs_every_second else {req.interval_s}
    boundary = IngestBoundary()
    engine, _ = state_as_of(
        root,
        [req.symbol],
        window.start_us,
        engine=FeatureEngine(intervals_s=sorted(intervals), plan=plan),
        boundary=boundary,
    )
    vectors: list[Any] = []
    prices: list[float | None] = []
    last: dict[str, float | None] = {"trade": None, "close": None}

    def take(closed: list[Any]) -> None:
        for v in closed:
            if v.interval_s == req.interval_s and keep.start_us <= v.timestamp <= keep.end_us:
                vectors.append(v)
                prices.append(last["trade"] if last["trade"] is not None else last["close"])

    for event in stored_events(
        RawReader(root), boundary, symbols=[req.symbol], start_us=window.start_us,
        end_us=window.end_us,
    ):  # fmt: skip
        take(engine.process(event))
        if isinstance(event, Trade):
            last["trade"] = event.price
        elif isinstance(event, Kline) and event.confirmed:
            last["close"] = event.close
    take(engine.advance_to(window.end_us))
    rows = vectors_to_table(vectors, plan=plan).to_pandas()
    rows["reference_price"] = pd.array(prices, dtype="Float64")
    if "orderbook" not in missing_inputs(root, req.symbol, window):
        rows = rows.drop(columns=["reference_price"])
    rows, dropped = add_targets(rows, req.target_config, req.interval_s)
    dropped_quality = 0
    if req.quality_filter:
        ok = rows["quality_ok"].fillna(False).astype(bool)
        dropped_quality = int((~ok).sum())
        rows = rows[ok].reset_index(drop=True)
    features = list(req.selected_features(registry))
    rows = rows[["timestamp", "symbol", "interval_s", *features, *QUALITY_COLUMNS, "target",
                 "target_return"]]  # fmt: skip
    files: dict[str, pd.DataFrame] = {}
    out: dict[str, Any] = {"rows": len(rows), "dropped": dropped, "quality": dropped_quality}
    if req.split_strategy == "walk_forward":
        assert req.walk_forward_config is not None
        folds = walk_forward_folds(rows, req.walk_forward_config, guard.horizon_s, guard.embargo_s)
        for fold in folds:
            if not fold.skipped:
                files.update({f"fold_{fold.index}_{s.name}": s.frame for s in fold})
        out["folds"] = [f.info() for f in folds]
    else:
        if req.split_strategy == "random":
            rnd = req.random_config
            assert rnd is not None
            fractions = (rnd.train_fraction, rnd.validation_fraction, rnd.test_fraction)
            splits = random_split(rows, fractions, rnd.seed, span)
        else:
            splits = time_based_split(rows, req, guard)
        files.update({s.name: s.frame for s in splits})
        out["splits_info"] = splits.info()
        out["counts"] = splits.counts()
        out["warnings"] = splits.warnings
    out["files"] = files
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_streamed_files_equal_the_in_memory_build(
    case: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, body = CASES[case]
    root: Path = request.getfixturevalue(store)
    registry = load_registry(None)
    req = DatasetBuildRequest.model_validate(body)
    expected = _in_memory(req, registry, root)
    assert expected["rows"] > 5 * BATCH

    monkeypatch.setattr(dataset_builder, "BATCH_ROWS", BATCH)
    result = build_dataset(req, registry, root, tmp_path / "built")

    assert set(result.files) == set(expected["files"])
    for name, frame in expected["files"].items():
        got = tmp_path / "built" / result.files[name]
        want = write_split(frame.reset_index(drop=True), tmp_path / "ref" / name, req.output_format)
        if req.output_format == "parquet":
            table, reference = pq.read_table(got), pq.read_table(want)
            assert table.schema.equals(reference.schema, check_metadata=True), name
            assert table.equals(reference), name
        elif req.output_format == "csv":
            assert got.read_bytes() == want.read_bytes(), name
        pd.testing.assert_frame_equal(read_split(got), read_split(want), check_exact=True)
    assert result.rows == expected["rows"]
    assert result.dropped_targets == expected["dropped"]
    assert result.manifest["dropped_rows_without_target"] == expected["dropped"]
    assert result.manifest["dropped_rows_quality"] == expected["quality"]
    if req.split_strategy == "walk_forward":
        assert result.folds == expected["folds"]
    else:
        assert result.splits_info == expected["splits_info"]
        assert result.counts == expected["counts"]
        assert [w for w in result.warnings if not w.startswith("leakage")] == expected["warnings"]
    if case.startswith("classification"):
        assert expected["quality"] > 20  # the ticker gap's rows were filtered out


def test_an_int_column_with_nulls_in_some_batches_is_float_in_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-memory build's dtype of a column follows the whole period (an int column with
    one null anywhere is float64 everywhere); the streamed files must agree, whichever batch
    the null falls in."""
    table = pa.table({"a": pa.array([1, None, 3], pa.int64()), "b": [True, False, None]})
    whole = table.to_pandas()
    first = table.slice(0, 1).to_pandas()
    assert str(first["a"].dtype) == "int64" and str(whole["a"].dtype) == "float64"
    fixed = conform_dtypes(first, {"a", "b"})
    pd.testing.assert_frame_equal(fixed, whole.iloc[:1])


def _sparse_request(days: float) -> DatasetBuildRequest:
    start = int(datetime(2026, 1, 1, 6, tzinfo=UTC).timestamp()) * US_PER_S
    cut = [start + int(days * DAY_US * f) for f in (0, 0.6, 0.8, 1.0)]
    return DatasetBuildRequest.model_validate(
        {
            "symbol": "BTCUSDT",
            "split_strategy": "time_based",
            "train_period_start": _at(cut[0]),
            "train_period_end": _at(cut[1]),
            "validation_period_start": _at(cut[1]),
            "validation_period_end": _at(cut[2]),
            "test_period_start": _at(cut[2]),
            "test_period_end": _at(cut[3]),
            "target_config": {"type": "regression", "horizon": 300},
            "feature_registry_version": "1.1.0",
            "feature_interval": "1m",
            "features": ["mid_price", "spread_rel", "trade_count_1m"],
        }
    )


def test_the_rows_a_build_holds_stay_bounded_whatever_the_period(
    sparse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long period holds no more rows at once than a short one: at most one batch plus the
    rows waiting for their 300 s target (5 rows of 1 m). Watched from outside the build: the
    largest group of vectors turned into a table and the largest frame given to a split file."""
    from feature_service.datasets import output
    from feature_service.services import dataset_rows

    batch = 40
    bound = batch + 300 // 60
    monkeypatch.setattr(dataset_builder, "BATCH_ROWS", batch)
    seen = {"vectors": 0, "written": 0}
    to_table = dataset_rows.vectors_to_table
    write = output.SplitWriter.write

    def counting_to_table(rows: list[Any], *args: Any, **kwargs: Any) -> pa.Table:
        seen["vectors"] = max(seen["vectors"], len(rows))
        return to_table(rows, *args, **kwargs)

    def counting_write(self: output.SplitWriter, df: pd.DataFrame) -> None:
        seen["written"] = max(seen["written"], len(df))
        write(self, df)

    monkeypatch.setattr(dataset_rows, "vectors_to_table", counting_to_table)
    monkeypatch.setattr(output.SplitWriter, "write", counting_write)
    registry = load_registry(None)
    peaks = {}
    for days in (0.25, 3.5):
        seen.update(vectors=0, written=0)
        result = build_dataset(_sparse_request(days), registry, sparse, tmp_path / str(days))
        assert result.rows > 2 * batch
        assert seen["vectors"] <= batch and seen["written"] <= bound
        assert result.extra["peak_rows_held"] <= bound
        peaks[days] = (result.rows, result.extra["peak_rows_held"])
        assert not list((tmp_path / str(days)).glob(".rows*"))  # the spill is gone
    (short_rows, short_peak), (long_rows, long_peak) = peaks[0.25], peaks[3.5]
    assert long_rows > 10 * short_rows // 2 and long_rows > 100 * batch
    assert long_peak <= bound and short_peak <= bound
