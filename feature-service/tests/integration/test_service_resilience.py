"""The service when ws-gateway or the data stops: it keeps running and serving the last features,
marks them stale, subscribes once ws-gateway comes back, and recovers when data returns."""

from __future__ import annotations

from pathlib import Path

import orjson

from feature_service.config import Settings
from feature_service.services.runtime import Runtime
from tests.fixtures.fake_ws_gateway import FakeWsGateway
from tests.fixtures.market_messages import envelope_trade, recent
from tests.fixtures.waiting import wait_until

S = 1_000_000
T0 = 1_795_600_000 * S
T0_SHIFT = T0 - 1_737_972_000_000_000  # the contract trade's minute -> T0


class ManualClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        replay_enabled=False,
        intervals=[1],
        stale_after_s=5.0,
        **extra,
    )


async def test_subscriptions_wait_for_ws_gateway_without_blocking_the_service(
    tmp_path: Path,
) -> None:
    gateway = FakeWsGateway(api_key="gw-key")  # down at start
    runtime = Runtime(
        _settings(
            tmp_path,
            ws_gateway_url=gateway.base_url,
            ws_gateway_api_key="gw-key",
            symbols=["BTCUSDT", "ETHUSDT"],
        )
    )
    await runtime.start()
    try:
        checks = await runtime.health_checks()
        assert checks["bus"]["ok"] and checks["subscriptions"]["pending"] == 8
        # The service works meanwhile.
        runtime.live.ingest(orjson.dumps(recent(envelope_trade())), "q")
        assert runtime.engine.events_processed == 1

        await gateway.astart()
        await wait_until(
            lambda: runtime.subscriptions.summary()["active"] == 8, 30, "subscriptions"
        )
    finally:
        await runtime.stop()
        await gateway.astop()

    posts = [r for r in gateway.requests_to("POST") if r.status == 200]
    bodies = sorted((r.body["symbol"], r.body["channel_type"]) for r in posts)
    assert bodies == sorted(
        (s, c)
        for s in ("BTCUSDT", "ETHUSDT")
        for c in ("orderbook", "trades", "ticker", "kline")  # funding: not a Bybit topic
    )
    assert all(r.body["requesting_service"] == "feature-service" for r in posts)
    assert all(r.headers["x-api-key"] == "gw-key" for r in posts)
    assert gateway.requests_to("DELETE", "/") == []  # never cancelled on shutdown
    topics = {row["topic"] for row in gateway.rows()}
    assert "orderbook.1.BTCUSDT" in topics and "publicTrade.ETHUSDT" in topics


async def test_orders_per_symbol_depth_in_topic_and_a_failed_subscription_in_health(
    tmp_path: Path,
) -> None:
    gateway = FakeWsGateway(api_key="gw-key")
    await gateway.astart()
    gateway.fail_next(1, 500)  # the first POST: with one attempt allowed, it fails at once
    runtime = Runtime(
        _settings(
            tmp_path,
            ws_gateway_url=gateway.base_url,
            ws_gateway_api_key="gw-key",
            symbols=["BTCUSDT", "ETHUSDT"],
            consume_orders=True,
            orderbook_depth=200,
            subscription_max_attempts=1,
            subscription_retry_interval_s=3600,
        )
    )
    await runtime.start()
    try:
        await wait_until(lambda: runtime.subscriptions.settled, 30, "subscriptions settled")
        checks = await runtime.health_checks()
    finally:
        await runtime.stop()
        await gateway.astop()
    subs = checks["subscriptions"]
    assert checks["subscriptions"]["ok"] is True  # a warning, the service still serves
    assert (subs["active"], subs["failed"]) == (9, 1)
    [warning] = subs["warnings"]
    assert warning.startswith("orderbook/BTCUSDT failed (attempts_exhausted) after 1 attempts")
    assert "status=500" in warning and "retried at" in warning
    failed = next(s for s in subs["subscriptions"] if s["status"] == "failed")
    assert failed["next_retry_at"] is not None
    posts = gateway.requests_to("POST")
    orders = [r.body for r in posts if r.body["channel_type"] == "order"]
    assert [(b["symbol"], r) for b in orders for r in [b.get("topic")]] == [
        ("BTCUSDT", None),
        ("ETHUSDT", None),
    ]
    assert {r.body["topic"] for r in posts if r.body["channel_type"] == "orderbook"} == {
        "orderbook.200.BTCUSDT",
        "orderbook.200.ETHUSDT",
    }
    assert all(r.status in (200, 500) for r in posts) and len(posts) == 10


async def test_features_go_stale_when_data_stops_and_recover_when_it_returns(
    tmp_path: Path,
) -> None:
    runtime = Runtime(_settings(tmp_path))
    await runtime.start()
    clock = ManualClock(T0 + 100)
    runtime.live.clock = clock
    try:
        runtime.live.ingest(orjson.dumps(recent(envelope_trade(trade_id="a"), T0_SHIFT)), "q")
        clock.now = T0 + 2 * S
        runtime.live.tick()
        fresh = runtime.live.latest_vector("BTCUSDT")
        assert fresh is not None and not fresh.stale
        assert fresh.features["volume_3s"] == 0.01

        clock.now = T0 + 20 * S  # ws-gateway went quiet: the timer keeps closing intervals
        runtime.live.tick()
        stale = runtime.live.latest_vector("BTCUSDT")
        assert stale is not None and stale.stale
        assert stale.data_age_ms == (20 * S - 100) / 1000
        assert stale.features["volume_3s"] == 0.0  # no made-up activity
        checks = await runtime.health_checks()
        assert checks["computation"]["stale_symbols"] == ["BTCUSDT"]
        assert checks["computation"]["data_age_s"] == (20 * S - 100) / S

        clock.now = T0 + 20 * S + 500
        # Another message: ws-gateway gives it its own event_id (the same id is a redelivery).
        second = envelope_trade(trade_id="b", event_id="c7f1e9a0-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
        runtime.live.ingest(orjson.dumps(recent(second, T0_SHIFT)), "q")
        clock.now = T0 + 21 * S
        runtime.live.tick()
        recovered = runtime.live.latest_vector("BTCUSDT")
        assert recovered is not None and not recovered.stale
        assert recovered.features["trade_count_3s"] == 1
        assert (await runtime.health_checks())["computation"]["stale_symbols"] == []
    finally:
        await runtime.stop()
