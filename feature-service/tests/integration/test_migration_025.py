"""Migration 025 (registry versions as files, audit trail) on both backends: what it adds, that
it is reversible, that the PostgreSQL file is idempotent (psql may apply it twice), and that
the store reads and writes the new columns and the audit table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from feature_service.adapters.metadata import default_migrations_dir
from feature_service.adapters.metadata.records import RegistryAuditRecord, RegistryVersionRecord

if TYPE_CHECKING:
    from tests.fixtures.metadata import RawDb, StoreFactory

pytest_plugins = ["tests.fixtures.metadata"]
pytestmark = pytest.mark.timeout(120)


async def test_025_adds_file_columns_and_audit_and_rolls_back(
    store_factory: StoreFactory, raw_db: RawDb
) -> None:
    store = store_factory()
    await store.connect()
    assert 25 in await store.upgrade()
    assert {"file_path", "file_hash"} <= await raw_db.columns("feature_registry_versions")
    assert "feature_registry_audit" in await raw_db.tables()
    assert await raw_db.columns("feature_registry_audit") == {
        "id",
        "version",
        "action",
        "actor",
        "reason",
        "details",
        "created_at",
    }
    reverted = await store.downgrade(to=24)
    assert reverted[-1] == 25  # later migrations (if any) go first
    assert not {"file_path", "file_hash"} & await raw_db.columns("feature_registry_versions")
    assert "feature_registry_audit" not in await raw_db.tables()
    assert await store.upgrade() == sorted(reverted)


async def test_store_keeps_file_hash_and_audit_trail(store_factory: StoreFactory) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    record = RegistryVersionRecord(
        version="2.0.0",
        config={"version": "2.0.0", "features": [{"name": "rsi_7"}]},
        file_path="/tmp/feature_registry_v2.0.0.yaml",
        file_hash="ab" * 32,
    )
    await store.upsert_registry_version(record)
    got = await store.get_registry_version("2.0.0")
    assert got is not None and (got.file_path, got.file_hash) == (record.file_path, "ab" * 32)
    for action in ("create", "activate", "rollback"):
        await store.add_registry_audit(
            RegistryAuditRecord(
                version="2.0.0",
                action=action,
                actor="ana",
                reason=action,
                details={"previous_version": "1.1.0"},
            )
        )
    await store.add_registry_audit(RegistryAuditRecord(version="1.1.0", action="create"))
    trail = await store.list_registry_audit("2.0.0")
    assert [(a.action, a.actor, a.details) for a in trail] == [
        ("create", "ana", {"previous_version": "1.1.0"}),
        ("activate", "ana", {"previous_version": "1.1.0"}),
        ("rollback", "ana", {"previous_version": "1.1.0"}),
    ]
    assert len(await store.list_registry_audit()) == 4
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own kind
        await store.add_registry_audit(RegistryAuditRecord(version="2.0.0", action="explode"))


async def test_postgresql_file_is_idempotent_the_sqlite_twin_is_runner_only(
    store_factory: StoreFactory, raw_db: RawDb, metadata_backend: str
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    directory = default_migrations_dir()
    assert directory is not None
    if metadata_backend == "postgresql":
        # psql applies the whole folder, any number of times
        sql = (directory / "025_registry_versions_files.sql").read_text()
        await raw_db.execute(sql)
        await raw_db.execute(sql)
        assert {"file_path", "file_hash"} <= await raw_db.columns("feature_registry_versions")
    else:
        # only the runner applies SQLite files, once (it records them)
        sql = (directory / "sqlite" / "025_registry_versions_files.sql").read_text()
        with pytest.raises(Exception, match="duplicate column"):
            await raw_db.execute(sql)
