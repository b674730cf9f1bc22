"""The backends' sides of the migration loop (``migrations.MigrationSession``): each is bound
to one connection that holds the migration lock, and runs a migration with its record in one
transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiosqlite
import asyncpg

from feature_service.adapters.metadata import migrations as mig
from feature_service.adapters.metadata.records import as_utc, utc_now
from feature_service.adapters.metadata.schema_check import Column


def _naive_utc(value: datetime) -> datetime:
    return as_utc(value).replace(tzinfo=None)


def _text_utc(value: datetime) -> str:
    return as_utc(value).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@asynccontextmanager
async def _migration_errors(migration: mig.Migration) -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.PostgresError as exc:
        raise mig.MigrationError(f"migration {migration.label} failed: {exc}") from exc


class PgMigrationSession:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def ensure_table(self) -> None:
        await self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {mig.MIGRATIONS_TABLE} ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'))"
        )

    async def applied(self) -> list[mig.AppliedMigration]:
        try:
            rows = await self._conn.fetch(
                f"SELECT version, name, checksum, applied_at FROM {mig.MIGRATIONS_TABLE}"
                " ORDER BY version"
            )
        except asyncpg.UndefinedColumnError as exc:
            raise mig.MigrationError(
                f"a {mig.MIGRATIONS_TABLE} table of another tool exists in this schema"
                " (it lacks name/checksum columns)"
            ) from exc
        return [
            mig.AppliedMigration(
                int(r["version"]), r["name"], r["checksum"], r["applied_at"].replace(tzinfo=UTC)
            )
            for r in rows
        ]

    async def columns(self, table: str) -> list[Column] | None:
        rows = await self._conn.fetch(
            "SELECT column_name, udt_name, is_nullable, column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        if not rows:
            return None
        return [Column(r[0], r[1], r[2] == "NO", r[3] is not None) for r in rows]

    async def rerecord(self, old_version: int, record: mig.AppliedMigration) -> None:
        async with self._conn.transaction():
            await self._conn.execute(
                f"DELETE FROM {mig.MIGRATIONS_TABLE} WHERE version = $1", old_version
            )
            await self._conn.execute(
                f"INSERT INTO {mig.MIGRATIONS_TABLE} (version, name, checksum, applied_at)"
                " VALUES ($1, $2, $3, $4)",
                record.version,
                record.name,
                record.checksum,
                _naive_utc(record.applied_at),
            )

    async def apply(self, migration: mig.Migration, check: mig.Check | None = None) -> bool:
        async with _migration_errors(migration), self._conn.transaction():
            await self._conn.execute(migration.up_sql)
            if check is not None:
                await check()
            await self._conn.execute(
                f"INSERT INTO {mig.MIGRATIONS_TABLE} (version, name, checksum, applied_at)"
                " VALUES ($1, $2, $3, $4)",
                migration.version,
                migration.name,
                migration.checksum,
                _naive_utc(utc_now()),
            )
        return True

    async def revert(self, migration: mig.Migration) -> bool:
        assert migration.down_sql is not None  # plan_downgrade refuses migrations without one
        async with _migration_errors(migration), self._conn.transaction():
            await self._conn.execute(migration.down_sql)
            await self._conn.execute(
                f"DELETE FROM {mig.MIGRATIONS_TABLE} WHERE version = $1", migration.version
            )
        return True


class SqliteMigrationSession:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def ensure_table(self) -> None:
        await self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {mig.MIGRATIONS_TABLE} ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )

    async def applied(self) -> list[mig.AppliedMigration]:
        rows = await self._conn.execute_fetchall(
            f"SELECT version, name, checksum, applied_at FROM {mig.MIGRATIONS_TABLE}"
            " ORDER BY version"
        )
        return [
            mig.AppliedMigration(
                int(r[0]), r[1], r[2], datetime.fromisoformat(r[3]).replace(tzinfo=UTC)
            )
            for r in rows
        ]

    async def columns(self, table: str) -> list[Column] | None:
        # SQLite does not enforce declared types: only names and NOT NULL are checked.
        rows = await self._conn.execute_fetchall(f"PRAGMA table_info('{table}')")
        if not rows:
            return None
        return [Column(r[1], None, bool(r[3]), r[4] is not None or bool(r[5])) for r in rows]

    async def rerecord(self, old_version: int, record: mig.AppliedMigration) -> None:
        conn = self._conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                f"DELETE FROM {mig.MIGRATIONS_TABLE} WHERE version = ?", [old_version]
            )
            await conn.execute(
                f"INSERT INTO {mig.MIGRATIONS_TABLE} (version, name, checksum, applied_at)"
                " VALUES (?, ?, ?, ?)",
                [record.version, record.name, record.checksum, _text_utc(record.applied_at)],
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def _run(
        self,
        migration: mig.Migration,
        body: str,
        *,
        applying: bool,
        check: mig.Check | None = None,
    ) -> bool:
        # Another process may have run this migration since the plan was made: the check and
        # the work share one write transaction, and an already-done step is skipped.
        conn = self._conn
        statements = split_statements(body)
        try:
            await conn.execute("BEGIN IMMEDIATE")
            recorded = await conn.execute_fetchall(
                f"SELECT 1 FROM {mig.MIGRATIONS_TABLE} WHERE version = ?", [migration.version]
            )
            if bool(recorded) == applying:
                await conn.execute("ROLLBACK")
                return False
            for statement in statements:
                await conn.execute(statement)
            if check is not None:
                await check()
            if applying:
                await conn.execute(
                    f"INSERT INTO {mig.MIGRATIONS_TABLE} (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        migration.version,
                        migration.name,
                        migration.checksum,
                        _text_utc(utc_now()),
                    ],
                )
            else:
                await conn.execute(
                    f"DELETE FROM {mig.MIGRATIONS_TABLE} WHERE version = ?", [migration.version]
                )
            await conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise mig.MigrationError(f"migration {migration.label} failed: {exc}") from exc
            raise
        return True

    async def apply(self, migration: mig.Migration, check: mig.Check | None = None) -> bool:
        return await self._run(migration, migration.up_sql, applying=True, check=check)

    async def revert(self, migration: mig.Migration) -> bool:
        assert migration.down_sql is not None  # plan_downgrade refuses migrations without one
        return await self._run(migration, migration.down_sql, applying=False)


def split_statements(script: str) -> list[str]:
    """A SQL file as single statements (``execute`` takes one; ``executescript`` would commit
    the surrounding transaction). Comment-only leftovers are dropped."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = "".join(
        line for line in buffer.splitlines(keepends=True) if not line.lstrip().startswith("--")
    )
    if leftover.strip():
        raise mig.MigrationError(f"incomplete SQL statement at the end: {leftover.strip()[:80]!r}")
    return statements
