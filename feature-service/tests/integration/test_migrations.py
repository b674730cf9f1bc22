"""Schema migrations on both backends, and the ``feature-service db`` commands."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from feature_service.adapters.metadata import (
    ChecksumMismatch,
    DatasetRecord,
    MigrationError,
    default_migrations_dir,
)
from feature_service.adapters.metadata import migrations as migrations_module
from feature_service.adapters.metadata.migrations import (
    AppliedMigration,
    checksum_of,
    discover_migrations,
    plan_downgrade,
    plan_upgrade,
)
from feature_service.adapters.metadata.sessions import split_statements
from feature_service.cli_db import app as db_app
from tests.fixtures import metadata as metadata_fixtures

if TYPE_CHECKING:
    from tests.fixtures.metadata import RawDb, StoreFactory

pytest_plugins = ["tests.fixtures.metadata"]

CORE = (18, 19, 20, 22)  # the shared schema's own migrations (issue 16)


@pytest.fixture(autouse=True)
def only_core_migrations(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The runner's rules are tested on 018-022 only: the migrations other features add (023+)
    would change every expected list here without changing a rule. The repository's whole
    folder is checked by ``test_repo_migrations_are_discovered_in_order`` and, applied by psql
    and adopted, by test_shared_schema.py."""
    source = default_migrations_dir()
    assert source is not None
    target = tmp_path_factory.mktemp("core-migrations")
    for sub in ("", "down", "sqlite", "sqlite/down"):
        (target / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / sub).glob("*.sql")):
            if int(path.name[:3]) in CORE:
                shutil.copyfile(path, target / sub / path.name)
    monkeypatch.setattr(migrations_module, "default_migrations_dir", lambda: target)
    monkeypatch.setattr(metadata_fixtures, "repo_migrations_dir", lambda: target)
    return target


pytestmark = pytest.mark.timeout(120)

TABLES = {"datasets", "feature_registry_versions", "data_quality_reports"}
NAMES = {
    18: "create_datasets_table",
    19: "create_feature_registry_versions_table",
    20: "create_data_quality_reports_table",
    22: "extend_datasets_for_builder",
}
BUILDER_COLUMNS = {"progress", "folds", "warnings", "manifest", "feature_interval_s", "request"}
BASE_DATASET_COLUMNS = {
    "id",
    "symbol",
    "status",
    "split_strategy",
    "train_period_start",
    "train_period_end",
    "validation_period_start",
    "validation_period_end",
    "test_period_start",
    "test_period_end",
    "walk_forward_config",
    "target_config",
    "feature_registry_version",
    "train_records",
    "validation_records",
    "test_records",
    "output_format",
    "storage_path",
    "created_at",
    "completed_at",
    "estimated_completion",
    "error_message",
}
REGISTRY_COLUMNS = {
    "version",
    "config",
    "is_active",
    "validated_at",
    "validation_errors",
    "loaded_at",
    "created_at",
    "created_by",
    "activated_by",
    "rollback_from",
    "previous_version",
    "schema_version",
    "migration_script",
    "compatibility_warnings",
    "breaking_changes",
    "activation_reason",
}
QUALITY_COLUMNS = {
    "id",
    "symbol",
    "period_start",
    "period_end",
    "missing_rate",
    "anomaly_rate",
    "sequence_gaps",
    "desynchronization_events",
    "anomaly_details",
    "sequence_gap_details",
    "recommendations",
    "created_at",
}


def _insert_dataset_sql(status: str = "building", split: str = "time_based") -> str:
    """Portable SQL (PostgreSQL casts the literals to uuid / jsonb), for schemas the store's
    queries do not fit (before 022)."""
    return (
        "INSERT INTO datasets (id, symbol, status, split_strategy, target_config,"
        " feature_registry_version, created_at) VALUES"
        f" ('{uuid4()}', 'BTCUSDT', '{status}', '{split}', '{{\"type\": \"regression\"}}',"
        " '1.0.0', '2025-01-01 00:00:00.000000')"
    )


