"""Hot switch with operators warmed from the raw store (``services/plan_warmup.py``): the vectors
after the switch equal an offline rebuild with the new version, bit for bit, including a trade
window longer than anything the old version kept; and a switch is all symbols or none."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.engine.warmup import Lookbacks
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.features.library import FeaturePlan
from feature_service.features.state import SymbolState
from feature_service.market.events import Kline, MarketEvent
from feature_service.services.plan_warmup import (
    WarmupFailed,
    catch_up,
    warm_in_worker,
    warm_plan_engine,
)
from feature_service.services.state_asof import rebuild_period

S = 1_000_000
SYM = "BTCUSDT"
NEW = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["vwap_90s", "trade_count_90s"]
INTERVALS = [1, 3]


@pytest.fixture(scope="module")
def store(sample_events: list[MarketEvent], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    RawWriterSync(root, first_seq=0).write_events(sample_events)
    return root


def _stored(root: Path) -> list[MarketEvent]:
    return list(RawReader(root).iter_events(symbols=[SYM]))


def _split(events: list[MarketEvent], seconds_into_dense: int) -> int:
    """Index of the first event at least that far into the dense part, after a new time."""
    dense0 = next(e.receive_ts for e in events if not isinstance(e, Kline))
    k = next(i for i, e in enumerate(events) if e.receive_ts >= dense0 + seconds_into_dense * S)
    while events[k].receive_ts == events[k - 1].receive_ts:
        k += 1
    return k


def _live_switch(
    root: Path, events: list[MarketEvent], plan: FeaturePlan, *, warm: bool
) -> tuple[list[FeatureVector], int, list[tuple[str, str | None]]]:
    """What HotReload does, step by step: the tap starts, the warm-up reads the store as of
    t0 while events go on, the engine catches up, the switch is scheduled and happens."""
    engine = FeatureEngine(intervals_s=INTERVALS)
    k = _split(events, 170)  # more than 90 s of trades before the switch
    t0 = events[k - 1].receive_ts + 1
    out = [v for e in events[:k] for v in engine.process(e)]
    engine.tap = [] if warm else None
    warmed = warm_plan_engine(root, [SYM], t0, plan, "2.0.0", intervals_s=INTERVALS)
    k2 = k + 200  # applied while the warm-up ran
    out += [v for e in events[k:k2] for v in engine.process(e)]
    if warm:
        catch_up(warmed, engine.tap, "2.0.0")  # type: ignore[arg-type]
    done: list[tuple[str, str | None]] = []
    at = engine.schedule_switch(
        plan,
        "2.0.0",
        events[k2].receive_ts,
        lambda v, e: done.append((v, e)),
        warm=warmed if warm else None,
    )
    out += [v for e in events[k2:] for v in engine.process(e)]
    out += engine.advance_to(events[-1].receive_ts)
    return out, at, done


def test_vectors_after_a_warm_switch_equal_an_offline_rebuild_with_the_new_version(
    store: Path,
) -> None:
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    events = _stored(store)
    vectors, at, done = _live_switch(store, events, plan, warm=True)
    assert done == [("2.0.0", None)]
    end = events[-1].receive_ts + 1
    rebuilt = {
        (v.timestamp, v.interval_s): v
        for v in rebuild_period(store, SYM, at, end, intervals_s=INTERVALS, plan=plan)
    }
    after = [v for v in vectors if v.timestamp >= at]
    assert [(v.timestamp, v.interval_s) for v in after] == sorted(rebuilt)
    assert {v.registry_version for v in after} == {"2.0.0"}
    assert {v.registry_version for v in vectors if v.timestamp < at} == {"1.1.0"}
    for v in after:
        ref = rebuilt[(v.timestamp, v.interval_s)]
        assert v.features == ref.features, v.timestamp
        assert v.null_reasons == ref.null_reasons, v.timestamp
    first = after[0]
    # complete at once, though the old version kept 60 s of trades only
    assert first.features["vwap_90s"] is not None
    assert first.features["trade_count_90s"] > 0


def test_without_the_store_a_longer_window_only_sees_the_retained_trades(store: Path) -> None:
    """The migrated switch (no warm-up) differs from the rebuild: what the test above checks
    is not true by accident."""
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    events = _stored(store)
    vectors, at, _ = _live_switch(store, events, plan, warm=False)
    end = events[-1].receive_ts + 1
    rebuilt = rebuild_period(store, SYM, at, end, intervals_s=INTERVALS, plan=plan)
    first = next(v for v in vectors if v.timestamp >= at)
    assert first.features.get("trade_count_90s") != rebuilt[0].features["trade_count_90s"]


# -- all symbols or none ---------------------------------------------------------------------------


def _two_symbols(events: list[MarketEvent]) -> list[MarketEvent]:
    """BTCUSDT and a copy as ETHUSDT one microsecond later (BTCUSDT reaches a boundary first)."""
    out: list[MarketEvent] = []
    for e in events:
        out.append(e)
        out.append(dataclasses.replace(e, symbol="ETHUSDT", receive_ts=e.receive_ts + 1))
    return out


def _failing_for(monkeypatch: pytest.MonkeyPatch, symbol: str, version: str) -> None:
    compute = SymbolState.compute

    def failing(self: SymbolState, t: int):  # type: ignore[no-untyped-def]
        if self.symbol == symbol and self.plan.version == version:
            raise ArithmeticError("injected")
        return compute(self, t)

    monkeypatch.setattr(SymbolState, "compute", failing)


@pytest.mark.parametrize("warm", [False, True])
def test_a_switch_failing_for_one_symbol_switches_none(
    sample_events: list[MarketEvent],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    warm: bool,
) -> None:
    events = _two_symbols(sample_events)
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    reference = FeatureEngine(intervals_s=INTERVALS)
    expected = [v for e in events for v in reference.process(e)]

    engine = FeatureEngine(intervals_s=INTERVALS)
    half = len(events) // 2
    vectors = [v for e in events[:half] for v in engine.process(e)]
    warmed = None
    if warm:
        RawWriterSync(tmp_path, first_seq=0).write_events(events[:half])
        t0 = events[half - 1].receive_ts + 1
        warmed = warm_plan_engine(
            tmp_path, ["BTCUSDT", "ETHUSDT"], t0, plan, "2.0.0", intervals_s=INTERVALS
        )
        engine.tap = []
    # Failing from here on: at the switch (the warm-up above went through).
    _failing_for(monkeypatch, "ETHUSDT", "2.0.0")
    done: list[tuple[str, str | None]] = []
    engine.schedule_switch(
        plan, "2.0.0", events[half].receive_ts, lambda v, e: done.append((v, e)), warm=warmed
    )
    vectors += [v for e in events[half:] for v in engine.process(e)]

    assert len(done) == 1 and done[0][0] == "2.0.0"
    assert done[0][1] is not None and "ETHUSDT" in done[0][1] and "injected" in done[0][1]
    assert engine.registry_version == "1.1.0" and engine.switch is None and engine.tap is None
    assert engine.versions == {"BTCUSDT": "1.1.0", "ETHUSDT": "1.1.0"}
    # not one vector of the new version, for either symbol, and nothing else changed
    assert {v.registry_version for v in vectors} == {"1.1.0"}
    assert [(v.symbol, v.timestamp, v.interval_s, v.features) for v in vectors] == [
        (v.symbol, v.timestamp, v.interval_s, v.features) for v in expected
    ]


def test_a_warm_up_failing_for_one_symbol_names_it(
    sample_events: list[MarketEvent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _two_symbols(sample_events)
    RawWriterSync(tmp_path, first_seq=0).write_events(events)
    _failing_for(monkeypatch, "ETHUSDT", "2.0.0")
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    with pytest.raises(WarmupFailed, match=r"ETHUSDT.*injected"):
        warm_plan_engine(tmp_path, ["BTCUSDT", "ETHUSDT"], events[-1].receive_ts, plan, "2.0.0")


@pytest.mark.parametrize("warm", [False, True])
def test_a_switch_reached_by_the_timer_moves_every_symbol(
    sample_events: list[MarketEvent], tmp_path: Path, warm: bool
) -> None:
    """The live timer (``advance_to``) may be what reaches the boundary: every symbol's vector
    there is computed by its new state, under the new version's names."""
    events = _two_symbols(sample_events)
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    engine = FeatureEngine(intervals_s=INTERVALS)
    half = len(events) // 2
    for e in events[:half]:
        engine.process(e)
    warmed = None
    if warm:
        RawWriterSync(tmp_path, first_seq=0).write_events(events[:half])
        t0 = events[half - 1].receive_ts + 1
        warmed = warm_plan_engine(
            tmp_path, ["BTCUSDT", "ETHUSDT"], t0, plan, "2.0.0", intervals_s=INTERVALS
        )
        engine.tap = []
    at = engine.schedule_switch(plan, "2.0.0", events[half].receive_ts, warm=warmed)
    quiet = engine.advance_to(at + 3 * S)  # no event: the timer closes the boundaries
    assert engine.registry_version == "2.0.0"
    assert {v.symbol for v in quiet if v.timestamp >= at} == {"BTCUSDT", "ETHUSDT"}
    for v in quiet:
        version = "2.0.0" if v.timestamp >= at else "1.1.0"
        assert v.registry_version == version, (v.symbol, v.timestamp)
        assert list(v.features) == (NEW if version == "2.0.0" else list(FEATURE_NAMES))


