"""Dataset rows carry the quality mask as columns; ``quality_filter: true`` drops the rows whose
mask is not ok (here: the seconds the ticker stream was silent past its 30 s limit; seconds
with the book out of sync have no mid, hence no target, and are dropped before) and the
manifest says how many."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest

from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.datasets.request import DatasetBuildRequest
from feature_service.engine.offline import QUALITY_COLUMNS
from feature_service.market.events import Ticker
from feature_service.market.recording import event_to_envelope
from feature_service.registry.loader import load_registry
from feature_service.services.dataset_builder import build_dataset
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S


def _at(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    root = tmp_path_factory.mktemp("dq-dataset") / "raw"
    clean = dq.clean_stream(minutes=8)
    events = dq.drop(clean, Ticker, T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    last = dq.last_before(events, Ticker, T0 + 2 * MINUTE).receive_ts
    following = events[dq.first(events, Ticker, T0 + 3 * MINUTE)].receive_ts
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(root).write_events(events, bodies)
    return root, last, following


def _request(quality_filter: bool) -> DatasetBuildRequest:
    return DatasetBuildRequest.model_validate(
        {
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
            "features": ["mid_price", "spread_rel"],
            "quality_filter": quality_filter,
        }
    )


def test_rows_carry_the_mask_and_the_filter_drops_the_desynced_seconds(
    stored: tuple[Path, int, int], tmp_path: Path
) -> None:
    root, last, following = stored
    registry = load_registry(None)
    # A vector at t sees the tickers received before t: stale once t - last > 30 s, up to and
    # including t = the next ticker's receive time.
    limit = 30 * S
    desynced = sum(1 for t in range(T0, T0 + 8 * MINUTE, S) if last + limit < t <= following)
    assert desynced > 20

    plain = build_dataset(_request(False), registry, root, tmp_path / "plain")
    train = pd.read_parquet(tmp_path / "plain" / plain.files["train"])
    assert set(QUALITY_COLUMNS) <= set(train.columns)
    bad = train[~train["quality_ok"]]
    assert len(bad) == desynced
    assert (bad["quality_reasons"] == "ticker_stale").all()
    assert bad["book_in_sync"].all() and bad["mid_price"].notna().all()
    assert (bad["age_ms_ticker"] > 30_000).all()
    assert plain.manifest["dropped_rows_quality"] == 0

    filtered = build_dataset(_request(True), registry, root, tmp_path / "filtered")
    assert filtered.manifest["quality_filter"] is True
    assert filtered.manifest["dropped_rows_quality"] == desynced
    kept = pd.read_parquet(tmp_path / "filtered" / filtered.files["train"])
    assert kept["quality_ok"].all()
    assert len(kept) == len(train) - desynced
    ok_rows = train[train["quality_ok"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.reset_index(drop=True), ok_rows)