def _edit(directory: Path, pattern: str, change: Callable[[str], str]) -> None:
    """Edit migration files in place (a sync helper: tests here touch small local files)."""
    for path in directory.glob(pattern):
        path.write_text(change(path.read_text()))


def _remove(directory: Path, pattern: str) -> None:
    for path in directory.glob(pattern):
        path.unlink()


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_repo_migrations_are_discovered_in_order(dialect: str) -> None:
    directory = default_migrations_dir()
    assert directory is not None and directory.name == "migrations"
    assert directory.parent.name == "ws-gateway"
    found = discover_migrations(directory, dialect)  # type: ignore[arg-type]
    assert {m.version: m.name for m in found if m.version in CORE} == NAMES
    versions = [m.version for m in found]
    assert versions == sorted(set(versions)) and versions[:4] == [18, 19, 20, 22]
    assert 21 not in versions  # ws-gateway's own 021: ours must never take that number
    for m in found:
        assert m.up_path.name == f"{m.version:03d}_{m.name}.sql"
        assert m.up_path.parent == (directory / "sqlite" if dialect == "sqlite" else directory)
        assert m.down_sql is not None and "DROP" in m.down_sql.upper()
        assert m.checksum == checksum_of(m.up_path.read_text())


def test_checksum_ignores_line_endings_only() -> None:
    assert checksum_of("CREATE TABLE a (x INT);\n") == checksum_of("CREATE TABLE a (x INT);\r\n")
    assert checksum_of("CREATE TABLE a (x INT);\n") != checksum_of("CREATE TABLE a (x INT); \n")
    # Known SHA-256 of the empty string: the hash is the plain file digest.
    assert checksum_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_discovery_rejects_inconsistent_files(tmp_path: Path) -> None:
    (tmp_path / "down").mkdir()
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="two postgresql up migrations with version 1"):
        discover_migrations(tmp_path, "postgresql")
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "down" / "002_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without an up file"):
        discover_migrations(tmp_path, "postgresql")
    (tmp_path / "down" / "002_c.sql").unlink()
    (tmp_path / "down" / "001_z.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="up is 'a' but down is 'z'"):
        discover_migrations(tmp_path, "postgresql")
    (tmp_path / "down" / "001_z.sql").unlink()
    (tmp_path / "README.md").write_text("not a migration")
    (tmp_path / "sqlite" / "001_a.sql").write_text("SELECT 2;")
    pg = discover_migrations(tmp_path, "postgresql")
    lite = discover_migrations(tmp_path, "sqlite")
    assert [(m.version, m.up_sql, m.down_sql) for m in pg] == [(1, "SELECT 1;", None)]
    assert [(m.version, m.up_sql) for m in lite] == [(1, "SELECT 2;")]
    with pytest.raises(MigrationError, match="not found"):
        discover_migrations(tmp_path / "nope", "sqlite")


def test_sqlite_scripts_split_into_statements() -> None:
    script = (
        "-- header; with a semicolon\n"
        "CREATE TABLE a (x TEXT DEFAULT ';');\n"
        "INSERT INTO a VALUES ('x;y'); -- note\n"
        "\n-- trailing comment\n"
    )
    assert split_statements(script) == [
        "-- header; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('x;y'); -- note",
    ]
    with pytest.raises(MigrationError, match="incomplete"):
        split_statements("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER)\n")


def test_plans_pick_the_right_versions(only_core_migrations: Path) -> None:
    migrations = discover_migrations(only_core_migrations, "sqlite")
    now = datetime(2025, 1, 1, tzinfo=UTC)

    def applied(*versions: int) -> list[AppliedMigration]:
        by_version = {m.version: m for m in migrations}
        return [
            AppliedMigration(v, by_version[v].name, by_version[v].checksum, now) for v in versions
        ]

    def versions(plan: list) -> list[int]:
        return [m.version for m in plan]

    assert versions(plan_upgrade(migrations, [])) == [18, 19, 20, 22]
    assert versions(plan_upgrade(migrations, [], to=19)) == [18, 19]
    assert versions(plan_upgrade(migrations, applied(18, 19), to=20)) == [20]
    assert versions(plan_upgrade(migrations, applied(18, 19, 20, 22))) == []
    assert versions(plan_downgrade(migrations, applied(18, 19, 20))) == [20]
    assert versions(plan_downgrade(migrations, applied(18, 19, 20), steps=2)) == [20, 19]
    assert versions(plan_downgrade(migrations, applied(18, 19, 20), steps=9)) == [20, 19, 18]
    assert versions(plan_downgrade(migrations, applied(18, 19, 20), to=18)) == [20, 19]
    assert versions(plan_downgrade(migrations, applied(18, 19, 20), to=0)) == [20, 19, 18]
    assert versions(plan_downgrade(migrations, [], to=0)) == []
    with pytest.raises(MigrationError, match="not both"):
        plan_downgrade(migrations, applied(18), to=0, steps=1)
    with pytest.raises(MigrationError, match=">= 0"):
        plan_upgrade(migrations, [], to=-1)


# -- applying and rolling back ------------------------------------------------------------------


async def test_upgrade_creates_every_table_column_and_index(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    before = await store.migration_status()
    assert [(s.version, s.name, s.state, s.applied_at) for s in before] == [
        (v, n, "pending", None) for v, n in NAMES.items()
    ]
    assert await store.upgrade() == [18, 19, 20, 22]
    assert await raw_db.tables() >= TABLES | {"feature_service_schema_migrations"}
    assert await raw_db.columns("datasets") == BASE_DATASET_COLUMNS | BUILDER_COLUMNS
    assert await raw_db.columns("feature_registry_versions") == REGISTRY_COLUMNS
    assert await raw_db.columns("data_quality_reports") == QUALITY_COLUMNS
    assert await raw_db.indexes("datasets") == {
        "idx_datasets_status",
        "idx_datasets_symbol",
        "idx_datasets_created_at",
    }
    assert await raw_db.indexes("feature_registry_versions") == {
        "idx_feature_registry_versions_is_active",
        "idx_feature_registry_versions_created_at",
        "idx_feature_registry_versions_previous_version",
        "uq_feature_registry_versions_one_active",
    }
    assert await raw_db.indexes("data_quality_reports") == {
        "idx_data_quality_reports_symbol_period",
        "idx_data_quality_reports_created_at",
    }
    after = await store.migration_status()
    assert [(s.version, s.state) for s in after] == [(v, "applied") for v in NAMES]
    assert all(s.applied_at is not None and s.applied_at.tzinfo is UTC for s in after)
    recorded = await raw_db.fetch(
        "SELECT version, name FROM feature_service_schema_migrations ORDER BY version"
    )
    assert recorded == list(NAMES.items())
    assert await store.upgrade() == []


async def test_roll_everything_back_and_apply_again(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    record = DatasetRecord(
        symbol="BTCUSDT",
        split_strategy="random",
        target_config={"type": "regression"},
        feature_registry_version="1.0.0",
    )
    await store.create_dataset(record)
    await store.delete_dataset(record.id)  # a random-split row would block rolling back 022

    assert await store.downgrade(to=0) == [22, 20, 19, 18]
    assert (await raw_db.tables()) & TABLES == set()
    assert await raw_db.fetch("SELECT count(*) FROM feature_service_schema_migrations") == [(0,)]
    assert [s.state for s in await store.migration_status()] == ["pending"] * 4

    assert await store.upgrade() == [18, 19, 20, 22]
    await store.create_dataset(record)
    assert await store.get_dataset(record.id) == record


async def test_partial_upgrade_and_stepwise_downgrade(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    assert await store.upgrade(to=19) == [18, 19]
    assert (await raw_db.tables()) & TABLES == {"datasets", "feature_registry_versions"}
    assert await raw_db.columns("datasets") == BASE_DATASET_COLUMNS
    assert await store.upgrade(to=19) == []
    assert await store.upgrade() == [20, 22]

    assert await store.downgrade() == [22]
    assert await raw_db.columns("datasets") == BASE_DATASET_COLUMNS
    states = {s.version: s.state for s in await store.migration_status()}
    assert states == {18: "applied", 19: "applied", 20: "applied", 22: "pending"}
    assert await store.downgrade(steps=2) == [20, 19]
    assert (await raw_db.tables()) & TABLES == {"datasets"}
    assert await store.downgrade(steps=0) == []
    with pytest.raises(MigrationError, match="not both"):
        await store.downgrade(to=0, steps=1)


async def test_rows_survive_migration_022_both_ways(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade(to=20)
    await raw_db.execute(_insert_dataset_sql("ready", "walk_forward"))
    await store.upgrade()
    [row] = await store.list_datasets()
    assert (row.status, row.split_strategy, row.warnings, row.feature_interval_s) == (
        "ready",
        "walk_forward",
        [],
        1,
    )
    assert row.created_at == datetime(2025, 1, 1, tzinfo=UTC)
    queued = await store.update_dataset(row.id, status="queued", progress={"p": 0})

    assert await store.downgrade() == [22]
    rows = await raw_db.fetch("SELECT status, error_message FROM datasets")
    assert rows == [("failed", "queued build abandoned: schema downgraded below 022")]
    await store.upgrade()
    back = await store.get_dataset(queued.id)
    assert back is not None and (back.status, back.progress) == ("failed", None)


async def test_database_default_created_at_is_utc(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    before = datetime.now(UTC)
    await raw_db.execute(
        "INSERT INTO datasets (id, symbol, split_strategy, target_config,"
        f" feature_registry_version) VALUES ('{uuid4()}', 'BTCUSDT', 'time_based', '{{}}', '1')"
    )
    [row] = await store.list_datasets()
    # The raw session runs in Asia/Tokyo on PostgreSQL: a zone-dependent default would be 9 h off.
    assert before - timedelta(seconds=2) <= row.created_at <= datetime.now(UTC)


async def test_downgrade_of_022_is_refused_while_random_splits_exist(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    record = DatasetRecord(
        symbol="BTCUSDT",
        status="queued",
        split_strategy="random",
        target_config={"type": "regression"},
        feature_registry_version="1.0.0",
    )
    await store.create_dataset(record)
    with pytest.raises(MigrationError, match="022_extend_datasets_for_builder"):
        await store.downgrade()
    # Nothing of the failed migration stuck: still at 022, the row untouched.
    assert [s.state for s in await store.migration_status()] == ["applied"] * 4
    assert await store.get_dataset(record.id) == record
    assert await raw_db.columns("datasets") >= BUILDER_COLUMNS


async def test_a_failing_migration_leaves_no_trace(
    store_factory: StoreFactory, raw_db: RawDb, migrations_copy: Path
) -> None:
    for folder in (migrations_copy, migrations_copy / "sqlite"):
        (folder / "099_broken.sql").write_text(
            "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
        )
    store = store_factory(migrations_copy)
    await store.connect()
    with pytest.raises(MigrationError, match="099_broken"):
        await store.upgrade()
    assert "half_done" not in await raw_db.tables()
    states = {s.version: s.state for s in await store.migration_status()}
    assert states == {18: "applied", 19: "applied", 20: "applied", 22: "applied", 99: "pending"}


async def test_changed_checksum_is_refused(
    store_factory: StoreFactory, migrations_copy: Path
) -> None:
    store = store_factory(migrations_copy)
    await store.connect()
    await store.upgrade(to=20)
    _edit(migrations_copy, "**/019_*.sql", lambda sql: sql + "\n-- edited after being applied\n")
    edited = store_factory(migrations_copy)
    await edited.connect()
    with pytest.raises(ChecksumMismatch) as caught:
        await edited.upgrade()
    assert caught.value.version == 19
    with pytest.raises(ChecksumMismatch):
        await edited.downgrade()
    states = {s.version: s.state for s in await edited.migration_status()}
    assert states == {18: "applied", 19: "changed", 20: "applied", 22: "pending"}


async def test_applied_version_without_a_file_is_refused(
    store_factory: StoreFactory, migrations_copy: Path
) -> None:
    store = store_factory(migrations_copy)
    await store.connect()
    await store.upgrade()
    _remove(migrations_copy, "**/022_*")
    older = store_factory(migrations_copy)
    await older.connect()
    with pytest.raises(MigrationError, match="022_extend_datasets_for_builder"):
        await older.upgrade()
    states = {s.version: s.state for s in await older.migration_status()}
    assert states == {18: "applied", 19: "applied", 20: "applied", 22: "missing"}


async def test_two_stores_upgrading_at_once_apply_each_migration_once(
    store_factory: StoreFactory,
) -> None:
    first, second = store_factory(), store_factory()
    await first.connect()
    await second.connect()
    results = await asyncio.gather(first.upgrade(), second.upgrade())
    assert sorted(v for done in results for v in done) == [18, 19, 20, 22]
    assert [s.state for s in await second.migration_status()] == ["applied"] * 4


async def test_no_migrations_directory_is_a_clear_error(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    store = store_factory(tmp_path / "missing")
    await store.connect()
    with pytest.raises(MigrationError, match="not found"):
        await store.upgrade()


# -- CLI ----------------------------------------------------------------------------------------


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(db_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_upgrade_status_downgrade(cli_database_url: str, metadata_backend: str) -> None:
    url = ("--database-url", cli_database_url)

    code, out, _ = _invoke("status", *url)
    assert code == 0
    assert out.splitlines()[0].split() == ["018", "pending", "create_datasets_table"]
    assert out.splitlines()[-1] == f"{metadata_backend}: at version none"

    code, out, _ = _invoke("upgrade", "--to", "20", *url)
    assert code == 0, out
    assert out.splitlines() == [
        "applied   018_create_datasets_table",
        "applied   019_create_feature_registry_versions_table",
        "applied   020_create_data_quality_reports_table",
        f"{metadata_backend}: at version 020",
    ]
    code, out, _ = _invoke("upgrade", *url)
    assert (code, out.splitlines()[0]) == (0, "applied   022_extend_datasets_for_builder")

    code, out, _ = _invoke("status", *url)
    lines = out.splitlines()
    assert [line.split()[:3] for line in lines[:4]] == [
        [f"{v:03d}", "applied", n] for v, n in NAMES.items()
    ]
    assert all(line.endswith("UTC") for line in lines[:4])
    assert lines[-1] == f"{metadata_backend}: at version 022"

    code, out, _ = _invoke("downgrade", "--steps", "2", *url)
    assert code == 0
    assert out.splitlines() == [
        "reverted  022_extend_datasets_for_builder",
        "reverted  020_create_data_quality_reports_table",
        f"{metadata_backend}: at version 019",
    ]
    code, out, _ = _invoke("downgrade", *url)
    assert out.splitlines() == [
        "reverted  019_create_feature_registry_versions_table",
        f"{metadata_backend}: at version 018",
    ]
    code, out, _ = _invoke("downgrade", "--to", "0", *url)
    assert out.splitlines()[-1] == f"{metadata_backend}: at version none"
    code, out, _ = _invoke("downgrade", "--to", "0", *url)
    assert (code, out.splitlines()) == (
        0,
        ["nothing to roll back", f"{metadata_backend}: at version none"],
    )


def test_cli_refuses_both_to_and_steps(cli_database_url: str) -> None:
    code, _, err = _invoke(
        "downgrade", "--to", "0", "--steps", "1", "--database-url", cli_database_url
    )
    assert code == 2
    assert "not both" in err


def test_cli_reports_a_changed_checksum(cli_database_url: str, migrations_copy: Path) -> None:
    args = ("--database-url", cli_database_url, "--migrations-dir", str(migrations_copy))
    assert _invoke("upgrade", *args)[0] == 0
    _edit(migrations_copy, "**/018_*.sql", lambda sql: sql.replace("VARCHAR(20)", "VARCHAR(30)"))
    code, out, err = _invoke("upgrade", *args)
    assert code == 1
    assert "018_create_datasets_table was applied with checksum" in err
    code, out, _ = _invoke("status", *args)
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["018", "changed"]


def test_cli_uses_the_sqlite_path_when_no_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEATURE_SERVICE_DATABASE_URL", raising=False)
    path = tmp_path / "nested" / "fs.sqlite3"
    code, out, _ = _invoke("upgrade", "--sqlite-path", str(path))
    assert code == 0
    assert out.splitlines()[-1] == "sqlite: at version 022"
    assert path.is_file()


# -- records made before the renumbering --------------------------------------------------------

# SHA-256 of the up files as they were before the layout change (git history of
# ws-gateway/migrations/*.up.sql and *.sqlite.up.sql), per backend.
OLD_CHECKSUMS = {
    "postgresql": {
        18: "8e8518359e89a730b9eb11445b56d19ad722aab84db992813d96d1466de59509",
        19: "5622bdfd09ffb00fad3c69c70d323b439760e9704a77f23f24afbb2d9585cd2a",
        20: "42382f9d232baa059e96f03c170ee789677b9c95c1d523b980a7ffaeb1db5141",
        21: "5277e0df206c066d3a8420c9a9c66a04e2b54a7f0bbbf645a1640885f05aeba6",
    },
    "sqlite": {
        18: "307f908ac95182d7dd93318cc5bc82da4b5d9ae8da02c94022e5613478fa443c",
        19: "e4c4d0d328ccf06825fe436d4d4b9c7e3a4dddbc66ad1ea9bcf1e095a74ed28f",
        20: "ce49b53181683f254e1e4c5afe60933e8548a9274c490988f978486ac2431e43",
        21: "218bdc577fd9029b23d4e09946e1de82baf7f5fcd3f01b1d3b030fdca8452031",
    },
}
OLD_NAMES = {**{v: n for v, n in NAMES.items() if v != 22}, 21: "extend_datasets_for_builder"}


async def _record_as_before_renumbering(raw_db: RawDb, backend: str, **override: str) -> None:
    await raw_db.execute("DELETE FROM feature_service_schema_migrations")
    for version, name in OLD_NAMES.items():
        checksum = override.get(str(version), OLD_CHECKSUMS[backend][version])
        await raw_db.execute(
            "INSERT INTO feature_service_schema_migrations (version, name, checksum, applied_at)"
            f" VALUES ({version}, '{name}', '{checksum}', '2025-01-0{version - 17} 00:00:00')"
        )


async def test_records_from_before_the_renumbering_are_carried_over(
    store_factory: StoreFactory, raw_db: RawDb, metadata_backend: str
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    await _record_as_before_renumbering(raw_db, metadata_backend)

    status = await store.migration_status()  # read-only: shown as applied, not rewritten yet
    assert [(s.version, s.name, s.state) for s in status] == [
        (v, n, "applied") for v, n in NAMES.items()
    ]
    assert [s.applied_at for s in status] == [
        datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)
    ]
    assert (await raw_db.fetch("SELECT max(version) FROM feature_service_schema_migrations")) == [
        (21,)
    ]

    assert await store.upgrade() == []
    migrations = discover_migrations(
        migrations_module.default_migrations_dir() or Path("."),
        metadata_backend,  # type: ignore[arg-type]
    )
    rows = await raw_db.fetch(
        "SELECT version, name, checksum FROM feature_service_schema_migrations ORDER BY version"
    )
    assert rows == [(m.version, m.name, m.checksum) for m in migrations]
    assert await store.downgrade() == [22]
    assert await raw_db.columns("datasets") == BASE_DATASET_COLUMNS


async def test_an_old_record_with_an_unknown_checksum_is_still_refused(
    store_factory: StoreFactory, raw_db: RawDb, metadata_backend: str
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    await _record_as_before_renumbering(raw_db, metadata_backend, **{"21": "0" * 64})
    with pytest.raises(MigrationError, match="021_extend_datasets_for_builder applied but no file"):
        await store.upgrade()
    await _record_as_before_renumbering(raw_db, metadata_backend, **{"19": "f" * 64})
    with pytest.raises(ChecksumMismatch):
        await store.upgrade()
