"""Hot reload over the real RabbitMQ: while messages flow, a version adding vwap_30s and rsi_7 and
dropping slope_bid is created and activated through the API. Vectors switch version at one
boundary, no message is lost or applied twice, the identity check passes with every vector
checked against its own version, and a version whose first computation fails rolls back by
itself (409) while the stream goes on."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.features import library
from feature_service.features.catalog import BUNDLED_PLAN, FEATURE_NAMES
from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame
from feature_service.features.library import FeaturePlan
from feature_service.features.state import SymbolState
from feature_service.market.events import Kline, MarketEvent, event_type_of
from feature_service.market.recording import event_to_envelope
from feature_service.services.identity import validate_identity
from feature_service.services.plan_warmup import warm_in_thread
from feature_service.services.runtime import Runtime
from feature_service.services.state_asof import rebuild_period
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.market_messages import recent, shift_to_now
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

H = {"X-API-Key": "demo-key"}
NEW_NAMES = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["vwap_30s", "rsi_7"]
LABELS = {"1s": 1, "3s": 3, "15s": 15, "1m": 60}


class _Exploding(Family):
    key = "explode_test"
    group = "test"
    inputs = ("clock",)
    templates: ClassVar = {"": "explode_test"}
    short: ClassVar = {"": "explode_test"}

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        raise ZeroDivisionError("boom")


def _events(sample_events: list[MarketEvent], dense_seconds: int) -> list[MarketEvent]:
    first_dense = next(i for i, e in enumerate(sample_events) if not isinstance(e, Kline))
    end = sample_events[first_dense].receive_ts + dense_seconds * 1_000_000
    return [e for e in sample_events[first_dense - 60 :] if e.receive_ts < end]


async def _publish(broker: Broker, events: list[MarketEvent], pause_s: float, shift: int) -> None:
    for event in events:
        queue = broker.names.input(event_type_of(event).value)
        # Recorded times moved to now: the parser's time window requires plausible times.
        envelope = recent(event_to_envelope(event, include_service_time=False), shift)
        await broker.publish(queue, envelope)
        if pause_s:
            await asyncio.sleep(pause_s)


async def test_activation_while_messages_flow_switches_at_one_boundary(
    tmp_path: Path,
    broker: Broker,
    sample_events: list[MarketEvent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = _events(sample_events, dense_seconds=30)
    shift = shift_to_now(events[-1].receive_ts)
    await broker.declare_inputs()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        intervals=[1, 3, 15, 60],
        **broker.names.settings(),
    )
    runtime = Runtime(settings)
    await runtime.start()
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    try:
        reader = await broker.bind_reader()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
        ) as http:
            config = {"version": "2.0.0", "features": [{"name": n} for n in NEW_NAMES]}
            made = await http.post(
                "/feature-registry/versions", headers=H, json={"version": "2.0.0", "config": config}
            )
            assert made.status_code == 201, made.text
            half = len(events) // 2
            await _publish(broker, events[:half], 0.0, shift)
            await wait_until(lambda: runtime.engine.events_processed >= half // 2, 60, "flow")
            # The rest keeps flowing while the version is activated.
            flow = asyncio.create_task(_publish(broker, events[half:], 0.001, shift))
            done = await http.post(
                "/feature-registry/versions/2.0.0/activate",
                headers=H,
                json={"acknowledge_breaking_changes": True, "activation_reason": "rsi_7"},
            )
            assert done.status_code == 200, done.text
            assert done.json()["breaking_changes"] == ["removed: slope_bid"]
            await flow
            await wait_until(
                lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= len(events),
                60,
                "raw storage",
            )
            await asyncio.sleep(1.5)

            # A version whose first computation fails is rolled back by itself. The family
            # exists in this process only: warmed here, not in the worker process.
            monkeypatch.setitem(library.FAMILIES, "explode_test", _Exploding)
            runtime.hot_reload.warm_runner = warm_in_thread
            bad = {
                "version": "3.0.0",
                "features": [{"name": n} for n in [*NEW_NAMES, "explode_test"]],
            }
            made = await http.post(
                "/feature-registry/versions", headers=H, json={"version": "3.0.0", "config": bad}
            )
            assert made.status_code == 201, made.text
            failed = await http.post(
                "/feature-registry/versions/3.0.0/activate",
                headers=H,
                json={"acknowledge_breaking_changes": True},
            )
            assert failed.status_code == 409, failed.text
            body = failed.json()
            assert (body["rolled_back_from"], body["rolled_back_to"]) == ("3.0.0", "2.0.0")
            assert "ZeroDivisionError" in body["rollback_reason"]
            current = await http.get("/feature-registry", headers=H)
            assert current.json()["version"] == "2.0.0"
            audit = (await http.get("/feature-registry/versions/3.0.0", headers=H)).json()["audit"]
            assert [a["action"] for a in audit] == ["create", "activation_failed"]
            await asyncio.sleep(1.5)  # vectors go on with 2.0.0
    finally:
        await runtime.stop()

    live = [orjson.loads(m.body) for m in await broker.drain(reader.name, idle_s=0.5)]
    # no message lost or applied twice
    stored = list(RawReader(tmp_path / "raw").iter_events(symbols=["BTCUSDT"]))
    assert len(stored) == len(events) == runtime.engine.events_processed
    keys = [(m["timestamp_us"], m["interval"]) for m in live]
    assert len(keys) == len(set(keys))
    # one boundary: everything before it is 1.1.0, everything from it on 2.0.0
    switch_at = min(m["timestamp_us"] for m in live if m["feature_registry_version"] == "2.0.0")
    for m in live:
        expected = "1.1.0" if m["timestamp_us"] < switch_at else "2.0.0"
        assert m["feature_registry_version"] == expected, m["timestamp_us"]
        names = FEATURE_NAMES if expected == "1.1.0" else NEW_NAMES
        assert list(m["features"]) == [n for n in names if n in m["features"]]
        assert set(m["features"]) | set(m["null_reasons"]) == set(names)
    assert any(m["timestamp_us"] < switch_at for m in live)
    after = [m for m in live if m["timestamp_us"] >= switch_at and m["interval"] == "1s"]
    assert after and after[0]["features"]["rsi_7"] is not None  # warmed from the raw store
    # The new variants right after activation equal an offline rebuild with the new version.
    plan_2 = FeaturePlan.from_names(NEW_NAMES, "2.0.0")
    rebuilt = {
        v.timestamp: v
        for v in rebuild_period(
            tmp_path / "raw", "BTCUSDT", switch_at, switch_at + 5_000_000, plan=plan_2
        )
        if v.interval_s == 1
    }
    assert len(rebuilt) == 5
    for m in after[:5]:
        ref = rebuilt[m["timestamp_us"]]
        for name in ("vwap_30s", "rsi_7"):
            assert m["features"].get(name) == ref.features[name], (m["timestamp_us"], name)

    plans = {"1.1.0": BUNDLED_PLAN, "2.0.0": FeaturePlan.from_names(NEW_NAMES, "2.0.0")}
    for interval_s in (1, 3):
        report = validate_identity(
            tmp_path / "raw",
            tmp_path / "features",
            symbol="BTCUSDT",
            interval_s=interval_s,
            start_us=0,
            end_us=2**62,
            intervals_s=[1, 3, 15, 60],
            plans=plans,
        )
        assert report.ok, report.as_dict()
        assert report.compared == sum(1 for m in live if LABELS[m["interval"]] == interval_s)


async def test_an_activation_failing_for_one_symbol_switches_no_symbol(
    tmp_path: Path,
    broker: Broker,
    sample_events: list[MarketEvent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two symbols; computing the new version fails for ETHUSDT only (injected in this
    process: the warm-up in the worker goes through, the switch's first computation fails).
    409 naming the symbol, both symbols stay on 1.1.0."""
    btc = _events(sample_events, dense_seconds=20)
    events: list[MarketEvent] = []
    for e in btc:
        events += [e, dataclasses.replace(e, symbol="ETHUSDT", receive_ts=e.receive_ts + 1)]
    shift = shift_to_now(events[-1].receive_ts)
    await broker.declare_inputs()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        intervals=[1, 3, 15, 60],
        symbols=["BTCUSDT", "ETHUSDT"],
        **broker.names.settings(),
    )
    compute = SymbolState.compute

    def failing(self: SymbolState, t: int) -> FeatureFrame:
        if self.symbol == "ETHUSDT" and self.plan.version == "2.0.0":
            raise ArithmeticError("injected")
        return compute(self, t)

    monkeypatch.setattr(SymbolState, "compute", failing)
    runtime = Runtime(settings)
    await runtime.start()
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    try:
        reader = await broker.bind_reader()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
        ) as http:
            config = {"version": "2.0.0", "features": [{"name": n} for n in NEW_NAMES]}
            made = await http.post(
                "/feature-registry/versions", headers=H, json={"version": "2.0.0", "config": config}
            )
            assert made.status_code == 201, made.text
            half = len(events) // 2
            await _publish(broker, events[:half], 0.0, shift)
            await wait_until(lambda: runtime.engine.events_processed >= half // 2, 60, "flow")
            flow = asyncio.create_task(_publish(broker, events[half:], 0.001, shift))
            failed = await http.post(
                "/feature-registry/versions/2.0.0/activate",
                headers=H,
                json={"acknowledge_breaking_changes": True},
            )
            assert failed.status_code == 409, failed.text
            body = failed.json()
            assert (body["rolled_back_from"], body["rolled_back_to"]) == ("2.0.0", "1.1.0")
            assert "ETHUSDT" in body["rollback_reason"] and "injected" in body["rollback_reason"]
            assert (await http.get("/feature-registry", headers=H)).json()["version"] == "1.1.0"
            await flow
            await wait_until(
                lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= len(events),
                60,
                "raw storage",
            )
            await asyncio.sleep(1.5)
            assert runtime.engine.versions == {"BTCUSDT": "1.1.0", "ETHUSDT": "1.1.0"}
            assert runtime.engine.tap is None and runtime.engine.switch is None
    finally:
        await runtime.stop()
    live = [orjson.loads(m.body) for m in await broker.drain(reader.name, idle_s=0.5)]
    assert {m["symbol"] for m in live} == {"BTCUSDT", "ETHUSDT"}
    assert {m["feature_registry_version"] for m in live} == {"1.1.0"}
