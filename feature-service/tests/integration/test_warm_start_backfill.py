"""Warm start with ``FEATURE_SERVICE_BACKFILL_AUTO`` (issues 8 and 10): a service over the real
RabbitMQ whose raw store holds no candles backfills 25 h of klines from (the fake) Bybit REST
before it restores its state, so the candle features are complete from its first vector."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.config import Settings
from feature_service.market.events import Kline
from feature_service.services.runtime import Runtime
from tests.fixtures.backfill_schema import apply_to_sqlite_file
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.fake_bybit import FakeBybit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MIN_US = 60_000_000
HOUR_US = 3_600 * 1_000_000


def _settings(tmp_path: Path, broker: Broker, fake: FakeBybit, auto: bool) -> Settings:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        symbols=["BTCUSDT"],
        bybit_rest_url=fake.base_url,
        backfill_auto=auto,
        backfill_max_days=3,
        **broker.names.settings(),
    )
    apply_to_sqlite_file(settings.sqlite_path)
    return settings


async def _start_stop(settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    await runtime.start()
    await runtime.stop()
    return runtime


async def test_warm_start_backfills_missing_klines_before_restoring_state(
    tmp_path: Path, broker: Broker
) -> None:
    await broker.declare_inputs()
    with FakeBybit(now_ms=int(time.time() * 1000)) as fake:
        # Off (the default): the warm start asks Bybit nothing and starts without candles.
        off = await _start_stop(_settings(tmp_path / "off", broker, fake, auto=False))
        assert fake.request_count() == 0
        assert off.warm_report is not None and off.warm_report["backfill"] == {}

        runtime = Runtime(_settings(tmp_path / "on", broker, fake, auto=True))
        await runtime.start()
        try:
            report = runtime.warm_report
            assert report is not None and report["backfill"] == {"BTCUSDT": "completed"}
            t0 = report["t_us"]
            state = runtime.engine.states["BTCUSDT"]
            # 25 h of candles in the engine's history, restored before anything was consumed.
            assert len(state.klines) >= 1_500
            assert report["last_candle_close"]["BTCUSDT"] > 0
        finally:
            await runtime.stop()
        assert fake.request_count() > 0

    stored = [
        e
        for e in RawReader(tmp_path / "on" / "raw").iter_events(["klines"], ["BTCUSDT"])
        if isinstance(e, Kline)
    ]
    before = [k for k in stored if k.receive_ts < t0]
    assert before[0].start <= t0 - 25 * HOUR_US
    # Known time: every backfilled candle is received at its close, never at its start.
    assert all(k.receive_ts == k.start + MIN_US for k in stored)
    assert t0 - before[-1].receive_ts < 2 * MIN_US
