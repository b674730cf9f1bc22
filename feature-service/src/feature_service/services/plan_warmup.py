"""An engine running a registry version's plan, warmed from the raw store as of a moment T:
what a hot reload switches to (``engine.switch``) and what the identity check rebuilds at a
version change.

One symbol at a time, so a failure names its symbol; the lookbacks are the new plan's own
(``Lookbacks.for_plan``), so a variant longer than anything the previous version kept (a
``vwap_300s``, an ``ema_200``) is complete from the first vector where the store holds enough.
The warm-up computes the new plan at every boundary of its fine phase, so a version whose
computation fails for some symbol fails here, before anything switches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    engine = FeatureEngine(
        intervals_s=intervals_s,
        plan=plan,
        registry_version=version,
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
