"""Applying a registry version to the running service without a restart, and counting usage.

``HotReload.apply`` schedules the live engine's switch at the next interval boundary and waits
for its first computation with the new plan (``engine.switch``); only then do new dataset builds
and the vector archive use the new version. A failure, or no boundary within the timeout, keeps
the previous version and returns the reason.

``ComputationUsage`` counts the vectors each version computed in hourly buckets, so the usage
route can say how many computations referenced a version in the last 24 h.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from feature_service.engine.vector import FeatureVector
from feature_service.logging import get_logger
from feature_service.registry.loader import Registry

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime

log = get_logger(__name__)
HOUR_US = 3_600_000_000


class ComputationUsage:
    def __init__(self, hours: int = 24) -> None:
        self._hours = hours
        self._buckets: deque[tuple[int, Counter[str]]] = deque()

    def add(self, vectors: Iterable[FeatureVector]) -> None:
        for v in vectors:
            hour = v.timestamp // HOUR_US
            if not self._buckets or self._buckets[-1][0] < hour:
                self._buckets.append((hour, Counter()))
                while len(self._buckets) > self._hours + 1:
                    self._buckets.popleft()
            self._buckets[-1][1][v.registry_version] += 1

    def count(self, version: str, now_us: int) -> int:
        since = now_us // HOUR_US - self._hours
        return sum(c[version] for hour, c in self._buckets if hour > since)


class HotReload:
    def __init__(self, runtime: Runtime, timeout_s: float | None = None) -> None:
        self.rt = runtime
        step_s = min(runtime.settings.intervals)
        self.timeout_s = timeout_s if timeout_s is not None else 10.0 + 2 * step_s

    def load(self, registry: Registry) -> None:
        """Use ``registry`` from the start (before any state exists)."""
        rt = self.rt
        assert registry.plan is not None
        rt.engine.plan = registry.plan
        rt.engine.registry_version = registry.version
        self._adopt(registry)

    def _adopt(self, registry: Registry) -> None:
        rt = self.rt
        rt.registry = registry
        rt.datasets.registry = registry
        assert registry.plan is not None
        rt.archive.plans[registry.version] = registry.plan

    async def apply(self, registry: Registry) -> str | None:
        """Switch the live engine (and then new builds) to ``registry``; the failure, or None."""
        plan = registry.plan
        if plan is None:
            return "invalid registry: " + "; ".join(registry.errors)
        engine = self.rt.engine
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str | None] = loop.create_future()

        def done(_version: str, error: str | None) -> None:
            if not outcome.done():
                outcome.set_result(error)

        # The archive must know the new columns before the first new vector reaches it.
        self.rt.archive.plans[registry.version] = plan
        try:
            at = engine.schedule_switch(plan, registry.version, self.rt.live.clock.now_us(), done)
        except RuntimeError as exc:
            return str(exc)
        log.info("registry_switch_scheduled", version=registry.version, at_us=at)
        try:
            error = await asyncio.wait_for(asyncio.shield(outcome), self.timeout_s)
        except TimeoutError:
            pending = engine.switch
            if pending is not None and pending.version == registry.version:
                engine.cancel_switch(f"no interval boundary within {self.timeout_s:.0f} s")
            error = outcome.result() if outcome.done() else "switch timed out"
        if error is None:
            self._adopt(registry)
        return error
