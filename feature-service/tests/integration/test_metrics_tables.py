"""Operations metrics tables (migration 026) on SQLite and the real PostgreSQL: the background
writer fills them, retention empties them, the migration reverts, and a database that stops
answering costs the writer counted failures and the live path nothing."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from benchmarks.blackhole import BlackholeProxy

from feature_service.adapters.metadata import MetadataStore
from feature_service.adapters.metadata.metrics_sink import (
    API_ENDPOINT,
    DATASET_BUILDING,
    FEATURE_COMPUTATION,
    PostgresMetricsSink,
    sink_for_store,
)
from feature_service.adapters.metadata.records import DatasetRecord
from feature_service.engine.vector import FeatureVector
from feature_service.services.metrics_writer import MetricsWriter
from tests.fixtures.metadata import postgres_url, repo_migrations_dir

pytest_plugins = ["tests.fixtures.metadata"]

MIGRATION = "026_create_operations_metrics_tables.sql"
TABLES = {FEATURE_COMPUTATION, DATASET_BUILDING, API_ENDPOINT}
T0 = 1_795_600_000_000_000


class ManualClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


def migration_sql(kind: str, down: bool = False) -> str:
    base = repo_migrations_dir()
    if kind == "sqlite":
        base = base / "sqlite"
    if down:
        base = base / "down"
    return (base / MIGRATION).read_text()


async def run_sql(store: MetadataStore, sql: str) -> None:
    """Apply a migration file as ws-gateway does (psql / sqlite3 on the whole script)."""
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            conn.executescript(sql)
        finally:
            conn.close()
        return
    conn = await asyncpg.connect(
        postgres_url(),
        server_settings={"search_path": store.schema},  # type: ignore[attr-defined]
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fetch(store: MetadataStore, sql: str) -> list[tuple[Any, ...]]:
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    conn = await asyncpg.connect(
        postgres_url(),
        server_settings={"search_path": store.schema},  # type: ignore[attr-defined]
    )
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def tables_of(store: MetadataStore) -> set[str]:
    if store.kind == "sqlite":
        rows = await fetch(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await fetch(
            store,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema()",
        )
    return {r[0] for r in rows}


def vectors(n: int) -> list[FeatureVector]:
    return [
        FeatureVector(
            "BTCUSDT",
            T0 + i * 1_000_000,
            1 if i % 2 else 60,
            {"a": 1.0, "b": None, "c": 2.0},
            "1.1.0",
            null_reasons={"b": "warming_up"},
            trace_id=f"tr-{i}",
            computation_us=123.456,
        )
        for i in range(n)
    ]


async def test_writer_fills_the_three_tables(store: MetadataStore) -> None:
    await run_sql(store, migration_sql(store.kind))
    writer = MetricsWriter(sink_for_store(store), batch=4)
    try:
        writer.on_vectors(vectors(10))
        writer.api_request("/features/latest", "GET", 1.2346, 200, "BTCUSDT", "tr-http")
        rec = DatasetRecord(
            symbol="BTCUSDT",
            status="queued",
            split_strategy="time_based",
            target_config={"type": "regression", "horizon": 60},
            feature_registry_version="1.1.0",
        )
        writer.build_started(rec, "tr-build")
        done = dataclasses.replace(
            rec, status="ready", train_records=5, validation_records=2, test_records=1
        )
        writer.build_finished(done, 3.6, "tr-build")
        while writer.queued():
            await writer.flush()
        assert writer.outcomes()[(FEATURE_COMPUTATION, "written")] == 10
        rows = await fetch(
            store,
            "SELECT symbol, computation_interval, latency_ms, features_count, error_count,"
            " trace_id FROM feature_computation_metrics ORDER BY trace_id",
        )
        assert len(rows) == 10
        assert {r[1] for r in rows} == {"1s", "1m"}
        assert all(float(r[2]) == 0.123 and r[3] == 3 and r[4] == 1 for r in rows)
        [api] = await fetch(
            store, "SELECT endpoint, method, response_time_ms, status_code, symbol, trace_id"
            " FROM api_endpoint_metrics"
        )  # fmt: skip
        assert api[:2] == ("/features/latest", "GET") and float(api[2]) == 1.235
        assert api[3:] == (200, "BTCUSDT", "tr-http")
        # The build's start row was updated by its end: one row per build.
        [build] = await fetch(
            store,
            "SELECT dataset_id, build_status, build_duration_seconds, records_count,"
            " train_records, test_records, trace_id, build_completed_at FROM"
            " dataset_building_metrics",
        )
        assert str(build[0]) == str(rec.id)
        assert build[1:7] == ("ready", 4, 8, 5, 1, "tr-build")
        assert build[7] is not None
    finally:
        await writer.close()


async def test_retention_deletes_old_rows(store: MetadataStore) -> None:
    await run_sql(store, migration_sql(store.kind))
    writer = MetricsWriter(sink_for_store(store), retention_days=7)
    try:
        writer.on_vectors(vectors(3))
        await writer.flush()
        now = datetime.fromtimestamp(T0 / 1e6, UTC) + timedelta(days=7, seconds=1.5)
        deleted = await writer.apply_retention(now)
        assert deleted[FEATURE_COMPUTATION] == 2  # rows at T0 and T0+1s; T0+2s is kept
        [(left,)] = await fetch(store, "SELECT count(*) FROM feature_computation_metrics")
        assert left == 1
    finally:
        await writer.close()


async def test_migration_is_reversible(store: MetadataStore) -> None:
    before = await tables_of(store)
    await run_sql(store, migration_sql(store.kind))
    assert await tables_of(store) >= TABLES
    await run_sql(store, migration_sql(store.kind))  # idempotent
    await run_sql(store, migration_sql(store.kind, down=True))
    assert await tables_of(store) == before - TABLES


async def test_a_blackholed_database_is_counted_never_raised() -> None:
    proxy = await BlackholeProxy("127.0.0.1", 5432).start()
    proxy.blackhole()
    url = proxy.url("postgresql://postgres@127.0.0.1:{port}/test")
    writer = MetricsWriter(
        PostgresMetricsSink(url, connect_timeout_s=0.3), max_queue=5, write_timeout_s=0.5
    )
    try:
        writer.on_vectors(vectors(8))  # 5 queued, 3 dropped at once
        assert writer.outcomes()[(FEATURE_COMPUTATION, "dropped")] == 3
        assert await writer.flush() == 0
        assert writer.outcomes()[(FEATURE_COMPUTATION, "failed")] == 5
        assert writer.last_error is not None
        assert proxy.accepted >= 1
    finally:
        await writer.close(drain_timeout_s=0.2)
        await proxy.close()


def test_row_ids_of_a_build_are_stable() -> None:
    writer = MetricsWriter(None)
    rec = DatasetRecord(
        symbol="X",
        status="ready",
        split_strategy="time_based",
        target_config={},
        feature_registry_version="1",
    )
    a = writer._row(DATASET_BUILDING, (rec, "building", None, "t", 0))
    b = writer._row(DATASET_BUILDING, (rec, "ready", 1.0, "t", 10**15))
    assert a[0] == b[0] and isinstance(a[0], uuid.UUID)


async def test_the_running_service_fills_the_tables_from_its_own_migrations(
    tmp_path: Path,
) -> None:
    """Embedded defaults: the store's upgrade creates the tables (migration 026), the live path
    and the HTTP middleware feed the writer, and rows land in the SQLite file."""
    import httpx

    from feature_service.app import create_app
    from feature_service.config import Settings
    from feature_service.services.runtime import Runtime
    from tests.fixtures import events as ev
    from tests.fixtures.waiting import wait_until

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        replay_enabled=False,
        intervals=[1],
        metrics_flush_s=0.05,
    )
    rt = Runtime(settings)
    app = create_app(settings, runtime=rt)
    app.state.runtime = rt
    clock = ManualClock(T0)
    rt.live.clock = clock
    await rt.start()
    try:
        for i in range(3):
            clock.now = T0 + i * 1_000_000
            rt.live.ingest(ev.body(ev.trade(clock.now, i)), settings.queue_trade)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://t"
        ) as client:
            await client.get("/health", headers={"X-Trace-Id": "trace-health"})
        written = rt.metrics_writer.counts
        await wait_until(
            lambda: (
                written[(FEATURE_COMPUTATION, "written")] >= 2
                and written[(API_ENDPOINT, "written")] >= 1
            ),
            15,
            "rows written",
        )
        conn = sqlite3.connect(settings.sqlite_path)
        try:
            vectors_rows = conn.execute(
                "SELECT trace_id FROM feature_computation_metrics ORDER BY computation_timestamp"
            ).fetchall()
            api_rows = conn.execute(
                "SELECT endpoint, trace_id FROM api_endpoint_metrics"
            ).fetchall()
        finally:
            conn.close()
        assert [r[0] for r in vectors_rows] == ["tr-0", "tr-1"]
        assert ("/health", "trace-health") in api_rows
    finally:
        await rt.stop()
