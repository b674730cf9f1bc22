"""Backfill jobs end to end against the fake Bybit server: the HTTP routes, a job killed with
SIGKILL and resumed, automatic backfill before a dataset build, and known time in a dataset."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feature_service.adapters.clients.bybit_rest import BybitRestClient, TokenBucket
from feature_service.adapters.metadata import SqliteMetadataStore
from feature_service.adapters.rawstore.layout import day_start_us
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.datasets import DatasetBuildRequest
from feature_service.market.events import Kline
from feature_service.registry.loader import load_registry
from feature_service.services.backfill_jobs import BackfillJobs
from feature_service.services.datasets import DatasetRequestError, DatasetService
from tests.fixtures.backfill_schema import apply_to_sqlite_file, apply_to_store
from tests.fixtures.fake_bybit import FakeBybit

pytestmark = pytest.mark.timeout(180)
KEY = "test-key"
NOW_MS = day_start_us("2025-12-01") // 1000 + 3_600_000
MIN_US = 60_000_000


@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    with FakeBybit(now_ms=NOW_MS) as server:
        yield server


def klines(root: Path) -> list[Kline]:
    return [e for e in RawReader(root).iter_events(["klines"]) if isinstance(e, Kline)]


# -- HTTP ----------------------------------------------------------------------------------------
def test_routes_accept_report_and_refuse(fake: FakeBybit, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path, api_keys=[KEY], replay_enabled=False,
        bybit_rest_url=fake.base_url, backfill_max_days=5,
    )  # fmt: skip
    h = {"X-API-Key": KEY}
    apply_to_sqlite_file(settings.sqlite_path)
    with TestClient(create_app(settings)) as tc:
        body = {"symbol": "BTCUSDT", "start_date": "2025-11-01", "end_date": "2025-11-02"}
        body["data_types"] = ["klines", "funding", "trades"]
        r = tc.post("/backfill/historical", json=body, headers=h)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 60
        while True:
            status = tc.get(f"/backfill/status/{job_id}", headers=h).json()
            if status["status"] not in ("pending", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["status"] == "completed", status
        assert sorted(status["completed_days"]) == [
            "funding:2025-11-01", "funding:2025-11-02", "klines:2025-11-01", "klines:2025-11-02",
        ]  # fmt: skip
        assert "no history" in status["unavailable"]["trades"]
        assert status["failed_days"] == []
        assert len(klines(tmp_path / "raw")) == 2 * 1440
        scraped = {
            (m.name, tuple(sorted(sample.labels.items()))): sample.value
            for m in text_string_to_metric_families(tc.get("/metrics", headers=h).text)
            for sample in m.samples
            if m.name.startswith("feature_service_backfill")
        }
        kline_rows = ("kind", "klines"), ("symbol", "BTCUSDT")
        assert scraped[("feature_service_backfill_rows", kline_rows)] == 2 * 1440
        assert scraped[("feature_service_backfill_jobs", (("status", "completed"),))] == 1

        too_long = dict(body, end_date="2025-11-20")
        r = tc.post("/backfill/historical", json=too_long, headers=h)
        assert r.status_code == 400 and "at most 5" in r.json()["message"]
        r = tc.post("/backfill/historical", json=dict(body, data_types=["candles"]), headers=h)
        assert r.status_code == 400
        assert tc.get(f"/backfill/status/{job_id[:-1]}0", headers=h).status_code == 404
        assert tc.post("/backfill/historical", json=body).status_code == 401
        r = tc.post(f"/backfill/{job_id}/cancel", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "completed"
        r = tc.post("/backfill/auto", json={"symbol": "BTCUSDT"}, headers=h)
        assert r.status_code == 202


def test_routes_say_why_when_the_jobs_table_is_missing(fake: FakeBybit, tmp_path: Path) -> None:
    import shutil

    from tests.fixtures.metadata import repo_migrations_dir

    migrations = tmp_path / "migrations"
    shutil.copytree(repo_migrations_dir(), migrations)
    for path in migrations.rglob("023_*"):
        path.unlink()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY],
        replay_enabled=False,
        bybit_rest_url=fake.base_url,
        migrations_dir=migrations,
    )
    body = {"symbol": "BTCUSDT", "start_date": "2025-11-01", "end_date": "2025-11-02"}
    with TestClient(create_app(settings)) as tc:
        r = tc.post("/backfill/historical", json=body, headers={"X-API-Key": KEY})
        assert r.status_code == 503 and "migration 023" in r.json()["message"]
        r = tc.get("/features/latest", params={"symbol": "BTCUSDT"}, headers={"X-API-Key": KEY})
        assert r.status_code != 500  # the rest of the service is unaffected


# -- killed mid-way ------------------------------------------------------------------------------
def _cli(tmp_path: Path, fake: FakeBybit) -> list[str]:
    exe = str(Path(sys.executable).parent / "feature-service")
    return [exe, "backfill", "--symbol", "BTCUSDT", "--from", "2025-11-01", "--to",
            "2025-11-12", "--types", "klines"]  # fmt: skip


def _done_days(db: Path) -> list[str]:
    import json

    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT completed_days FROM backfill_jobs").fetchall()
        except sqlite3.OperationalError:
            return []
    return [d for (text,) in rows for d in json.loads(text)]


def test_a_job_killed_mid_way_resumes_and_stores_nothing_twice(
    fake: FakeBybit, tmp_path: Path
) -> None:
    env = dict(os.environ, FEATURE_SERVICE_DATA_DIR=str(tmp_path),
               FEATURE_SERVICE_BYBIT_REST_URL=fake.base_url,
               FEATURE_SERVICE_BACKFILL_RATE_LIMIT_REQUESTS="4",
               FEATURE_SERVICE_BACKFILL_RATE_LIMIT_WINDOW_S="1")  # fmt: skip
    db = tmp_path / "feature-service.sqlite3"
    apply_to_sqlite_file(db)
    proc = subprocess.Popen(_cli(tmp_path, fake), env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_done_days(db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    done_before = set(_done_days(db))
    assert 3 <= len(done_before) < 12, done_before
    seen_before = fake.request_count()

    rerun = subprocess.run(_cli(tmp_path, fake), env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming job" in rerun.stdout
    starts = [k.start for k in klines(tmp_path / "raw")]
    first = day_start_us("2025-11-01") - MIN_US
    assert starts == list(range(first, day_start_us("2025-11-13") - MIN_US, MIN_US))
    # No request of the resumed run asked for a day recorded as done before the kill.
    with fake._lock:
        later = fake.state.arrivals[seen_before:]
    assert later
    for _t, _path, query in later:
        start_ms = int(parse_qs(query)["start"][0])
        day = dt.datetime.fromtimestamp((start_ms + 60_000) / 1000, dt.UTC).date().isoformat()
        assert f"klines:{day}" not in done_before, (day, done_before)


# -- automatic backfill before a dataset build ---------------------------------------------------
def _request(start: dt.datetime, hours: int) -> DatasetBuildRequest:
    def iso(d: dt.datetime) -> str:
        return d.isoformat()

    h = dt.timedelta(hours=1)
    return DatasetBuildRequest.model_validate(
        {
            "symbol": "BTCUSDT", "split_strategy": "time_based",
            "train_period_start": iso(start), "train_period_end": iso(start + hours * 0.6 * h),
            "validation_period_start": iso(start + hours * 0.6 * h),
            "validation_period_end": iso(start + hours * 0.8 * h),
            "test_period_start": iso(start + hours * 0.8 * h),
            "test_period_end": iso(start + hours * h),
            "target_config": {"type": "regression", "horizon": 60},
            "feature_registry_version": "1.1.0", "feature_interval": "1m",
            "features": ["roc_5m", "returns_3_candles", "mid_price", "vwap_3s"],
        }
    )  # fmt: skip


async def test_auto_backfill_makes_a_failing_build_succeed_with_known_time(
    fake: FakeBybit, tmp_path: Path
) -> None:
    registry = load_registry()
    start = dt.datetime(2025, 11, 20, 6, tzinfo=dt.UTC)
    sharp_ms = int((start + dt.timedelta(hours=3, minutes=7)).timestamp() * 1000)
    # A candle whose close is far from its open: a row that saw it before its close would show.
    fake.state.overrides[("BTCUSDT", sharp_ms)] = ("50000.0", "80100.0", "49900.0", "80000.0")
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.connect()
    await store.upgrade()
    await apply_to_store(store)
    raw = tmp_path / "raw"

    def client() -> BybitRestClient:
        return BybitRestClient(fake.base_url, bucket=TokenBucket(500, 5.0))

    jobs = BackfillJobs(store, raw, client, registry=registry, now_ms=lambda: NOW_MS)
    plain = DatasetService(store, registry, raw, tmp_path / "datasets")
    with pytest.raises(DatasetRequestError, match="no raw data"):
        await plain.submit(_request(start, 6))

    await jobs.start()
    service = DatasetService(store, registry, raw, tmp_path / "datasets", backfill=jobs)
    await service.start()
    try:
        rec = await service.submit(_request(start, 6))
        deadline = time.monotonic() + 120
        while (await store.get_dataset(rec.id)).status in ("queued", "building"):  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio_sleep(0.2)
        rec = await store.get_dataset(rec.id)
        assert rec is not None and rec.status == "ready", rec and rec.error_message
    finally:
        await service.stop()
        await jobs.stop()
    (job,) = await store.list_backfill_jobs()
    assert job.trigger == "dataset" and job.status == "completed"
    assert rec.manifest is not None
    assert set(rec.manifest["missing_inputs"]) >= {"orderbook", "trades"}
    assert rec.train_records > 0 and rec.test_records > 0

    frames = [
        pd.read_parquet(tmp_path / "datasets" / str(rec.id) / f)
        for f in sorted(os.listdir(tmp_path / "datasets" / str(rec.id)))
        if f.endswith(".parquet")
    ]
    rows = pd.concat(frames).sort_values("timestamp")
    epoch = pd.Timestamp(0, tz="UTC")
    ts_us = (pd.to_datetime(rows["timestamp"], utc=True) - epoch) // pd.Timedelta(microseconds=1)
    close_us = sharp_ms * 1000 + MIN_US
    jumped = rows["roc_5m"].astype(float) > 0.3
    assert jumped.any()
    # Known time: no row at or before the candle's close sees its close (the row at the close
    # time covers events received strictly before it).
    first_seen = int(ts_us[jumped].min())
    assert first_seen == close_us + MIN_US  # the next row after the close, not a minute early
    assert not jumped[ts_us.to_numpy() <= close_us].any()
    assert rows["mid_price"].isna().all() and rows["vwap_3s"].isna().all()
    await store.close()


async def asyncio_sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_warm_start_hook_backfills_25_hours_of_klines_once(
    fake: FakeBybit, tmp_path: Path
) -> None:
    from feature_service.services.backfill_auto import ensure_warm_start_klines

    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.connect()
    await store.upgrade()
    await apply_to_store(store)
    raw = tmp_path / "raw"

    def client() -> BybitRestClient:
        return BybitRestClient(fake.base_url, bucket=TokenBucket(500, 5.0))

    jobs = BackfillJobs(store, raw, client, registry=load_registry(), now_ms=lambda: NOW_MS)
    await jobs.start()
    try:
        now_us = NOW_MS * 1000
        job = await ensure_warm_start_klines(jobs, raw, "BTCUSDT", now_us)
        assert job is not None and job.status == "completed" and job.trigger == "warm_start"
        stored = [k.start for k in klines(raw)]
        assert stored[0] <= now_us - 25 * 3600 * 1_000_000
        assert stored[-1] + MIN_US == now_us  # the last closed candle, known at `now`
        requests = fake.request_count()
        assert await ensure_warm_start_klines(jobs, raw, "BTCUSDT", now_us) is None
        assert fake.request_count() == requests
    finally:
        await jobs.stop()
        await store.close()
