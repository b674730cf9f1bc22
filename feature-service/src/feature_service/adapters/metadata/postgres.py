"""PostgreSQL metadata store (asyncpg, pooled): the production backend.

Columns are TIMESTAMP WITHOUT TIME ZONE holding UTC: values go in as naive UTC and come out
tagged UTC; every session runs with ``timezone=UTC`` so server-side ``NOW()`` agrees. JSONB is
encoded with orjson by a pool-wide codec, TEXT[] maps to ``list[str]``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson

from feature_service.adapters.metadata import migrations as mig
from feature_service.adapters.metadata.backfill_jobs import PostgresBackfillJobs
from feature_service.adapters.metadata.base import (
    ConstraintViolation,
    StoreKind,
    StoreNotConnected,
)
from feature_service.adapters.metadata.records import (
    AUDIT_COLUMNS,
    AUDIT_FIELDS,
    DATASET_COLUMNS,
    DATASET_FIELDS,
    QUALITY_COLUMNS,
    QUALITY_FIELDS,
    QUALITY_METRIC_COLUMNS,
    QUALITY_METRIC_FIELDS,
    QUALITY_RATE_FIELDS,
    REGISTRY_COLUMNS,
    REGISTRY_FIELDS,
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
from feature_service.adapters.metadata.registry_usage import PostgresRegistryUsage
from feature_service.adapters.metadata.sessions import PgMigrationSession

_SCHEMA_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _to_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value).replace(tzinfo=None)


def _from_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _encode(name: str, value: Any) -> Any:
    if name in TIME_FIELDS:
        return _to_db_time(value)
    if name in QUALITY_RATE_FIELDS:
        return quantize_rate(value)
    if name == "warnings" and value is None:  # NOT NULL array: "no warnings" is empty
        return []
    return value


def _decode(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in TIME_FIELDS:
        return _from_db_time(value)
    if isinstance(value, UUID):
        return UUID(int=value.int)  # asyncpg's own UUID subclass -> the standard one
    if isinstance(value, Decimal):
        return float(value)
    return value


_rows: Final = RowCodec(_encode, _decode)


def _placeholders(count: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


@asynccontextmanager
async def _translate_errors() -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise ConstraintViolation(str(exc), getattr(exc, "constraint_name", None)) from exc
    except (
        asyncpg.StringDataRightTruncationError,
        asyncpg.NumericValueOutOfRangeError,
        asyncpg.InvalidTextRepresentationError,
    ) as exc:
        raise ConstraintViolation(str(exc), None) from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(
            typename,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


class PostgresMetadataStore(PostgresBackfillJobs, PostgresRegistryUsage):
    """``schema``: when given, the store creates it if needed and works only inside it (its
    sessions' ``search_path``), which is how tests isolate themselves. Otherwise the DSN's
    ``search_path`` (asyncpg passes unknown DSN query parameters as server settings) or the
    server default applies."""

    def __init__(
        self,
        dsn: str,
        *,
        migrations_dir: Path | None = None,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
        connect_timeout: float = 30.0,
    ) -> None:
        if schema is not None and not _SCHEMA_RE.match(schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, got {schema!r}")
        self._dsn = dsn
        self._migrations_dir = migrations_dir
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout  # asyncpg's default is 60 s
        self._pool: asyncpg.Pool | None = None

    @property
    def kind(self) -> StoreKind:
        return "postgresql"

    @property
    def schema(self) -> str | None:
        return self._schema

    @property
    def dsn(self) -> str:
        return self._dsn

    # -- lifecycle ----------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._pool is not None:
            return
        settings = {"timezone": "UTC", "application_name": "feature-service"}
        if self._schema is not None:
            settings["search_path"] = self._schema
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            command_timeout=self._command_timeout,
            timeout=self._connect_timeout,
            server_settings=settings,
            init=_init_connection,
        )
        try:
            if self._schema is not None:
                await pool.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with asyncio.timeout(5.0):  # covers waiting for a free pooled connection
                return await self._pool.fetchval("SELECT 1") == 1
        except Exception:  # a health probe reports, it does not raise
            return False

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreNotConnected()
        return self._pool

    # -- schema -------------------------------------------------------------------------------
    @asynccontextmanager
    async def _migration_session(self) -> AsyncIterator[PgMigrationSession]:
        """One connection holding a per-schema advisory lock, so two instances starting at
        once do not both apply the same migration."""
        async with self._p.acquire() as conn:
            key = "feature-service.migrations."
            lock_key = "hashtext($1 || COALESCE(current_schema(), ''))"
            await conn.execute(f"SELECT pg_advisory_lock({lock_key})", key)
            try:
                yield PgMigrationSession(conn)
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock({lock_key})", key)

    async def _after_schema_change(self) -> None:
        # Connections cache prepared statements and type info of the old tables.
        await self._p.expire_connections()

    async def upgrade(self, to: int | None = None) -> list[int]:
        migrations = mig.resolve_migrations(self._migrations_dir, "postgresql")
        async with self._migration_session() as session:
            done = await mig.run_upgrade(session, migrations, to)
        if done:
            await self._after_schema_change()
        return [m.version for m in done]

    async def downgrade(self, *, to: int | None = None, steps: int | None = None) -> list[int]:
        migrations = mig.resolve_migrations(self._migrations_dir, "postgresql")
        async with self._migration_session() as session:
            done = await mig.run_downgrade(session, migrations, to=to, steps=steps)
        if done:
            await self._after_schema_change()
        return [m.version for m in done]

    async def migration_status(self) -> list[mig.MigrationState]:
        migrations = mig.resolve_migrations(self._migrations_dir, "postgresql")
        async with self._migration_session() as session:
            return await mig.run_status(session, migrations)

    # -- datasets -----------------------------------------------------------------------------
    async def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        values = _rows.values(record, DATASET_FIELDS)
        async with _translate_errors():
            row = await self._p.fetchrow(
                f"INSERT INTO datasets ({DATASET_COLUMNS}) VALUES ({_placeholders(len(values))})"
                f" RETURNING {DATASET_COLUMNS}",
                *values,
            )
        return _rows.dataset(row)

    async def update_dataset(self, dataset_id: UUID, **fields: Any) -> DatasetRecord:
        check_dataset_fields(frozenset(fields))
        if not fields:
            found = await self.get_dataset(dataset_id)
            if found is None:
                raise KeyError(dataset_id)
            return found
        names = list(fields)
        assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
        values = [_encode(n, fields[n]) for n in names]
        async with _translate_errors():
            row = await self._p.fetchrow(
                f"UPDATE datasets SET {assignments} WHERE id = $1 RETURNING {DATASET_COLUMNS}",
                dataset_id,
                *values,
            )
        if row is None:
            raise KeyError(dataset_id)
        return _rows.dataset(row)

    async def get_dataset(self, dataset_id: UUID) -> DatasetRecord | None:
        row = await self._p.fetchrow(
            f"SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1", dataset_id
        )
        return None if row is None else _rows.dataset(row)

    async def list_datasets(
        self, status: str | None = None, symbol: str | None = None, limit: int = 1000
    ) -> list[DatasetRecord]:
        where, args = [], []
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        if symbol is not None:
            args.append(symbol)
            where.append(f"symbol = ${len(args)}")
        args.append(limit)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._p.fetch(
            f"SELECT {DATASET_COLUMNS} FROM datasets{clause}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_rows.dataset(r) for r in rows]

    async def delete_dataset(self, dataset_id: UUID) -> bool:
        status = await self._p.execute("DELETE FROM datasets WHERE id = $1", dataset_id)
        return status.endswith(" 1")

    async def count_datasets_by_registry_version(self, version: str) -> int:
        count = await self._p.fetchval(
            "SELECT count(*) FROM datasets WHERE feature_registry_version = $1", version
        )
        return int(count)

    # -- feature registry versions ------------------------------------------------------------
    async def upsert_registry_version(self, record: RegistryVersionRecord) -> RegistryVersionRecord:
        values = _rows.values(record, REGISTRY_FIELDS)
        async with _translate_errors():
            row = await self._p.fetchrow(
                f"INSERT INTO feature_registry_versions ({REGISTRY_COLUMNS})"
                f" VALUES ({_placeholders(len(values))})"
                f" ON CONFLICT (version) DO UPDATE SET {REGISTRY_UPSERT_SET}"
                f" RETURNING {REGISTRY_COLUMNS}",
                *values,
            )
        return _rows.registry(row)

    async def get_registry_version(self, version: str) -> RegistryVersionRecord | None:
        row = await self._p.fetchrow(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE version = $1", version
        )
        return None if row is None else _rows.registry(row)

    async def list_registry_versions(self) -> list[RegistryVersionRecord]:
        rows = await self._p.fetch(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions"
            " ORDER BY created_at DESC, version DESC"
        )
        return [_rows.registry(r) for r in rows]

    async def get_active_registry_version(self) -> RegistryVersionRecord | None:
        row = await self._p.fetchrow(
            f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE is_active"
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
        loaded_at = _to_db_time(now or utc_now())
        async with self._p.acquire() as conn, conn.transaction(), _translate_errors():
            # Activations queue behind each other; readers are not blocked.
            await conn.execute("LOCK TABLE feature_registry_versions IN SHARE ROW EXCLUSIVE MODE")
            target = await conn.fetchrow(
                f"SELECT {REGISTRY_COLUMNS} FROM feature_registry_versions WHERE version = $1",
                version,
            )
            if target is None:
                raise KeyError(version)
            if target["is_active"]:
                return _rows.registry(target)
            current = await conn.fetchval(
                "UPDATE feature_registry_versions SET is_active = false WHERE is_active"
                " RETURNING version"
            )
            row = await conn.fetchrow(
                "UPDATE feature_registry_versions SET is_active = true, loaded_at = $2,"
                " activated_by = $3, activation_reason = $4, rollback_from = $5,"
                " previous_version = COALESCE($6, previous_version)"
                f" WHERE version = $1 RETURNING {REGISTRY_COLUMNS}",
                version,
                loaded_at,
                activated_by,
                reason,
                rollback_from,
                current,
            )
        return _rows.registry(row)

    async def delete_registry_version(self, version: str) -> bool:
        async with self._p.acquire() as conn, conn.transaction():
            active = await conn.fetchval(
                "SELECT is_active FROM feature_registry_versions WHERE version = $1 FOR UPDATE",
                version,
            )
            if active is None:
                return False
            if active:
                raise ValueError(f"registry version {version} is active: activate another first")
            await conn.execute("DELETE FROM feature_registry_versions WHERE version = $1", version)
        return True

    async def add_registry_audit(self, record: RegistryAuditRecord) -> None:
        values = _rows.values(record, AUDIT_FIELDS)
        marks = ", ".join(f"${i + 1}" for i in range(len(values)))
        async with _translate_errors():
            await self._p.execute(
                f"INSERT INTO feature_registry_audit ({AUDIT_COLUMNS}) VALUES ({marks})", *values
            )

    async def list_registry_audit(self, version: str | None = None) -> list[RegistryAuditRecord]:
        where, args = ("WHERE version = $1", [version]) if version is not None else ("", [])
        rows = await self._p.fetch(
            f"SELECT {AUDIT_COLUMNS} FROM feature_registry_audit {where} ORDER BY created_at, id",
            *args,
        )
        return [_rows.audit(r) for r in rows]

    # -- data quality reports -----------------------------------------------------------------
    async def insert_quality_report(
        self, record: DataQualityReportRecord
    ) -> DataQualityReportRecord:
        values = _rows.values(record, QUALITY_FIELDS)
        async with _translate_errors():
            row = await self._p.fetchrow(
                f"INSERT INTO data_quality_reports ({QUALITY_COLUMNS})"
                f" VALUES ({_placeholders(len(values))}) RETURNING {QUALITY_COLUMNS}",
                *values,
            )
        return _rows.quality(row)

    async def insert_quality_metrics(self, rows: Sequence[QualityMetricRow]) -> int:
        if not rows:
            return 0
        async with _translate_errors(), self._p.acquire() as conn, conn.transaction():
            await conn.executemany(
                f"INSERT INTO data_quality_metrics ({QUALITY_METRIC_COLUMNS})"
                f" VALUES ({_placeholders(len(QUALITY_METRIC_FIELDS))})",
                [r.values(iso=False) for r in rows],
            )
        return len(rows)

    async def latest_quality_report(
        self, symbol: str, start: datetime, end: datetime
    ) -> DataQualityReportRecord | None:
        row = await self._p.fetchrow(
            f"SELECT {QUALITY_COLUMNS} FROM data_quality_reports"
            " WHERE symbol = $1 AND period_start >= $2 AND period_end <= $3"
            " ORDER BY created_at DESC, period_end DESC, id DESC LIMIT 1",
            symbol,
            _to_db_time(start),
            _to_db_time(end),
        )
        return None if row is None else _rows.quality(row)
