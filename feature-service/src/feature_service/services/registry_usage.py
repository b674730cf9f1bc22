"""How many vectors each registry version computed in the last 24 h (the usage route, and
"in use, cannot be deleted": FR-062, FR-067), kept in the metadata store so it survives a restart.

Vectors are counted per (version, hour of their close time) in memory and added to the store's
``feature_registry_usage`` (migration 027) every ``every_s`` seconds, off the computation path; a
count the store could not take is kept and added with the next one. A version's count is the
store's sum of the last 24 hours plus what this process has not written yet.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

from feature_service.engine.vector import FeatureVector
from feature_service.logging import get_logger

log = get_logger(__name__)
HOUR_US = 3_600_000_000
KEEP_HOURS = 48  # rows older than this are deleted (the count reads 24)


class ComputationUsage:
    def __init__(self, hours: int = 24) -> None:
        self._hours = hours
        self._pending: Counter[tuple[str, int]] = Counter()
        self._last_hour = 0

    def add(self, vectors: Iterable[FeatureVector]) -> None:
        pending = self._pending
        for v in vectors:
            pending[(v.registry_version, v.timestamp // HOUR_US)] += 1
            self._last_hour = max(self._last_hour, v.timestamp // HOUR_US)

    def since_hour(self, now_us: int) -> int:
        """The first hour the count covers (the current one and the 23 before it)."""
        return now_us // HOUR_US - self._hours + 1

    async def count(self, store: Any, version: str, now_us: int) -> int:
        since = self.since_hour(now_us)
        unwritten = sum(n for (v, h), n in self._pending.items() if v == version and h >= since)
        return await store.registry_usage_since(version, since) + unwritten

    async def flush(self, store: Any) -> None:
        rows = [(version, hour, n) for (version, hour), n in self._pending.items()]
        if not rows:
            return
        self._pending = Counter()  # vectors counted meanwhile go to the next write
        try:
            await store.add_registry_usage(rows)
        except Exception as exc:  # kept for the next write: a count is never lost
            for version, hour, n in rows:
                self._pending[(version, hour)] += n
            log.warning("registry_usage_write_failed", error=repr(exc), rows=len(rows))
            return
        if self._last_hour:
            try:
                await store.prune_registry_usage(self._last_hour - KEEP_HOURS)
            except Exception as exc:
                log.warning("registry_usage_prune_failed", error=repr(exc))

    async def run(self, store: Any, every_s: float = 60.0) -> None:
        try:
            while True:
                await asyncio.sleep(every_s)
                await self.flush(store)
        finally:  # stopping: what was counted since the last write
            await self.flush(store)
