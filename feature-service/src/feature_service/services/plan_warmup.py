"""An engine running a registry version's plan, warmed from the raw store as of a moment T:
what a hot reload switches to (``engine.switch``) and what the identity check rebuilds at a
version change.

One symbol at a time, so a failure names its symbol; the lookbacks are the new plan's own
(``Lookbacks.for_plan``), so a variant longer than anything the previous version kept (a
``vwap_300s``, an ``ema_200``) is complete from the first vector where the store holds enough.
The warm-up computes the new plan at every boundary of its fine phase, so a version whose
computation fails for some symbol fails here, before anything switches.

``warm_in_worker`` runs it in a spawned process (the replay is seconds of CPU per symbol: in the
live process it would hold the GIL and delay consumption) and sends the states back pickled;
``warm_in_thread`` runs it here (tests whose families exist only in the test process).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from feature_service.engine.core import FeatureEngine
from feature_service.engine.warmup import Lookbacks
from feature_service.features.library import FeaturePlan
from feature_service.ingest import IngestBoundary
from feature_service.market.events import MarketEvent
from feature_service.services.state_asof import state_as_of


class WarmupFailed(Exception):
    """Warming the new plan failed for a symbol (the message says which and why)."""


def warm_plan_engine(
    raw_root: Path | str,
    symbols: Iterable[str],
    t_us: int,
    plan: FeaturePlan,
    version: str,
    *,
    intervals_s: Iterable[int] = (1, 3, 15, 60),
    stale_after_s: float = 5.0,
    latency_warning_ms: float = 70.0,
) -> FeatureEngine:
    """A FeatureEngine computing ``plan`` (stamped ``version``) at state as of ``t_us``."""
    engine = _engine(
        plan,
        version,
        intervals_s=intervals_s,
        stale_after_s=stale_after_s,
        latency_warning_ms=latency_warning_ms,
    )
    boundary = IngestBoundary()
    lookbacks = Lookbacks.for_plan(plan)
    for symbol in sorted(set(symbols)):
        try:
            state_as_of(
                raw_root, [symbol], t_us, engine=engine, boundary=boundary, lookbacks=lookbacks
            )
        except Exception as exc:
            raise WarmupFailed(
                f"warm-up of {version} failed for {symbol}: {type(exc).__name__}: {exc}"
            ) from exc
    return engine


def _engine(
    plan: FeaturePlan,
    version: str,
    *,
    intervals_s: Iterable[int] = (1, 3, 15, 60),
    stale_after_s: float = 5.0,
    latency_warning_ms: float = 70.0,
) -> FeatureEngine:
    return FeatureEngine(
        intervals_s=intervals_s,
        plan=plan,
        registry_version=version,
        stale_after_s=stale_after_s,
        latency_warning_ms=latency_warning_ms,
    )


def catch_up(engine: FeatureEngine, tap: list[MarketEvent], version: str) -> None:
    """Apply what the live engine applied since the warm-up's moment, then empty ``tap``."""
    for event in tap:
        try:
            engine.process(event)
        except Exception as exc:
            raise WarmupFailed(
                f"warm-up of {version} failed for {event.symbol}: {type(exc).__name__}: {exc}"
            ) from exc
    tap.clear()


def _warm_states(raw_root: Path | str, symbols: list[str], t_us: int, plan: FeaturePlan,
                 version: str, kw: dict[str, Any]) -> Any:  # fmt: skip
    # Runs in the worker process.
    return warm_plan_engine(raw_root, symbols, t_us, plan, version, **kw).export_states()


async def warm_in_worker(
    raw_root: Path | str,
    symbols: Iterable[str],
    t_us: int,
    plan: FeaturePlan,
    version: str,
    **kw: Any,
) -> FeatureEngine:
    """``warm_plan_engine`` in a spawned worker process; the states come back pickled."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        call = functools.partial(
            _warm_states, raw_root, sorted(set(symbols)), t_us, plan, version, kw
        )
        states = await asyncio.get_running_loop().run_in_executor(pool, call)
    finally:
        await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
    engine = _engine(plan, version, **kw)
    engine.adopt_states(*states)
    return engine


async def warm_in_thread(
    raw_root: Path | str,
    symbols: Iterable[str],
    t_us: int,
    plan: FeaturePlan,
    version: str,
    **kw: Any,
) -> FeatureEngine:
    return await asyncio.to_thread(warm_plan_engine, raw_root, symbols, t_us, plan, version, **kw)
