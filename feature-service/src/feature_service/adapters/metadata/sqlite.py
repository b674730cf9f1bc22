"""SQLite metadata store (aiosqlite): the embedded default, one file, no server.

Same behaviour as the PostgreSQL store. Storage: UUIDs as canonical text, JSON and arrays as
JSON text, timestamps as UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (text order = time order),
booleans as 0/1, rates rounded to 4 decimals like PostgreSQL's DECIMAL(5,4).

One connection serves the store; an ``asyncio.Lock`` serialises its use, so a coroutine never
sees another's open transaction. Writes that span statements use ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiosqlite
import orjson

from feature_service.adapters.metadata import migrations as mig
from feature_service.adapters.metadata.backfill_jobs import SqliteBackfillJobs
from feature_service.adapters.metadata.base import (
    ConstraintViolation,
    StoreKind,
    StoreNotConnected,
)
from feature_service.adapters.metadata.records import (
    AUDIT_COLUMNS,
    AUDIT_FIELDS,
    DATASET_ARRAY_FIELDS,
    DATASET_COLUMNS,
    DATASET_FIELDS,
    DATASET_JSON_FIELDS,
    QUALITY_ARRAY_FIELDS,
    QUALITY_COLUMNS,
    QUALITY_FIELDS,
    QUALITY_JSON_FIELDS,
    QUALITY_METRIC_COLUMNS,
    QUALITY_METRIC_FIELDS,
    QUALITY_RATE_FIELDS,
    REGISTRY_ARRAY_FIELDS,
    REGISTRY_COLUMNS,
    REGISTRY_FIELDS,
    REGISTRY_JSON_FIELDS,
    REGISTRY_UPSERT_SET,
    TIME_FIELDS,
    DataQualityReportRecord,
    DatasetRecord,
    QualityMetricRow,
    RegistryAuditRecord,
    RegistryVersionRecord,
    RowCodec,
    as_utc,
    check_dataset_fields,
    quantize_rate,
    utc_now,
)
from feature_service.adapters.metadata.registry_usage import SqliteRegistryUsage
from feature_service.adapters.metadata.sessions import SqliteMigrationSession

_JSON: Final = (
    DATASET_JSON_FIELDS
    | DATASET_ARRAY_FIELDS
    | REGISTRY_JSON_FIELDS
    | REGISTRY_ARRAY_FIELDS
    | QUALITY_JSON_FIELDS
    | QUALITY_ARRAY_FIELDS
)


def _to_text_time(value: datetime) -> str:
    return as_utc(value).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _encode(name: str, value: Any) -> Any:
    if name == "warnings" and value is None:  # NOT NULL array: "no warnings" is empty
        return "[]"
    if value is None:
        return None
    if name in TIME_FIELDS:
        return _to_text_time(value)
    if name in _JSON:
        return orjson.dumps(value).decode()
    if name == "id":
        return str(value)
    if name == "is_active":
        return int(bool(value))
    if name in QUALITY_RATE_FIELDS:
        return float(quantize_rate(value))
    return value


def _decode(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in TIME_FIELDS:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if name in _JSON:
        return orjson.loads(value)
    if name == "id":
        return UUID(value)
    if name == "is_active":
        return bool(value)
    if name in QUALITY_RATE_FIELDS:
        return float(value)
    return value


_rows: Final = RowCodec(_encode, _decode)


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


@asynccontextmanager
async def _translate_errors() -> AsyncIterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        message = str(exc)
        _, _, constraint = message.partition(": ")
        raise ConstraintViolation(message, constraint or None) from exc


class SqliteMetadataStore(SqliteBackfillJobs, SqliteRegistryUsage):
    def __init__(self, path: Path | str, *, migrations_dir: Path | None = None) -> None:
        self._path = str(path)
        self._migrations_dir = migrations_dir
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def kind(self) -> StoreKind:
        return "sqlite"

    @property
    def path(self) -> str:
        return self._path

    # -- lifecycle ----------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._conn is not None:
            return
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            async with self._lock:
                await conn.close()

    async def ping(self) -> bool:
        if self._conn is None:
            return False
        try:
            async with asyncio.timeout(5.0):
                rows = await self._fetch("SELECT 1")
            return rows[0][0] == 1
        except Exception:  # a health probe reports, it does not raise
            return False

    @property
    def _c(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreNotConnected()
        return self._conn

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        conn = self._c
        async with self._lock, _translate_errors():
            return list(await conn.execute_fetchall(sql, params))

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetch(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = self._c
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with _translate_errors():
                    yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    # -- schema -------------------------------------------------------------------------------
    @asynccontextmanager
    async def _migration_session(self) -> AsyncIterator[SqliteMigrationSession]:
        conn = self._c
        async with self._lock:
            yield SqliteMigrationSession(conn)

    async def upgrade(self, to: int | None = None) -> list[int]:
        migrations = mig.resolve_migrations(self._migrations_dir, "sqlite")
        async with self._migration_session() as session:
            done = await mig.run_upgrade(session, migrations, to)
        return [m.version for m in done]

    async def downgrade(self, *, to: int | None = None, steps: int | None = None) -> list[int]:
        migrations = mig.resolve_migrations(self._migrations_dir, "sqlite")
        async with self._migration_session() as session:
            done = await mig.run_downgrade(session, migrations, to=to, steps=steps)
        return [m.version for m in done]

    async def migration_status(self) -> list[mig.MigrationState]:
        migrations = mig.resolve_migrations(self._migrations_dir, "sqlite")
        async with self._migration_session() as session:
            return await mig.run_status(session, migrations)

    # -- datasets -----------------------------------------------------------------------------
    async def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        values = _rows.values(record, DATASET_FIELDS)
        row = await self._fetchone(
            f"INSERT INTO datasets ({DATASET_COLUMNS}) VALUES ({_placeholders(len(values))})"
            f" RETURNING {DATASET_COLUMNS}",
            values,
        )
        assert row is not None
        return _rows.dataset(row)

    async def update_dataset(self, dataset_id: UUID, **fields: Any) -> DatasetRecord:
        check_dataset_fields(frozenset(fields))
        if not fields:
            found = await self.get_dataset(dataset_id)
            if found is None:
                raise KeyError(dataset_id)
            return found
        assignments = ", ".join(f"{n} = ?" for n in fields)
        values = [_encode(n, v) for n, v in fields.items()]
        row = await self._fetchone(
            f"UPDATE datasets SET {assignments} WHERE id = ? RETURNING {DATASET_COLUMNS}",
            [*values, str(dataset_id)],
        )
        if row is None:
            raise KeyError(dataset_id)
        return _rows.dataset(row)

    async def get_dataset(self, dataset_id: UUID) -> DatasetRecord | None:
        row = await self._fetchone(
            f"SELECT {DATASET_COLUMNS} FROM datasets WHERE id = ?", [str(dataset_id)]
        )
        return None if row is None else _rows.dataset(row)

    async def list_datasets(
        self, status: str | None = None, symbol: str | None = None, limit: int = 1000
    ) -> list[DatasetRecord]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch(
            f"SELECT {DATASET_COLUMNS} FROM datasets{clause}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            [*args, limit],
        )
        return [_rows.dataset(r) for r in rows]

    async def delete_dataset(self, dataset_id: UUID) -> bool:
        rows = await self._fetch(
            "DELETE FROM datasets WHERE id = ? RETURNING id", [str(dataset_id)]
        )
        return bool(rows)

    async def count_datasets_by_registry_version(self, version: str) -> int:
        rows = await self._fetch(
            "SELECT count(*) FROM datasets WHERE feature_registry_version = ?", [version]
        )
        return int(rows[0][0])

    # -- feature registry versions ------------------------------------------------------------
    async def upsert_registry_version(self, record: RegistryVersionRecord) -> RegistryVersionRecord:
        values = _rows.values(record, REGISTRY_FIELDS)
        row = await self._fetchone(
            f"INSERT INTO feature_registry_versions ({REGISTRY_COLUMNS})"
            f" VALUES ({_placeholders(len(values))})"
            f" ON CONFLICT (version) DO UPDATE SET {REGISTRY_UPSERT_SET}"
            f" RETURNING {REGISTRY_COLUMNS}",
            values,
        )
        assert row is not None
        return _rows.registry(row)

    async def get_registry_version(self, version: str) -> RegistryVersionRecord | None:
        row = await self._fetchone(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE version = ?", [version]
        )
        return None if row is None else _rows.registry(row)

    async def list_registry_versions(self) -> list[RegistryVersionRecord]:
        rows = await self._fetch(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions"
            " ORDER BY created_at DESC, version DESC"
        )
        return [_rows.registry(r) for r in rows]

    async def get_active_registry_version(self) -> RegistryVersionRecord | None:
        row = await self._fetchone(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE is_active = 1"
        )
        return None if row is None else _rows.registry(row)

    async def activate_registry_version(
        self,
        version: str,
        activated_by: str | None,
        reason: str | None,
        *,
        rollback_from: str | None = None,
        now: datetime | None = None,
    ) -> RegistryVersionRecord:
        loaded_at = _to_text_time(now or utc_now())
        async with self._transaction() as conn:
            found = await conn.execute_fetchall(
                f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE version = ?",
                [version],
            )
            if not found:
                raise KeyError(version)
            target = next(iter(found))
            if target["is_active"]:
                return _rows.registry(target)
            current = await conn.execute_fetchall(
                "UPDATE feature_registry_versions SET is_active = 0 WHERE is_active = 1"
                " RETURNING version"
            )
            previous = next((r[0] for r in current), None)
            rows = await conn.execute_fetchall(
                "UPDATE feature_registry_versions SET is_active = 1, loaded_at = ?,"
                " activated_by = ?, activation_reason = ?, rollback_from = ?,"
                " previous_version = COALESCE(?, previous_version)"
                f" WHERE version = ? RETURNING {REGISTRY_COLUMNS}",
                [loaded_at, activated_by, reason, rollback_from, previous, version],
            )
            return _rows.registry(next(iter(rows)))

    async def delete_registry_version(self, version: str) -> bool:
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT is_active FROM feature_registry_versions WHERE version = ?", [version]
            )
            if not rows:
                return False
            if next(iter(rows))[0]:
                raise ValueError(f"registry version {version} is active: activate another first")
            await conn.execute("DELETE FROM feature_registry_versions WHERE version = ?", [version])
        return True

    async def add_registry_audit(self, record: RegistryAuditRecord) -> None:
        values = _rows.values(record, AUDIT_FIELDS)
        await self._fetch(
            f"INSERT INTO feature_registry_audit ({AUDIT_COLUMNS})"
            f" VALUES ({_placeholders(len(values))}) RETURNING id",
            values,
        )

    async def list_registry_audit(self, version: str | None = None) -> list[RegistryAuditRecord]:
        where, args = ("WHERE version = ?", [version]) if version is not None else ("", [])
        rows = await self._fetch(
            f"SELECT {AUDIT_COLUMNS} FROM feature_registry_audit {where} ORDER BY created_at, id",
            args,
        )
        return [_rows.audit(r) for r in rows]

    # -- data quality reports -----------------------------------------------------------------
    async def insert_quality_report(
        self, record: DataQualityReportRecord
    ) -> DataQualityReportRecord:
        values = _rows.values(record, QUALITY_FIELDS)
        row = await self._fetchone(
            f"INSERT INTO data_quality_reports ({QUALITY_COLUMNS})"
            f" VALUES ({_placeholders(len(values))}) RETURNING {QUALITY_COLUMNS}",
            values,
        )
        assert row is not None
        return _rows.quality(row)

    async def insert_quality_metrics(self, rows: Sequence[QualityMetricRow]) -> int:
        if not rows:
            return 0
        async with self._transaction() as conn:
            await conn.executemany(
                f"INSERT INTO data_quality_metrics ({QUALITY_METRIC_COLUMNS})"
                f" VALUES ({_placeholders(len(QUALITY_METRIC_FIELDS))})",
                [r.values(iso=True) for r in rows],
            )
        return len(rows)

    async def latest_quality_report(
        self, symbol: str, start: datetime, end: datetime
    ) -> DataQualityReportRecord | None:
        row = await self._fetchone(
            f"SELECT {QUALITY_COLUMNS} FROM data_quality_reports"
            " WHERE symbol = ? AND period_start >= ? AND period_end <= ?"
            " ORDER BY created_at DESC, period_end DESC, id DESC LIMIT 1",
            [symbol, _to_text_time(start), _to_text_time(end)],
        )
        return None if row is None else _rows.quality(row)
