"""Batch writes into the operations metrics tables (migration 026), PostgreSQL or SQLite.

A sink owns one connection of its own, apart from the metadata store's pool: a slow metrics
insert must not hold a connection the dataset API needs. A failed write closes the connection
(the next batch reconnects) and raises; the writer above counts it. Rows arrive as tuples in the
column order of ``COLUMNS``, with UUIDs and naive-UTC datetimes already made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

FEATURE_COMPUTATION: Final = "feature_computation_metrics"
DATASET_BUILDING: Final = "dataset_building_metrics"
API_ENDPOINT: Final = "api_endpoint_metrics"

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    FEATURE_COMPUTATION: (
        "id",
        "symbol",
        "computation_timestamp",
        "latency_ms",
        "feature_registry_version",
        "computation_interval",
        "features_count",
        "error_count",
        "trace_id",
    ),
    DATASET_BUILDING: (
        "id",
        "dataset_id",
        "symbol",
        "build_started_at",
        "build_completed_at",
        "build_status",
        "build_duration_seconds",
        "records_count",
        "train_records",
        "validation_records",
        "test_records",
        "feature_registry_version",
        "split_strategy",
        "trace_id",
    ),
    API_ENDPOINT: (
        "id",
        "endpoint",
        "method",
        "response_time_ms",
        "status_code",
        "symbol",
        "request_timestamp",
        "trace_id",
    ),
}
# The time column retention deletes by.
TIME_COLUMN: Final = {
    FEATURE_COMPUTATION: "computation_timestamp",
    DATASET_BUILDING: "build_started_at",
    API_ENDPOINT: "request_timestamp",
}
# A build's row is written when it starts and again when it ends: the second write updates it.
_UPSERT_SET: Final = (
    "build_completed_at",
    "build_status",
    "build_duration_seconds",
    "records_count",
    "train_records",
    "validation_records",
    "test_records",
    "trace_id",
)


class MetricsSink(Protocol):
    kind: str

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None: ...

    async def delete_older_than(self, table: str, cutoff: datetime) -> int: ...

    async def close(self) -> None: ...


def insert_sql(table: str, placeholder: Any) -> str:
    cols = COLUMNS[table]
    values = ", ".join(placeholder(i + 1) for i in range(len(cols)))
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({values})"
    if table == DATASET_BUILDING:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _UPSERT_SET)
        sql += f" ON CONFLICT (id) DO UPDATE SET {updates}"
    return sql


class PostgresMetricsSink:
    kind = "postgresql"

    def __init__(
        self, url: str, *, schema: str | None = None, connect_timeout_s: float = 5.0
    ) -> None:
        self._url = url
        self._schema = schema
        self._timeout = connect_timeout_s
        self._conn: Any = None
        self._sql = {t: insert_sql(t, lambda i: f"${i}") for t in COLUMNS}

    async def _connection(self) -> Any:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            settings = {"timezone": "UTC"}
            if self._schema:
                settings["search_path"] = self._schema
            self._conn = await asyncpg.connect(
                self._url, timeout=self._timeout, server_settings=settings
            )
        return self._conn

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        try:
            conn = await self._connection()
            await conn.executemany(self._sql[table], rows)
        except BaseException:
            await self._drop()
            raise

    async def delete_older_than(self, table: str, cutoff: datetime) -> int:
        try:
            conn = await self._connection()
            status = await conn.execute(
                f"DELETE FROM {table} WHERE {TIME_COLUMN[table]} < $1", cutoff
            )
        except BaseException:
            await self._drop()
            raise
        return int(status.split()[-1]) if status else 0

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # never waits on a peer that stopped answering

    async def close(self) -> None:
        await self._drop()


class SqliteMetricsSink:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._conn: Any = None
        self._sql = {t: insert_sql(t, lambda _i: "?") for t in COLUMNS}

    async def _connection(self) -> Any:
        import aiosqlite

        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(self._path)
            await conn.execute("PRAGMA busy_timeout=5000")
            self._conn = conn
        return self._conn

    async def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = await self._connection()
        try:
            await conn.executemany(self._sql[table], [_sqlite_row(r) for r in rows])
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise

    async def delete_older_than(self, table: str, cutoff: datetime) -> int:
        conn = await self._connection()
        cursor = await conn.execute(
            f"DELETE FROM {table} WHERE {TIME_COLUMN[table]} < ?", (_sqlite_value(cutoff),)
        )
        await conn.commit()
        return cursor.rowcount or 0

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if value is not None and type(value).__name__ == "UUID":
        return str(value)
    return value


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(v) for v in row)


def sink_for_store(store: Any) -> MetricsSink:
    """A sink on the same database (and PostgreSQL schema) as the metadata store."""
    if store.kind == "postgresql":
        return PostgresMetricsSink(store.dsn, schema=store.schema)
    return SqliteMetricsSink(Path(store.path))
