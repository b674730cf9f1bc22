"""Online/offline identity check: rebuild a stored period offline from raw Parquet and compare it
with the vectors the live engine published (the vector archive), feature by feature.

Each live session started from the state as of its start (``services/state_asof.py``: warm start
from the raw store; empty when the store held nothing, or with warm start off), so the offline
replay for a session builds that same state and runs the same FeatureEngine over the stored
events in receive order, through the same ingest boundary. Floats
are compared bit for bit (null equals null); there is no tolerance to tune.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.vectorstore import read_archived
from feature_service.engine.core import FeatureEngine
from feature_service.engine.warmup import Lookbacks
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.ingest import IngestBoundary
from feature_service.ingest.replay import stored_events
from feature_service.services.plan_warmup import warm_plan_engine
from feature_service.services.state_asof import state_as_of


@dataclass(slots=True)
class IdentityReport:
    symbol: str
    interval_s: int
    compared: int = 0
    identical_rows: int = 0
    missing_offline: int = 0
    sessions: int = 0
    mismatches: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.compared > 0 and not self.mismatches and self.missing_offline == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval_s": self.interval_s,
            "sessions": self.sessions,
            "compared": self.compared,
            "identical_rows": self.identical_rows,
            "missing_offline": self.missing_offline,
            "mismatches_per_feature": dict(self.mismatches),
            "examples": self.examples,
            "ok": self.ok,
        }


def _same(a: object, b: object) -> bool:
    if b is _MISSING:
        return False
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    return a == b


def validate_identity(
    raw_root: Path,
    vectors_root: Path,
    *,
    symbol: str,
    interval_s: int,
    start_us: int,
    end_us: int,
    intervals_s: list[int],
    max_examples: int = 20,
    plans: Mapping[str, FeaturePlan] | None = None,
    warm_start: bool = True,
) -> IdentityReport:
    """``plans`` maps registry versions to their plans (default: the bundled one). Each live
    vector is checked against its own version: where the archive shows the version changing at
    a boundary, the offline engine switches to that version's plan at the same boundary, exactly
    as the live engine did (warmed from the store as of that boundary with ``warm_start``, as
    hot reload does then; else migrated from the old state)."""
    plans = plans or {BUNDLED_PLAN.version: BUNDLED_PLAN}
    report = IdentityReport(symbol, interval_s)
    live = read_archived(vectors_root, symbol, interval_s, start_us, end_us)
    if live.empty:
        return report
    live_ts = live["timestamp"].dt.as_unit("us").astype("int64")
    sessions = live["session_start"].dt.as_unit("us").astype("int64")
    reader = RawReader(raw_root)
    for session_start in sorted(set(sessions.tolist())):
        report.sessions += 1
        rows = live[sessions == session_start]
        stamps = live_ts[sessions == session_start]
        versions = rows["feature_registry_version"].tolist()
        changes = [
            (t, v)
            for i, (t, v) in enumerate(zip(stamps.tolist(), versions, strict=True))
            if i == 0 or v != versions[i - 1]
        ]
        unknown = sorted({v for _, v in changes} - set(plans))
        if unknown:
            raise KeyError(f"no plan for registry version(s) {unknown}")
        last = int(stamps.max())
        first_version = changes[0][1]
        engine = FeatureEngine(
            intervals_s=intervals_s, plan=plans[first_version], registry_version=first_version
        )
        boundary = IngestBoundary()
        if warm_start:
            # The live session started from state as of its start (warm start): so does this.
            engine, _ = state_as_of(
                raw_root,
                [symbol],
                session_start,
                engine=engine,
                boundary=boundary,
                lookbacks=Lookbacks.for_plan(engine.plan),
            )
        pending = changes[1:]
        offline: dict[int, dict[str, float | int | None]] = {}
        events = stored_events(
            reader, boundary, symbols=[symbol], start_us=session_start, end_us=last
        )
        for event in events:
            # Scheduled once a state exists (or its time has come): with no state at all the
            # engine would switch at once, as the live one does before its first event.
            if (
                pending
                and engine.switch is None
                and (engine.states or event.receive_ts >= pending[0][0])
            ):
                at, version = pending.pop(0)
                # Live warmed the new version from the store (services/hot_reload.py): as of
                # the switch, that is the store's state with the new plan.
                warm = (
                    warm_plan_engine(
                        raw_root, [symbol], at, plans[version], version, intervals_s=intervals_s
                    )
                    if warm_start
                    else None
                )
                engine.schedule_switch(plans[version], version, at, warm=warm)
            _take(engine.process(event), interval_s, offline)
        _take(engine.advance_to(last), interval_s, offline)
        for t, version, (_, row) in zip(stamps.tolist(), versions, rows.iterrows(), strict=True):
            expected = offline.get(t)
            if expected is None:
                report.missing_offline += 1
                continue
            report.compared += 1
            names = plans[version].names
            bad = [n for n in names if not _same(row.get(n), expected.get(n, _MISSING))]
            if not bad:
                report.identical_rows += 1
            for name in bad:
                report.mismatches[name] += 1
                if len(report.examples) < max_examples:
                    report.examples.append(
                        {
                            "timestamp_us": t,
                            "feature": name,
                            "version": version,
                            "live": row.get(name),
                            "offline": expected.get(name),
                        }
                    )
    return report


_MISSING = object()  # a name the offline vector lacks never equals a live value


def _take(vectors: list[Any], interval_s: int, into: dict[int, Any]) -> None:
    for vector in vectors:
        if vector.interval_s == interval_s:
            into[vector.timestamp] = vector.features