def test_lookbacks_come_from_the_plan() -> None:
    bundled = FeaturePlan.from_names(FEATURE_NAMES)
    assert Lookbacks.for_plan(bundled) == Lookbacks.default()
    longer = Lookbacks.for_plan(FeaturePlan.from_names([*FEATURE_NAMES, "vwap_5m"]))
    assert longer.trades_us == 300 * S and longer.book_us == Lookbacks.default().book_us


async def test_a_warm_up_in_the_worker_process_equals_one_made_here(store: Path) -> None:
    """Hot reload warms in a spawned process and gets the states back pickled: they compute
    exactly what states warmed in this process do."""
    plan = FeaturePlan.from_names(NEW, "2.0.0")
    events = _stored(store)
    t0 = events[_split(events, 170) - 1].receive_ts + 1
    here = warm_plan_engine(store, [SYM], t0, plan, "2.0.0", intervals_s=INTERVALS)
    there = await warm_in_worker(store, [SYM], t0, plan, "2.0.0", intervals_s=INTERVALS)
    after = [e for e in events if e.receive_ts >= t0][:3000]
    a = [v for e in after for v in here.process(e)]
    b = [v for e in after for v in there.process(e)]
    assert a and [(v.timestamp, v.interval_s, v.features) for v in a] == [
        (v.timestamp, v.interval_s, v.features) for v in b
    ]
    assert {v.registry_version for v in b} == {"2.0.0"}
