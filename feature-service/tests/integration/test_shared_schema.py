"""The shared database as ws-gateway's operator leaves it, on the real PostgreSQL.

ws-gateway owns the schema and its operator applies ``ws-gateway/migrations/*.sql`` with plain
``psql`` in filename order, with no tracking table of ours. The service must start on such a
database (adopting the tables, adding only what is missing), and refuse clearly when a table
cannot fit. The psql runs use ``PGOPTIONS`` to put everything in a fresh schema per test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from feature_service.adapters.metadata import (
    DataQualityReportRecord,
    DatasetRecord,
    MigrationError,
    PostgresMetadataStore,
    RegistryVersionRecord,
)
from feature_service.adapters.metadata.migrations import SchemaIncompatible, discover_migrations
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.app import create_app
from feature_service.cli_db import app as db_app
from feature_service.config import Settings
from feature_service.market.recording import event_to_envelope, iter_recording
from feature_service.services.runtime import Runtime
from tests.fixtures.metadata import create_schema, drop_schema, postgres_url, repo_migrations_dir

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

UPSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "upstream_migrations"
KEY = {"X-API-Key": "demo-key"}
DENSE = datetime(2025, 1, 28, 1, 0, tzinfo=UTC)
# Every migration of the repository's folder: 018-022 and whatever other features added.
OURS = [m.version for m in discover_migrations(repo_migrations_dir(), "postgresql")]


async def psql_file(schema: str, path: Path) -> tuple[int, str]:
    """``psql -v ON_ERROR_STOP=1 -f path`` as the operator runs it, inside ``schema``."""
    psql = shutil.which("psql")
    assert psql is not None, "psql is needed: the operator applies migrations with it"
    env = {**os.environ, "PGOPTIONS": f"-c search_path={schema}"}
    proc = await asyncio.create_subprocess_exec(
        psql,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        postgres_url(),
        "-f",
        str(path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def sql_files(folder: Path) -> list[Path]:
    """What the shell's ``folder/*.sql`` expands to (sync: a small local directory)."""
    return sorted(folder.glob("*.sql"))


async def psql_loop(schema: str, folder: Path) -> None:
    """``for f in folder/*.sql; do psql -v ON_ERROR_STOP=1 -f $f; done``."""
    for path in sql_files(folder):
        code, out = await psql_file(schema, path)
        assert code == 0, f"{path.name}: {out}"


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = await create_schema()
    try:
        yield name
    finally:
        await drop_schema(name)


@pytest.fixture
async def store(schema: str) -> AsyncIterator[PostgresMetadataStore]:
    made = PostgresMetadataStore(postgres_url(), schema=schema)
    await made.connect()
    try:
        yield made
    finally:
        await made.close()


async def _fetch(schema: str, sql: str) -> list[tuple[object, ...]]:
    import asyncpg

    conn = await asyncpg.connect(postgres_url(), server_settings={"search_path": schema})
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _columns(schema: str, table: str) -> set[str]:
    rows = await _fetch(
        schema,
        "SELECT column_name FROM information_schema.columns"
        f" WHERE table_schema = current_schema() AND table_name = '{table}'",
    )
    return {str(r[0]) for r in rows}


# -- the upstream's tables, made by psql alone ---------------------------------------------------


