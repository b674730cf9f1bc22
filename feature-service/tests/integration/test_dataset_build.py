"""Dataset builds end to end on the real PostgreSQL and RabbitMQ: POST /dataset/build, progress,
completion message, list, metadata, download; targets, leakage cuts and reproducibility."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from feature_service.adapters.metadata import PostgresMetadataStore
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.engine.core import FeatureEngine
from feature_service.engine.offline import QUALITY_COLUMNS
from feature_service.market.events import (
    US_PER_S,
    BookSnapshot,
    MarketEvent,
    Side,
    Trade,
)
from feature_service.market.recording import event_to_envelope, iter_recording
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.metadata import create_schema, drop_schema, postgres_url

pytestmark = pytest.mark.integration

KEY = {"X-API-Key": "demo-key"}
DENSE = datetime(2025, 1, 28, 1, 0, tzinfo=UTC)  # the bundled sample's 20 dense minutes start here
SHORT_FEATURES = [
    "mid_price",
    "spread_rel",
    "returns_1s",
    "vwap_3s",
    "volume_15s",
    "signed_volume_1m",
    "trade_count_3s",
    "net_aggressor_pressure",
    "depth_imbalance_top5",
]


def _write_raw(root: Path, events: list[MarketEvent]) -> None:
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(root).write_events(events, bodies)


@pytest.fixture(scope="module")
def sample_raw(tmp_path_factory: pytest.TempPathFactory, sample_path: Path) -> Path:
    root = tmp_path_factory.mktemp("sample-data")
    _write_raw(root / "raw", list(iter_recording(sample_path)))
    return root


@pytest.fixture(scope="module")
def sample_mids(sample_path: Path) -> dict[int, float | None]:
    """mid_price at every 1 s close, computed independently of the dataset builder."""
    engine = FeatureEngine(intervals_s=[1])
    mids: dict[int, float | None] = {}
    for event in iter_recording(sample_path):
        for v in engine.process(event):
            mids[v.timestamp] = v.features["mid_price"]  # type: ignore[assignment]
    return mids


class Service:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient, broker: Broker) -> None:
        self.runtime = runtime
        self.http = http
        self.broker = broker

    async def build(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/dataset/build", json=body, headers=KEY)

    async def wait_done(self, dataset_id: str, limit_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            state = (await self.http.get(f"/dataset/{dataset_id}", headers=KEY)).json()
            if state["status"] in {"ready", "failed"}:
                return state
            await asyncio.sleep(0.1)
        raise AssertionError(f"dataset {dataset_id} did not finish in {limit_s}s")


@pytest.fixture
async def service(broker: Broker, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    data_dir: Path = request.getfixturevalue(getattr(request, "param", "sample_raw"))
    schema = await create_schema()
    store = PostgresMetadataStore(postgres_url(), schema=schema)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=data_dir,
        replay_enabled=False,
        dataset_ready_queue=f"{broker.names.prefix}.dataset.ready",
        # The fixtures' data is dated in the past: keep retention from archiving it.
        retention_days=100_000,
        archive_retention_days=100_000,
        compact_after_days=None,
        **broker.names.settings(),
    )
    broker.extra_queues.append(settings.dataset_ready_queue)
    runtime = Runtime(settings, store=store)
    await runtime.start()
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Service(runtime, http, broker)
    finally:
        await runtime.stop()
        await drop_schema(schema)


def _time_based(**overrides: Any) -> dict[str, Any]:
    def at(minutes: int) -> str:
        return (DENSE + timedelta(minutes=minutes)).isoformat()

    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": at(0),
        "train_period_end": at(10),
        "validation_period_start": at(10),
        "validation_period_end": at(14),
        "test_period_start": at(14),
        "test_period_end": at(19),
        "target_config": {"type": "regression", "horizon": 10},
        "feature_registry_version": "1.1.0",
        "features": SHORT_FEATURES,
        "embargo": "max_lookback",
    }
    body.update(overrides)
    return body


async def test_time_based_build_end_to_end(
    service: Service, sample_mids: dict[int, float | None]
) -> None:
    trace = {"X-Trace-Id": "trace-build-1"}
    r = await service.http.post("/dataset/build", json=_time_based(), headers={**KEY, **trace})
    assert r.status_code == 202, r.text
    assert r.headers["X-Trace-Id"] == "trace-build-1"
    accepted = r.json()
    assert accepted["status"] == "building" and accepted["queue_position"] in (1, None)
    assert accepted["splits_info"]["train"]["records"] == 0
    dataset_id = accepted["dataset_id"]

    meta = await service.wait_done(dataset_id)
    assert meta["status"] == "ready", meta
    # With "embargo": "max_lookback" (today's rule, asked for in _time_based), validation loses
    # its first 60 s to the embargo (longest lookback of the chosen features)
    # and its last 9 rows to the purge (their 10 s labels would reach into test).
    assert meta["validation_records"] == 240 - 60 - 9
    assert meta["test_records"] == 300 - 60
    assert 580 <= meta["train_records"] <= 600 - 9
    assert meta["progress"]["fraction"] == 1.0
    assert meta["feature_interval"] == "1s"

    # Completion message on features.dataset.ready.
    ready = await service.broker.drain(service.runtime.settings.dataset_ready_queue, idle_s=0.3)
    (message,) = ready
    msg = orjson.loads(message.body)
    assert msg["dataset_id"] == dataset_id and msg["status"] == "ready"
    assert msg["symbol"] == "BTCUSDT"
    # The build carries the trace of the request that asked for it.
    assert msg["trace_id"] == message.headers["trace_id"] == "trace-build-1"
    assert service.runtime.telemetry.dataset_builds["ready"] == 1
    assert set(msg["splits_info"]) == {"train", "validation", "test"}
    assert msg["download_urls"]["train"].endswith(f"/dataset/{dataset_id}/download?split=train")

    listed = (
        await service.http.get("/dataset/list?status=ready&symbol=btcusdt", headers=KEY)
    ).json()
    assert [d["dataset_id"] for d in listed] == [dataset_id]
    assert [d["id"] for d in listed] == [dataset_id] and meta["id"] == dataset_id

    splits: dict[str, pd.DataFrame] = {}
    for split in ("train", "validation", "test"):
        r = await service.http.get(f"/dataset/{dataset_id}/download?split={split}", headers=KEY)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        splits[split] = pd.read_parquet(io.BytesIO(r.content))
    assert len(splits["test"]) == meta["test_records"]
    assert list(splits["train"].columns) == [
        "timestamp",
        "symbol",
        "interval_s",
        *SHORT_FEATURES,
        *QUALITY_COLUMNS,  # the quality mask of each row, never mixed into the features
        "target",
        "target_return",
    ]
    assert splits["train"]["quality_ok"].dtype == bool

    # Targets come only from the future: r = mid(t + 10 s) / mid(t) - 1, recomputed here.
    for frame in splits.values():
        for ts, target in zip(
            frame["timestamp"].dt.as_unit("us").astype("int64"), frame["target"], strict=True
        ):
            now, later = sample_mids[ts], sample_mids[ts + 10 * US_PER_S]
            assert now is not None and later is not None
            assert target == later / now - 1

    # No train label reaches validation; no validation feature window reaches into train.
    def ts(frame: pd.DataFrame) -> pd.Series:
        return frame["timestamp"]

    assert ts(splits["train"]).max() + pd.Timedelta(seconds=10) <= ts(splits["validation"]).min()
    assert ts(splits["validation"]).min() - pd.Timedelta(seconds=60) >= pd.Timestamp(
        DENSE + timedelta(minutes=10)
    )
    assert ts(splits["validation"]).max() + pd.Timedelta(seconds=10) <= ts(splits["test"]).min()

    archive = await service.http.get(f"/dataset/{dataset_id}/download?split=all", headers=KEY)
    bundle = zipfile.ZipFile(io.BytesIO(archive.content))
    assert set(bundle.namelist()) == {
        "train.parquet",
        "validation.parquet",
        "test.parquet",
        "manifest.json",
    }
    manifest = orjson.loads(bundle.read("manifest.json"))
    raw_paths = [f["path"] for f in manifest["raw_files"]]
    # Only the day the build read (the dense part), not the candle history of the day before.
    assert raw_paths and all("/2025-01-28/BTCUSDT/part-" in p for p in raw_paths)
    assert manifest["leakage"] == {
        "horizon_s": 10,
        "purge_s": 10,
        "embargo_s": 60,
        "embargo_rule": "max_lookback",
        "warmup_s": 60,
    }

    # Reproducible: the same request gives byte-identical split files.
    again = (await service.build(_time_based())).json()["dataset_id"]
    assert (await service.wait_done(again))["status"] == "ready"
    for split in ("train", "validation", "test"):
        a = (
            await service.http.get(f"/dataset/{dataset_id}/download?split={split}", headers=KEY)
        ).content
        b = (
            await service.http.get(f"/dataset/{again}/download?split={split}", headers=KEY)
        ).content
        assert a == b, split

    evaluate = await service.http.post(
        "/model/evaluate",
        json={
            "dataset_id": dataset_id,
            "split": "test",
            "model_version": "m1",
            "metrics_to_compute": ["mae"],
        },
        headers=KEY,
    )
    assert evaluate.status_code == 200, evaluate.text
    body = evaluate.json()
    assert body["prepared_dataset_url"].endswith(f"/dataset/{dataset_id}/download?split=test")
    assert body["metadata"]["records"] == meta["test_records"]
    assert len(body["metadata"]["sha256"]) == 64


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            {"validation_period_start": (DENSE + timedelta(minutes=9)).isoformat()},
            "overlap",
        ),
        ({"feature_registry_version": "0.9.0"}, "is not a stored registry version"),
        (
            {
                "train_period_start": "2024-01-01T00:00:00",
                "train_period_end": "2024-01-02T00:00:00",
                "validation_period_start": "2024-01-02T00:00:00",
                "validation_period_end": "2024-01-03T00:00:00",
                "test_period_start": "2024-01-03T00:00:00",
                "test_period_end": "2024-01-04T00:00:00",
            },
            "available",
        ),
    ],
)
async def test_bad_requests_are_refused_before_anything_runs(
    service: Service, overrides: dict[str, Any], fragment: str
) -> None:
    r = await service.build(_time_based(**overrides))
    assert r.status_code == 400, r.text
    assert fragment in r.json()["message"]
    assert await service.runtime.store.list_datasets() == []


async def test_unknown_dataset_is_404(service: Service) -> None:
    r = await service.http.get("/dataset/7d1e5f3c-0000-4000-8000-000000000000", headers=KEY)
    assert r.status_code == 404
    assert (await service.http.get("/dataset/not-a-uuid", headers=KEY)).status_code == 422


# -- walk-forward over ten days of sparse synthetic data -------------------------------------


@pytest.fixture(scope="module")
def ten_days_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A book snapshot and a trade every 30 s for ten days (a sparse but real market)."""
    root = tmp_path_factory.mktemp("ten-days")
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * US_PER_S
    events: list[MarketEvent] = []
    price = 50_000.0
    for k in range(10 * 86400 // 30):
        t = start + k * 30 * US_PER_S + 1000
        price *= 1.0 + (0.0004 if (k * 7919) % 13 < 6 else -0.00035)
        bid = round(price, 1)
        common = {"symbol": "BTCUSDT", "exchange_ts": t, "gateway_ts": t, "receive_ts": t}
        events.append(
            BookSnapshot(
                topic="orderbook.50.BTCUSDT",
                bids=[(round(bid - 0.1 * i, 1), 1.0 + i) for i in range(10)],
                asks=[(round(bid + 0.1 * (i + 1), 1), 1.0 + i) for i in range(10)],
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
    _write_raw(root / "raw", events)
    return root


@pytest.mark.parametrize("service", ["ten_days_raw"], indirect=True)
async def test_walk_forward_produces_every_fold(service: Service) -> None:
    config = {
        "train_window_days": 3,
        "validation_window_days": 1,
        "step_days": 1,
        "start_date": "2026-01-01T00:00:00",
        "end_date": "2026-01-11T00:00:00",
        "min_train_samples": 4000,
    }
    body = {
        "symbol": "BTCUSDT",
        "split_strategy": "walk_forward",
        "walk_forward_config": config,
        "target_config": {"type": "classification", "horizon": 300, "threshold": 0.001},
        "feature_registry_version": "1.1.0",
        "feature_interval": "1m",
        "features": ["mid_price", "spread_rel", "depth_imbalance_top5", "volume_1m"],
    }
    r = await service.build(body)
    assert r.status_code == 202, r.text
    meta = await service.wait_done(r.json()["dataset_id"])
    assert meta["status"] == "ready", meta
    folds = meta["folds"]
    # Folds start on days 0..6: validation of fold k ends on day 4 + k <= 10.
    assert [f["index"] for f in folds] == list(range(7))
    assert not any(f["skipped"] for f in folds)
    assert [f["role"] for f in folds] == ["validation"] * 6 + ["test"]
    # 3 days of 1 m rows, minus the 4 whose 5 m labels reach into the validation day (and the
    # first fold has no row at its very start: the first boundary follows the first event).
    assert [f["train"]["records"] for f in folds] == [3 * 1440 - 5] + [3 * 1440 - 4] * 6
    # The validation day loses its first 5 rows to the default embargo of one horizon (300 s).
    assert all(f["validation"]["embargoed"] == 5 for f in folds)
    assert meta["test_records"] == folds[-1]["validation"]["records"]
    r = await service.http.get(
        f"/dataset/{meta['dataset_id']}/download?split=train&fold=2", headers=KEY
    )
    assert r.status_code == 200
    frame = pd.read_parquet(io.BytesIO(r.content))
    assert len(frame) == 3 * 1440 - 4
    assert set(frame["target"]) <= {"up", "down", "flat"}
    assert frame["timestamp"].min() == pd.Timestamp("2026-01-03T00:00:00Z")
    base = f"/dataset/{meta['dataset_id']}/download"
    test = await service.http.get(f"{base}?split=test", headers=KEY)  # the test fold's
    assert len(pd.read_parquet(io.BytesIO(test.content))) == meta["test_records"]
    unfolded = await service.http.get(f"{base}?split=train", headers=KEY)
    assert unfolded.status_code == 404 and "fold_0_train" in unfolded.json()["message"]

    # A minimum of 4316 train rows skips exactly the first fold (4315 rows), saying why; an
    # impossible minimum is refused before anything runs.
    body["walk_forward_config"] = {**config, "min_train_samples": 4316}
    r = await service.build(body)
    assert r.status_code == 202, r.text
    meta = await service.wait_done(r.json()["dataset_id"])
    skipped = [f["index"] for f in meta["folds"] if f["skipped"]]
    assert skipped == [0]
    assert "min_train_samples" in meta["folds"][0]["skip_reason"]
    assert meta["folds"][-1]["role"] == "test"
    body["walk_forward_config"] = {**config, "min_train_samples": 5000}
    r = await service.build(body)
    assert r.status_code == 400
    assert "every fold would be skipped" in r.json()["message"]
