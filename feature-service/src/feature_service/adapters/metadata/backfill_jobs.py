"""Backfill jobs in the metadata store (table ``backfill_jobs``, migration 023).

Kept apart from the other tables' code: ``SqliteBackfillJobs`` and ``PostgresBackfillJobs`` are
mixins of the two stores, with the same behaviour (one contract suite runs on both). JSON
columns hold the job's state: ``completed_days`` (``"klines:2025-11-01"`` entries) is what a
resumed job skips, ``failed_days`` / ``unavailable`` are what the status route reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any, Final, Protocol
from uuid import UUID, uuid4

import asyncpg
import orjson

from feature_service.adapters.metadata.base import ConstraintViolation
from feature_service.adapters.metadata.records import as_utc, utc_now

JOB_STATUSES: Final = ("pending", "running", "completed", "partial", "failed", "cancelled")
ACTIVE_STATUSES: Final = ("pending", "running")


@dataclass(kw_only=True, slots=True)
class BackfillJobRecord:
    id: UUID = field(default_factory=uuid4)
    symbol: str
    category: str = "linear"
    start_date: dt.date
    end_date: dt.date
    data_types: list[str]
    status: str = "pending"
    trigger: str = "api"
    progress: dict[str, Any] | None = None
    completed_days: list[str] = field(default_factory=list)
    failed_days: list[dict[str, Any]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    error_message: str | None = None
    cancel_requested: bool = False
    created_at: dt.datetime = field(default_factory=utc_now)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


JOB_FIELDS: Final = tuple(f.name for f in fields(BackfillJobRecord))
_COLUMNS: Final = ", ".join(JOB_FIELDS)
_JSON: Final = frozenset({"data_types", "progress", "completed_days", "failed_days", "unavailable"})
_TIMES: Final = frozenset({"created_at", "started_at", "finished_at", "updated_at"})
_DATES: Final = frozenset({"start_date", "end_date"})


def _check(names: Any) -> None:
    bad = sorted(n for n in names if n not in JOB_FIELDS or n == "id")
    if bad:
        raise TypeError(f"not updatable backfill job field(s): {bad}")


class BackfillJobStore(Protocol):
    async def create_backfill_job(self, record: BackfillJobRecord) -> BackfillJobRecord: ...

    async def get_backfill_job(self, job_id: UUID) -> BackfillJobRecord | None: ...

    async def update_backfill_job(self, job_id: UUID, **changes: Any) -> BackfillJobRecord:
        """Change the given columns (``updated_at`` is set too); ``KeyError`` for no such job."""
        ...

    async def list_backfill_jobs(
        self, status: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[BackfillJobRecord]:
        """Newest first."""
        ...


# -- SQLite --------------------------------------------------------------------------------------
def _sq_encode(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _JSON:
        return orjson.dumps(value).decode()
    if name in _TIMES:
        return as_utc(value).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if name in _DATES:
        return value.isoformat()
    if name == "id":
        return str(value)
    if name == "cancel_requested":
        return int(bool(value))
    return value


def _sq_decode(row: Any) -> BackfillJobRecord:
    out: dict[str, Any] = {}
    for name in JOB_FIELDS:
        value = row[name]
        if value is not None:
            if name in _JSON:
                value = orjson.loads(value)
            elif name in _TIMES:
                value = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
            elif name in _DATES:
                value = dt.date.fromisoformat(value)
            elif name == "id":
                value = UUID(value)
            elif name == "cancel_requested":
                value = bool(value)
        out[name] = value
    return BackfillJobRecord(**out)


class SqliteBackfillJobs:
    _fetch: Any
    _fetchone: Any

    async def create_backfill_job(self, record: BackfillJobRecord) -> BackfillJobRecord:
        values = [_sq_encode(n, getattr(record, n)) for n in JOB_FIELDS]
        row = await self._fetchone(
            f"INSERT INTO backfill_jobs ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})"
            f" RETURNING {_COLUMNS}",
            values,
        )
        return _sq_decode(row)

    async def get_backfill_job(self, job_id: UUID) -> BackfillJobRecord | None:
        row = await self._fetchone(
            f"SELECT {_COLUMNS} FROM backfill_jobs WHERE id = ?", [str(job_id)]
        )
        return None if row is None else _sq_decode(row)

    async def update_backfill_job(self, job_id: UUID, **changes: Any) -> BackfillJobRecord:
        _check(changes)
        changes["updated_at"] = utc_now()
        sets = ", ".join(f"{n} = ?" for n in changes)
        row = await self._fetchone(
            f"UPDATE backfill_jobs SET {sets} WHERE id = ? RETURNING {_COLUMNS}",
            [*(_sq_encode(n, v) for n, v in changes.items()), str(job_id)],
        )
        if row is None:
            raise KeyError(job_id)
        return _sq_decode(row)

    async def list_backfill_jobs(
        self, status: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[BackfillJobRecord]:
        where, args = _where(status, symbol, "?")
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM backfill_jobs{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            [*args, limit],
        )
        return [_sq_decode(r) for r in rows]


def _where(status: str | None, symbol: str | None, mark: str) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for column, value in (("status", status), ("symbol", symbol)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = {mark if mark == '?' else f'${len(args)}'}")
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), args


# -- PostgreSQL ----------------------------------------------------------------------------------
def _pg_encode(name: str, value: Any) -> Any:
    if value is not None and name in _TIMES:
        return as_utc(value).replace(tzinfo=None)
    return value


def _pg_decode(row: Any) -> BackfillJobRecord:
    out: dict[str, Any] = {}
    for name in JOB_FIELDS:
        value = row[name]
        if value is not None and name in _TIMES:
            value = value.replace(tzinfo=dt.UTC)
        elif isinstance(value, UUID):
            value = UUID(int=value.int)
        out[name] = value
    return BackfillJobRecord(**out)


class PostgresBackfillJobs:
    _p: Any

    async def create_backfill_job(self, record: BackfillJobRecord) -> BackfillJobRecord:
        values = [_pg_encode(n, getattr(record, n)) for n in JOB_FIELDS]
        marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        try:
            row = await self._p.fetchrow(
                f"INSERT INTO backfill_jobs ({_COLUMNS}) VALUES ({marks}) RETURNING {_COLUMNS}",
                *values,
            )
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintViolation(str(exc), getattr(exc, "constraint_name", None)) from exc
        return _pg_decode(row)

    async def get_backfill_job(self, job_id: UUID) -> BackfillJobRecord | None:
        row = await self._p.fetchrow(f"SELECT {_COLUMNS} FROM backfill_jobs WHERE id = $1", job_id)
        return None if row is None else _pg_decode(row)

    async def update_backfill_job(self, job_id: UUID, **changes: Any) -> BackfillJobRecord:
        _check(changes)
        changes["updated_at"] = utc_now()
        sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(changes, start=2))
        row = await self._p.fetchrow(
            f"UPDATE backfill_jobs SET {sets} WHERE id = $1 RETURNING {_COLUMNS}",
            job_id,
            *(_pg_encode(n, v) for n, v in changes.items()),
        )
        if row is None:
            raise KeyError(job_id)
        return _pg_decode(row)

    async def list_backfill_jobs(
        self, status: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[BackfillJobRecord]:
        where, args = _where(status, symbol, "$")
        rows = await self._p.fetch(
            f"SELECT {_COLUMNS} FROM backfill_jobs{where}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [_pg_decode(r) for r in rows]