async def test_upstream_tables_are_adopted_and_completed(
    schema: str, store: PostgresMetadataStore
) -> None:
    await psql_loop(schema, UPSTREAM)
    await _fetch(
        schema,
        "INSERT INTO datasets (symbol, split_strategy, target_config, feature_registry_version,"
        " train_period_start, train_period_end) VALUES ('ETHUSDT', 'time_based',"
        " '{\"type\": \"regression\"}', '1.0.0', '2025-01-01', '2025-01-02')",
    )
    assert "created_by" not in await _columns(schema, "feature_registry_versions")

    assert await store.upgrade() == OURS
    assert {"progress", "warnings", "feature_interval_s", "request"} <= await _columns(
        schema, "datasets"
    )
    assert {"created_by", "activation_reason", "breaking_changes"} <= await _columns(
        schema, "feature_registry_versions"
    )
    states = await store.migration_status()
    assert [(s.version, s.state) for s in states] == [(v, "applied") for v in OURS]
    assert await store.upgrade() == []

    # The upstream's row survived and reads with the builder's defaults.
    [existing] = await store.list_datasets()
    assert (existing.symbol, existing.warnings, existing.feature_interval_s) == ("ETHUSDT", [], 1)
    # What the upstream's CHECKs refused is accepted now (they were replaced, whatever their
    # generated names), and the rest of the store works on the adopted tables.
    queued = DatasetRecord(
        symbol="BTCUSDT",
        status="queued",
        split_strategy="random",
        target_config={"type": "regression"},
        feature_registry_version="1.0.0",
    )
    await store.create_dataset(queued)
    assert await store.get_dataset(queued.id) == queued
    start = datetime(2025, 1, 1, tzinfo=UTC)
    report = DataQualityReportRecord(
        symbol="BTCUSDT",
        period_start=start,
        period_end=start + timedelta(hours=1),
        missing_rate=0.25,
        anomaly_rate=0.0,
    )
    await store.insert_quality_report(report)
    await store.upsert_registry_version(
        RegistryVersionRecord(version="2.0.0", config={"version": "2.0.0"}, created_by="ops")
    )
    activated = await store.activate_registry_version("2.0.0", "ops", "adopted schema")
    assert (activated.is_active, activated.activated_by) == (True, "ops")
    # ws-gateway's own tables are untouched.
    assert await _fetch(schema, "SELECT count(*) FROM subscriptions") == [(0,)]


def _write_sample(root: Path, sample_path: Path) -> None:
    events = list(iter_recording(sample_path))
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(root).write_events(events, bodies)


async def _run_service_build(schema: str, data_dir: Path) -> dict[str, object]:
    """Start the service on the schema (embedded bus), build a small dataset, return its
    metadata once finished."""
    store = PostgresMetadataStore(postgres_url(), schema=schema)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        replay_enabled=False,
        retention_days=100_000,
        archive_retention_days=100_000,
        compact_after_days=None,
    )
    runtime = Runtime(settings, store=store)
    await runtime.start()
    try:
        app = create_app(settings, runtime)
        app.state.runtime = runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            health = (await http.get("/health")).json()
            assert health["services"]["database"] == "connected", health

            def at(minutes: int) -> str:
                return (DENSE + timedelta(minutes=minutes)).isoformat()

            body = {
                "symbol": "BTCUSDT",
                "split_strategy": "time_based",
                "train_period_start": at(0),
                "train_period_end": at(4),
                "validation_period_start": at(4),
                "validation_period_end": at(6),
                "test_period_start": at(6),
                "test_period_end": at(8),
                "target_config": {"type": "regression", "horizon": 5},
                "feature_registry_version": "1.1.0",
                "features": ["mid_price", "spread_rel"],
            }
            r = await http.post("/dataset/build", json=body, headers=KEY)
            assert r.status_code == 202, r.text
            dataset_id = r.json()["dataset_id"]
            for _ in range(1200):  # bounded: 120 s
                meta = (await http.get(f"/dataset/{dataset_id}", headers=KEY)).json()
                if meta["status"] in {"ready", "failed"}:
                    return dict(meta)
                await asyncio.sleep(0.1)
            raise AssertionError("the build did not finish")
    finally:
        await runtime.stop()


async def test_service_starts_and_builds_on_a_psql_migrated_upstream_database(
    schema: str, tmp_path: Path, sample_path: Path
) -> None:
    await psql_loop(schema, UPSTREAM)
    _write_sample(tmp_path / "raw", sample_path)
    meta = await _run_service_build(schema, tmp_path)
    assert meta["status"] == "ready", meta
    assert meta["train_records"] and int(str(meta["train_records"])) > 0
    recorded = await _fetch(
        schema, "SELECT version FROM feature_service_schema_migrations ORDER BY version"
    )
    assert [r[0] for r in recorded] == OURS


