"""Hot switch of a FeatureEngine to another registry version's plan: one boundary for every
symbol, no event lost or applied twice, kept features continue bit for bit, new ones warm up
from the retained state, and a plan whose first computation fails is rolled back."""

from __future__ import annotations

from typing import ClassVar

import pytest

from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.features import library
from feature_service.features.catalog import BUNDLED_PLAN, FEATURE_NAMES
from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame
from feature_service.features.library import FeaturePlan
from feature_service.market.events import MarketEvent

S = 1_000_000
NEW_NAMES = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["vwap_30s", "rsi_7"]


def _run(
    events: list[MarketEvent], switch_after: int, plan: FeaturePlan, version: str
) -> tuple[list[FeatureVector], FeatureEngine, list[tuple[str, str | None]], int]:
    engine = FeatureEngine(intervals_s=[1, 3])
    done: list[tuple[str, str | None]] = []
    vectors: list[FeatureVector] = []
    at = 0
    for i, event in enumerate(events):
        if i == switch_after:
            at = engine.schedule_switch(
                plan, version, event.receive_ts, lambda v, e: done.append((v, e))
            )
        vectors.extend(engine.process(event))
    return vectors, engine, done, at


def test_switch_happens_at_one_boundary_and_loses_nothing(
    sample_events: list[MarketEvent],
) -> None:
    plan = FeaturePlan.from_names(NEW_NAMES, "2.0.0")
    half = len(sample_events) // 2
    vectors, engine, done, at = _run(sample_events, half, plan, "2.0.0")
    reference = FeatureEngine(intervals_s=[1, 3])
    expected = [v for e in sample_events for v in reference.process(e)]

    assert done == [("2.0.0", None)]
    assert engine.registry_version == "2.0.0" and engine.switch is None
    assert engine.events_processed == reference.events_processed == len(sample_events)
    # the same boundaries closed, once each, whatever the version
    assert [(v.timestamp, v.interval_s) for v in vectors] == [
        (v.timestamp, v.interval_s) for v in expected
    ]
    for got, ref in zip(vectors, expected, strict=True):
        if got.timestamp < at:
            assert got.registry_version == "1.1.0" and got.features == ref.features
        else:
            assert got.registry_version == "2.0.0"
            assert list(got.features) == NEW_NAMES
            # every feature both versions compute continues bit for bit
            for name in NEW_NAMES[:-2]:
                assert got.features[name] == ref.features[name], (got.timestamp, name)


def test_new_features_are_complete_at_the_switch_where_the_state_allows(
    sample_events: list[MarketEvent],
) -> None:
    plan = FeaturePlan.from_names(NEW_NAMES, "2.0.0")
    half = len(sample_events) // 2
    vectors, _, _, at = _run(sample_events, half, plan, "2.0.0")
    fresh = FeatureEngine(intervals_s=[1, 3], plan=plan)
    from_start = {(v.timestamp, v.interval_s): v for e in sample_events for v in fresh.process(e)}
    first = next(v for v in vectors if v.timestamp >= at)
    # rsi_7 warms from the retained klines, vwap_30s from the retained trades (60 s kept)
    for v in (v for v in vectors if v.timestamp >= at):
        ref = from_start[(v.timestamp, v.interval_s)]
        assert v.features["rsi_7"] == pytest.approx(ref.features["rsi_7"], rel=1e-12)
        assert v.features["vwap_30s"] == pytest.approx(ref.features["vwap_30s"], rel=1e-12)
    assert first.features["rsi_7"] is not None and first.features["vwap_30s"] is not None


class _Exploding(Family):
    key = "explode_test"
    group = "test"
    inputs = ("clock",)
    templates: ClassVar = {"": "explode_test"}
    short: ClassVar = {"": "explode_test"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        raise ZeroDivisionError("boom")


def test_a_plan_whose_first_computation_fails_is_rolled_back(
    sample_events: list[MarketEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(library.FAMILIES, "explode_test", _Exploding)
    plan = FeaturePlan.from_names([*FEATURE_NAMES, "explode_test"], "3.0.0")
    half = len(sample_events) // 2
    vectors, engine, done, _ = _run(sample_events, half, plan, "3.0.0")
    assert len(done) == 1 and done[0][0] == "3.0.0"
    assert done[0][1] is not None and "ZeroDivisionError" in done[0][1]
    assert engine.registry_version == "1.1.0" and engine.plan is BUNDLED_PLAN
    assert {v.registry_version for v in vectors} == {"1.1.0"}
    assert all(list(v.features) == list(FEATURE_NAMES) for v in vectors)
