"""Vectors computed per registry version and hour in the metadata store (table
``feature_registry_usage``, migration 027): what makes "computed in the last 24 h" survive a
restart, so a version in use cannot be deleted right after one (FR-062, FR-067).

``add_registry_usage`` adds counts (several service instances on one database add up);
``registry_usage_since`` sums a version's counts from an hour on; ``prune_registry_usage`` drops
old hours. Mixins of the two stores, with the same behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

UsageRow = tuple[str, int, int]  # (version, hour since the epoch, computations)


class RegistryUsageStore(Protocol):
    async def add_registry_usage(self, rows: Sequence[UsageRow]) -> None: ...

    async def registry_usage_since(self, version: str, hour_epoch: int) -> int: ...

    async def prune_registry_usage(self, before_hour_epoch: int) -> int: ...


def _positive(rows: Iterable[UsageRow]) -> list[UsageRow]:
    return [(v, int(h), int(n)) for v, h, n in rows if n > 0]


class SqliteRegistryUsage:
    _fetch: Any
    _fetchone: Any

    async def add_registry_usage(self, rows: Sequence[UsageRow]) -> None:
        for version, hour, count in _positive(rows):
            await self._fetch(
                "INSERT INTO feature_registry_usage (version, hour_epoch, computations)"
                " VALUES (?, ?, ?) ON CONFLICT (version, hour_epoch) DO UPDATE SET"
                " computations = computations + excluded.computations,"
                " updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now')",
                [version, hour, count],
            )

    async def registry_usage_since(self, version: str, hour_epoch: int) -> int:
        row = await self._fetchone(
            "SELECT COALESCE(SUM(computations), 0) FROM feature_registry_usage"
            " WHERE version = ? AND hour_epoch >= ?",
            [version, hour_epoch],
        )
        return int(row[0])

    async def prune_registry_usage(self, before_hour_epoch: int) -> int:
        rows = await self._fetch(
            "DELETE FROM feature_registry_usage WHERE hour_epoch < ? RETURNING version",
            [before_hour_epoch],
        )
        return len(rows)


class PostgresRegistryUsage:
    _p: Any

    async def add_registry_usage(self, rows: Sequence[UsageRow]) -> None:
        values = _positive(rows)
        if values:
            await self._p.executemany(
                "INSERT INTO feature_registry_usage (version, hour_epoch, computations)"
                " VALUES ($1, $2, $3) ON CONFLICT (version, hour_epoch) DO UPDATE SET"
                " computations = feature_registry_usage.computations + EXCLUDED.computations,"
                " updated_at = NOW()",
                values,
            )

    async def registry_usage_since(self, version: str, hour_epoch: int) -> int:
        total = await self._p.fetchval(
            "SELECT COALESCE(SUM(computations), 0) FROM feature_registry_usage"
            " WHERE version = $1 AND hour_epoch >= $2",
            version,
            hour_epoch,
        )
        return int(total)

    async def prune_registry_usage(self, before_hour_epoch: int) -> int:
        status = await self._p.execute(
            "DELETE FROM feature_registry_usage WHERE hour_epoch < $1", before_hour_epoch
        )
        return int(status.split()[-1])