# -- our own files, applied by the operator's psql loop ------------------------------------------


async def test_our_migrations_by_psql_loop_then_the_service_starts(
    schema: str, store: PostgresMetadataStore, tmp_path: Path, sample_path: Path
) -> None:
    await psql_loop(schema, repo_migrations_dir())
    await psql_loop(schema, repo_migrations_dir())  # idempotent: a second run changes nothing
    assert await _fetch(
        schema,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'feature_service_schema_migrations'"
        " AND schemaname = current_schema()",
    ) == [(0,)]
    assert await store.upgrade() == OURS
    assert [s.state for s in await store.migration_status()] == ["applied"] * len(OURS)
    _write_sample(tmp_path / "raw", sample_path)
    meta = await _run_service_build(schema, tmp_path)
    assert meta["status"] == "ready", meta
    # The psql loop over the folder picks up exactly the PostgreSQL up files: no down script,
    # no SQLite twin.
    ups = discover_migrations(repo_migrations_dir(), "postgresql")
    assert {p.name for p in sql_files(repo_migrations_dir())} == {m.up_path.name for m in ups}


# -- tables that cannot fit ----------------------------------------------------------------------


async def test_an_incompatible_table_is_refused_with_a_clear_message(
    schema: str, store: PostgresMetadataStore
) -> None:
    await _fetch(
        schema,
        "CREATE TABLE datasets (id TEXT PRIMARY KEY, symbol VARCHAR(20) NOT NULL,"
        " owner_team TEXT NOT NULL)",
    )
    with pytest.raises(SchemaIncompatible) as caught:
        await store.upgrade()
    message = str(caught.value)
    assert "'datasets'" in message and "018_create_datasets_table" in message
    assert "column id is text, expected uuid" in message
    assert "column owner_team is NOT NULL without a default" in message
    assert isinstance(caught.value, MigrationError)
    # Nothing was recorded or changed.
    assert [s.state for s in await store.migration_status()] == ["pending"] * len(OURS)
    assert await _columns(schema, "datasets") == {"id", "symbol", "owner_team"}


def test_cli_upgrade_on_an_incompatible_table_prints_the_reason_not_a_traceback(
    cli_schema_url: tuple[str, str],
) -> None:
    schema, url = cli_schema_url
    asyncio.run(
        _fetch(schema, "CREATE TABLE data_quality_reports (id UUID PRIMARY KEY, symbol INTEGER)")
    )
    result = CliRunner().invoke(db_app, ["upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert "does not fit migration 020_create_data_quality_reports_table" in result.stderr
    assert "column symbol is int4, expected string" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def cli_schema_url() -> Iterator[tuple[str, str]]:
    name = asyncio.run(create_schema())
    try:
        separator = "&" if "?" in postgres_url() else "?"
        yield name, f"{postgres_url()}{separator}search_path={name}"
    finally:
        asyncio.run(drop_schema(name))


def test_serve_on_an_incompatible_table_exits_with_the_reason(
    cli_schema_url: tuple[str, str], tmp_path: Path
) -> None:
    from feature_service.cli import app as main_app

    schema, url = cli_schema_url
    asyncio.run(_fetch(schema, "CREATE TABLE feature_registry_versions (version INTEGER)"))
    env = {"FEATURE_SERVICE_DATABASE_URL": url, "FEATURE_SERVICE_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main_app, ["serve"], env=env)
    assert result.exit_code == 1, result.output
    assert "does not fit migration 019_create_feature_registry_versions_table" in result.stderr
    assert "column version is int4, expected string" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # The server never started (it would have printed its banner first).
    assert "API key" not in result.stdout
