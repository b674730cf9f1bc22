"""Applying a registry version to the running service without a restart.

``HotReload.apply`` first warms an engine running the new plan from the raw store as of now
(``services/plan_warmup.py``; the live engine records what it applies meanwhile, ``tap``), then
schedules the live engine's switch at the next interval boundary, where every symbol takes its
warmed state at once (``engine.switch``), and waits for it; only then do new dataset builds and
the vector archive use the new version. So the vectors after a reload equal an offline rebuild
with the new version. A failure -- warming or the first computation, for any symbol -- or no
boundary within the timeout keeps the previous version for every symbol and returns the reason.

Without a raw store to warm from (the store disabled, warm start off, or the embedded demo,
whose stored data of earlier runs is not this run's past) the new states are migrated from the
old ones (``features.migrate``), as the identity check then assumes too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from feature_service.engine.core import FeatureEngine
from feature_service.features.library import FeaturePlan
from feature_service.logging import get_logger
from feature_service.registry.loader import Registry
from feature_service.services.plan_warmup import WarmupFailed, catch_up, warm_in_worker

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime

log = get_logger(__name__)


class HotReload:
    def __init__(self, runtime: Runtime, timeout_s: float | None = None) -> None:
        self.rt = runtime
        step_s = min(runtime.settings.intervals)
        self.timeout_s = timeout_s if timeout_s is not None else 10.0 + 2 * step_s
        s = runtime.settings
        # The same condition as the identity check's warm start (cli validate-identity).
        self.warm_from_store = s.raw_store_enabled and s.warm_start and not runtime.embedded
        self._lock = asyncio.Lock()
        self.warm_runner = warm_in_worker  # plan_warmup.warm_in_thread: the test seam

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
        async with self._lock:
            return await self._apply(registry)

    async def _warm(self, plan: FeaturePlan, version: str) -> FeatureEngine:
        """An engine running ``plan`` at the live engine's state, less the events in its tap."""
        rt, s = self.rt, self.rt.settings
        engine = rt.engine
        engine.tap = []
        # Receive stamps never go back: every event applied before this moment has a receive
        # time below t0 and is in the store once flushed; every later one is stamped t0 or
        # later (the floor is raised to t0, even if the clock steps back) and is in the tap.
        t0 = rt.live.boundary.stamp(rt.live.clock.now_us()) + 1
        rt.live.boundary.stamp(t0)
        try:
            await rt.raw_writer.flush()
            symbols = set(s.symbols or ()) | set(engine.states)
            warm = await self.warm_runner(
                s.raw_dir,
                symbols,
                t0,
                plan,
                version,
                intervals_s=s.intervals,
                stale_after_s=s.stale_after_s,
                latency_warning_ms=s.latency_warning_ms,
            )
            # Catch up here (synchronously: nothing is applied meanwhile), so the switch itself
            # has at most one interval of events to apply.
            catch_up(warm, engine.tap, version)
        except BaseException:
            engine.tap = None
            raise
        return warm

    async def _apply(self, registry: Registry) -> str | None:
        plan = registry.plan
        if plan is None:
            return "invalid registry: " + "; ".join(registry.errors)
        engine = self.rt.engine
        warm = None
        if self.warm_from_store:
            try:
                warm = await self._warm(plan, registry.version)
            except Exception as exc:
                error = str(exc) if isinstance(exc, WarmupFailed) else f"warm-up failed: {exc!r}"
                log.error("registry_switch_failed", version=registry.version, error=error)
                return error
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str | None] = loop.create_future()

        def done(_version: str, error: str | None) -> None:
            if not outcome.done():
                outcome.set_result(error)

        # The archive must know the new columns before the first new vector reaches it.
        self.rt.archive.plans[registry.version] = plan
        try:
            at = engine.schedule_switch(
                plan, registry.version, self.rt.live.clock.now_us(), done, warm=warm
            )
        except RuntimeError as exc:
            engine.tap = None
            return str(exc)
        log.info("registry_switch_scheduled", version=registry.version, at_us=at, warm=bool(warm))
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
