"""SubscriptionManager + WsGatewayClient against the fake ws-gateway over real TCP."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from feature_service.adapters.clients.ws_gateway import (
    Subscription,
    WsGatewayAuthError,
    WsGatewayClient,
    WsGatewayClientError,
    WsGatewayUnavailableError,
)
from feature_service.services.subscriptions import (
    SubscriptionManager,
    SubscriptionStatus,
)
from tests.fixtures.fake_ws_gateway import FakeWsGateway

pytestmark = pytest.mark.timeout(60)

KEY = "fs-test-key"
SERVICE = "feature-service"
CHANNELS = ("orderbook", "trades", "ticker", "kline")  # funding only when configured


def expected_topic(channel: str, symbol: str) -> str:
    # Written out from the contract table (§1.2), independently of the fake's derivation.
    return {
        "orderbook": f"orderbook.1.{symbol}",
        "trades": f"publicTrade.{symbol}",
        "ticker": f"tickers.{symbol}",
        "kline": f"kline.1.{symbol}",
        "funding": f"fundingRate.{symbol}",
    }[channel]


class Sleeps:
    """Injected sleep: records the requested delay, actually waits ``real`` seconds."""

    def __init__(self, real: float = 0.0, hook: Callable[[int], Awaitable[None]] | None = None):
        self.calls: list[float] = []
        self.real = real
        self.hook = hook

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        if self.hook is not None:
            await self.hook(len(self.calls))
        await asyncio.sleep(self.real)


@pytest.fixture
def gateway() -> Iterator[FakeWsGateway]:
    gw = FakeWsGateway(api_key=KEY)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def manager(
    gw: FakeWsGateway,
    symbols: list[str],
    sleeps: Sleeps,
    *,
    key: str = KEY,
    **kwargs: Any,
) -> SubscriptionManager:
    client = WsGatewayClient(gw.base_url, key, timeout=2.0)
    kwargs.setdefault("jitter", 0.0)
    return SubscriptionManager(client, symbols, sleep=sleeps, **kwargs)


def post_bodies(gw: FakeWsGateway) -> list[Any]:
    return [r.body for r in gw.requests_to("POST")]


def body(channel: str, symbol: str | None, service: str = SERVICE) -> dict[str, Any]:
    sent: dict[str, Any] = {
        "channel_type": channel,
        "symbol": symbol,
        "requesting_service": service,
    }
    if channel == "orderbook":  # the wanted depth (default 50) is named in the topic
        sent["topic"] = f"orderbook.50.{symbol}"
    return sent


async def until(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- start-up ------------------------------------------------------------------------------------
async def test_startup_subscribes_four_channels_per_symbol(gateway: FakeWsGateway) -> None:
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT", "ETHUSDT"], sleeps)
    await asyncio.wait_for(mgr.run(), 10)
    await mgr.stop()

    posts = gateway.requests_to("POST")
    assert [r.body for r in posts] == [
        body(ch, sym) for sym in ("BTCUSDT", "ETHUSDT") for ch in CHANNELS
    ]
    assert all(r.headers["x-api-key"] == KEY for r in posts)
    assert all(r.headers["content-type"] == "application/json" for r in posts)
    assert [r.status for r in posts] == [200] * 8
    assert len(gateway.requests) == 8  # nothing but the POSTs
    assert sleeps.calls == []

    rows = gateway.rows()
    states = mgr.status()
    assert [(s.symbol, s.channel_type) for s in states] == [
        (sym, ch) for sym in ("BTCUSDT", "ETHUSDT") for ch in CHANNELS
    ]
    assert all(s.status is SubscriptionStatus.ACTIVE and s.attempts == 1 for s in states)
    assert all(s.last_error is None for s in states)
    assert [s.subscription_id for s in states] == [r["id"] for r in rows]
    assert [s.topic for s in states] == [expected_topic(s.channel_type, s.symbol) for s in states]
    assert all(r["is_active"] and r["requesting_service"] == SERVICE for r in rows)


async def test_summary_is_json_ready_for_health(gateway: FakeWsGateway) -> None:
    mgr = manager(gateway, ["BTCUSDT"], Sleeps(), channels=("orderbook", "bogus"))
    before = mgr.summary()
    assert (before["total"], before["pending"], before["active"], before["failed"]) == (2, 2, 0, 0)
    await mgr.run()
    after = json.loads(json.dumps(mgr.summary()))
    await mgr.stop()
    assert after["requesting_service"] == SERVICE
    assert after["running"] is False
    assert (after["total"], after["pending"], after["active"], after["failed"]) == (2, 0, 1, 1)
    active, failed = after["subscriptions"]
    assert active["status"] == "active"
    assert active["topic"] == "orderbook.1.BTCUSDT"
    assert active["subscription_id"] == gateway.rows()[0]["id"]
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert "status=422" in failed["last_error"]
    assert "ok" not in after  # the runtime owns the health verdict


async def test_include_orders_adds_one_order_subscription_per_symbol(
    gateway: FakeWsGateway,
) -> None:
    mgr = manager(gateway, ["BTCUSDT", "ETHUSDT"], Sleeps(), include_orders=True)
    await mgr.run()
    await mgr.stop()
    bodies = post_bodies(gateway)
    assert len(bodies) == 10
    assert [b for b in bodies if b["channel_type"] == "order"] == [
        body("order", "BTCUSDT"),
        body("order", "ETHUSDT"),
    ]
    orders = [s for s in mgr.status() if s.channel_type == "order"]
    assert [(s.symbol, s.status, s.topic) for s in orders] == [
        ("BTCUSDT", SubscriptionStatus.ACTIVE, "order"),
        ("ETHUSDT", SubscriptionStatus.ACTIVE, "order"),
    ]
    assert all(s.status is SubscriptionStatus.ACTIVE for s in mgr.status())


async def test_a_symbolless_order_gets_500_like_the_real_gateway(gateway: FakeWsGateway) -> None:
    async with WsGatewayClient(gateway.base_url, KEY) as client:
        with pytest.raises(WsGatewayUnavailableError) as caught:
            await client.subscribe("order", None, SERVICE)
    assert caught.value.status_code == 500
    assert gateway.rows() == []


async def test_the_gateway_derives_depth_1_whatever_the_request_names(
    gateway: FakeWsGateway,
) -> None:
    mgr = manager(gateway, ["BTCUSDT"], Sleeps(), orderbook_depth=200)
    await mgr.run()
    await mgr.stop()
    [book] = [r for r in gateway.requests_to("POST") if r.body["channel_type"] == "orderbook"]
    assert book.body["topic"] == "orderbook.200.BTCUSDT"
    state = mgr.status()[0]
    assert (state.requested_topic, state.topic) == ("orderbook.200.BTCUSDT", "orderbook.1.BTCUSDT")
    assert mgr.summary()["subscriptions"][0]["requested_topic"] == "orderbook.200.BTCUSDT"


async def test_funding_is_requested_only_when_configured(gateway: FakeWsGateway) -> None:
    mgr = manager(gateway, ["BTCUSDT"], Sleeps(), include_funding=True)
    await mgr.run()
    await mgr.stop()
    assert [b["channel_type"] for b in post_bodies(gateway)] == [*CHANNELS, "funding"]
    assert mgr.status()[-1].topic == "fundingRate.BTCUSDT"


async def test_orders_are_off_by_default(gateway: FakeWsGateway) -> None:
    mgr = manager(gateway, ["BTCUSDT"], Sleeps())
    await mgr.run()
    await mgr.stop()
    assert [b["channel_type"] for b in post_bodies(gateway)] == list(CHANNELS)


# -- permanent failures --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "reason"), [("wrong-key", "Invalid API key"), ("", "Missing API key")]
)
async def test_401_is_permanent_for_all_after_a_single_request(
    gateway: FakeWsGateway, key: str, reason: str
) -> None:
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT", "ETHUSDT"], sleeps, key=key)
    with capture_logs() as logs:
        await asyncio.wait_for(mgr.run(), 5)
    await mgr.stop()
    assert [r.status for r in gateway.requests] == [401]
    assert sleeps.calls == []
    states = mgr.status()
    assert all(s.status is SubscriptionStatus.FAILED for s in states)
    assert all(reason in (s.last_error or "") for s in states)
    assert [s.attempts for s in states] == [1] + [0] * 7
    assert {s.failure for s in states} == {"auth"}
    assert gateway.rows() == []
    auth_logs = [e for e in logs if e["event"] == "ws_gateway_auth_failed"]
    assert len(auth_logs) == 1
    assert auth_logs[0]["failed_subscriptions"] == 8
    assert auth_logs[0]["log_level"] == "error"


async def test_400_missing_symbol_is_not_retried(gateway: FakeWsGateway) -> None:
    missing = {
        "detail": {
            "error": "Symbol is required for orderbook channel",
            "code": "MISSING_SYMBOL",
            "details": None,
        }
    }
    gateway.fail_next(1, 400, body=missing)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps)
    await mgr.run()
    await mgr.stop()
    assert sleeps.calls == []
    assert [r.status for r in gateway.requests_to("POST")] == [400, 200, 200, 200]
    first, *rest = mgr.status()
    assert (first.channel_type, first.status, first.attempts) == (
        "orderbook",
        SubscriptionStatus.FAILED,
        1,
    )
    assert "MISSING_SYMBOL" in (first.last_error or "")
    assert all(s.status is SubscriptionStatus.ACTIVE for s in rest)


async def test_real_missing_symbol_and_bad_channel_errors_from_gateway(
    gateway: FakeWsGateway,
) -> None:
    async with WsGatewayClient(gateway.base_url, KEY) as client:
        with pytest.raises(WsGatewayClientError) as missing:
            await client.subscribe("trades", None, SERVICE)
        with pytest.raises(WsGatewayClientError) as bad_channel:
            await client.subscribe("depth", "BTCUSDT", SERVICE)
        with pytest.raises(WsGatewayClientError) as not_found:
            await client.get_subscription("6f1c2e0b-8d7a-4f3b-9c21-5a4e3d2c1b0a")
    assert (missing.value.status_code, missing.value.code) == (400, "MISSING_SYMBOL")
    assert missing.value.message == "Symbol is required for trades channel"
    assert (bad_channel.value.status_code, bad_channel.value.code) == (422, None)
    assert "body.channel_type" in bad_channel.value.message
    assert (not_found.value.status_code, not_found.value.code) == (404, "SUBSCRIPTION_NOT_FOUND")
    assert gateway.rows() == []


async def test_max_attempts_bounds_retries_then_a_slow_round_retries_them(
    gateway: FakeWsGateway,
) -> None:
    gateway.fail_next(8, 500)
    seen: list[dict[str, Any]] = []

    async def at_slow_pause(call: int) -> None:
        if call == 5:  # the slow pause: every subscription is failed, with its reason
            seen.append(mgr.summary())

    sleeps = Sleeps(hook=at_slow_pause)
    mgr = manager(
        gateway, ["BTCUSDT"], sleeps, max_attempts=2, retry_interval_s=120.0, wall_clock=lambda: 0
    )
    await mgr.run()
    await mgr.stop()
    # Fast round: four failures, each followed by a backoff; the second failure of each
    # exhausts it, with no more fast sleeping. Then one slow pause and a round that succeeds.
    assert sleeps.calls == [1.0, 2.0, 4.0, 8.0, 120.0]
    assert [r.status for r in gateway.requests_to("POST")] == [500] * 8 + [200] * 4
    assert all(s.status is SubscriptionStatus.ACTIVE and s.attempts == 3 for s in mgr.status())
    [paused] = seen
    assert paused["failed"] == 4
    assert {s["failure"] for s in paused["subscriptions"]} == {"attempts_exhausted"}
    assert {s["next_retry_at"] for s in paused["subscriptions"]} == {"1970-01-01T00:02:00+00:00"}
    assert paused["warnings"][0].startswith("orderbook/BTCUSDT failed (attempts_exhausted)")
    assert "status=500" in paused["warnings"][0]
    assert mgr.summary()["warnings"] == []


async def test_without_a_slow_schedule_exhausted_subscriptions_stay_failed(
    gateway: FakeWsGateway,
) -> None:
    gateway.fail_next(100, 503)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps, retry_interval_s=None)
    await asyncio.wait_for(mgr.run(), 10)
    await mgr.stop()
    assert len(gateway.requests_to("POST")) == 4 * 3  # the default bound: 3 attempts each
    assert all(s.status is SubscriptionStatus.FAILED for s in mgr.status())
    assert all(s.failure == "attempts_exhausted" for s in mgr.status())


# -- retries -------------------------------------------------------------------------------------
async def test_500s_are_retried_with_doubling_backoff_then_succeed(
    gateway: FakeWsGateway,
) -> None:
    gateway.fail_next(3, 500)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps)
    with capture_logs() as logs:
        await mgr.run()
    await mgr.stop()
    assert sleeps.calls == [1.0, 2.0, 4.0]
    # A failed subscription goes to the back of the queue, so the three 500s hit three
    # different channels and the last two go through before the retries.
    posts = gateway.requests_to("POST")
    assert [(r.body["channel_type"], r.status) for r in posts] == [
        ("orderbook", 500),
        ("trades", 500),
        ("ticker", 500),
        ("kline", 200),
        ("orderbook", 200),
        ("trades", 200),
        ("ticker", 200),
    ]
    assert [s.attempts for s in mgr.status()] == [2, 2, 2, 1]
    assert all(s.status is SubscriptionStatus.ACTIVE for s in mgr.status())
    assert len(gateway.rows()) == 4

    events = [e["event"] for e in logs]
    assert events.count("ws_gateway_subscribe_attempt") == 7
    assert events.count("ws_gateway_subscribe_retry") == 3
    assert events.count("ws_gateway_subscribed") == 4
    retries = [e for e in logs if e["event"] == "ws_gateway_subscribe_retry"]
    assert [e["retry_in_s"] for e in retries] == [1.0, 2.0, 4.0]
    assert [e["status_code"] for e in retries] == [500] * 3
    assert retries[0]["error_type"] == "WsGatewayUnavailableError"


async def test_success_resets_the_backoff(gateway: FakeWsGateway) -> None:
    gateway.fail_next(1, 500)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps, channels=("orderbook", "trades", "ticker"))
    real_subscribe = mgr.client.subscribe
    calls = 0

    async def subscribe_failing_third(*args: Any) -> Subscription:
        nonlocal calls
        calls += 1
        if calls == 3:
            gateway.fail_next(1, 500)
        return await real_subscribe(*args)

    mgr.client.subscribe = subscribe_failing_third  # type: ignore[method-assign]
    await mgr.run()
    await mgr.stop()
    # orderbook 500 (sleep 1) -> trades 200 (resets) -> ticker 500 (sleep 1, not 2) -> ...
    assert sleeps.calls == [1.0, 1.0]
    assert [(r.body["channel_type"], r.status) for r in gateway.requests] == [
        ("orderbook", 500),
        ("trades", 200),
        ("ticker", 500),
        ("orderbook", 200),
        ("ticker", 200),
    ]
    assert all(s.status is SubscriptionStatus.ACTIVE for s in mgr.status())


async def test_429_is_retried_honouring_retry_after(gateway: FakeWsGateway) -> None:
    gateway.fail_next(2, 429, retry_after=3)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps)
    await mgr.run()
    await mgr.stop()
    # Backoff 1 s then 2 s, each raised to the gateway's Retry-After of 3 s.
    assert sleeps.calls == [3.0, 3.0]
    assert [r.status for r in gateway.requests_to("POST")] == [429, 429] + [200] * 4
    assert all(s.status is SubscriptionStatus.ACTIVE for s in mgr.status())


async def test_retry_after_is_capped_by_backoff_max(gateway: FakeWsGateway) -> None:
    gateway.fail_next(1, 429, retry_after=3600)
    sleeps = Sleeps()
    mgr = manager(gateway, ["BTCUSDT"], sleeps, backoff_max=30.0)
    await mgr.run()
    await mgr.stop()
    assert sleeps.calls == [30.0]


async def test_backoff_is_capped_and_jitter_comes_from_the_seeded_rng(
    gateway: FakeWsGateway,
) -> None:
    gateway.fail_next(6, 503)
    sleeps = Sleeps()
    mgr = manager(
        gateway,
        ["BTCUSDT"],
        sleeps,
        backoff_initial=1.0,
        backoff_max=5.0,
        jitter=0.5,
        rng=random.Random(42),
    )
    await mgr.run()
    await mgr.stop()
    draws = random.Random(42)
    bases = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    expected = [b * (1 - 0.5 * draws.random()) for b in bases]
    assert sleeps.calls == pytest.approx(expected)
    assert all(b / 2 <= d <= b for b, d in zip(bases, sleeps.calls, strict=True))
    assert len(set(sleeps.calls[3:])) == 3  # jitter spreads equal bases apart
    assert all(s.status is SubscriptionStatus.ACTIVE for s in mgr.status())


# -- gateway down / restarted --------------------------------------------------------------------
async def test_gateway_down_at_start_keeps_retrying_without_blocking_caller() -> None:
    gw = FakeWsGateway(api_key=KEY)  # port chosen, server not started
    sleeps = Sleeps(real=0.01)
    mgr = manager(gw, ["BTCUSDT", "ETHUSDT"], sleeps)
    try:
        began = time.monotonic()
        task = mgr.start()
        assert time.monotonic() - began < 1.0  # start() must not wait on the gateway
        assert not task.done()

        # The caller's loop keeps running while the manager retries in the background.
        ticks = 0
        while len(sleeps.calls) < 5:
            ticks += 1
            await asyncio.sleep(0.002)
            assert ticks < 5000
        assert ticks > 1
        assert not task.done()
        assert mgr.running
        states = mgr.status()
        assert all(s.status is SubscriptionStatus.PENDING for s in states)
        assert "unreachable" in (states[0].last_error or "")
        assert gw.requests == []
        assert sleeps.calls[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]

        await gw.astart()
        await asyncio.wait_for(task, 10)
        states = mgr.status()
        assert all(s.status is SubscriptionStatus.ACTIVE for s in states)
        assert sorted(r.body["symbol"] + "/" + r.body["channel_type"] for r in gw.requests) == (
            sorted(f"{sym}/{ch}" for sym in ("BTCUSDT", "ETHUSDT") for ch in CHANNELS)
        )
        assert {s.subscription_id for s in states} == {r["id"] for r in gw.rows()}
        assert sum(s.attempts for s in states) == len(sleeps.calls) + 8
        assert not mgr.running
    finally:
        await mgr.stop()
        await gw.astop()


async def test_gateway_restart_on_same_port_mid_run(gateway: FakeWsGateway) -> None:
    port = gateway.port

    async def hook(call: int) -> None:
        if call == 1:
            await gateway.astop()
        elif call == 2:
            await gateway.astart()

    gateway.fail_next(1, 500)
    sleeps = Sleeps(hook=hook)
    mgr = manager(gateway, ["BTCUSDT"], sleeps)
    await asyncio.wait_for(mgr.run(), 10)
    await mgr.stop()
    assert gateway.port == port
    assert sleeps.calls == [1.0, 2.0]
    # orderbook: 500; trades: refused while down (never reaches the fake); then the rest.
    assert [(r.body["channel_type"], r.status) for r in gateway.requests] == [
        ("orderbook", 500),
        ("ticker", 200),
        ("kline", 200),
        ("orderbook", 200),
        ("trades", 200),
    ]
    states = {s.channel_type: s for s in mgr.status()}
    assert states["trades"].attempts == 2
    assert all(s.status is SubscriptionStatus.ACTIVE for s in states.values())


async def test_client_sees_down_gateway_as_retryable() -> None:
    gw = FakeWsGateway(api_key=KEY)
    async with WsGatewayClient(gw.base_url, KEY, timeout=2.0) as client:
        with pytest.raises(WsGatewayUnavailableError) as info:
            await client.subscribe("trades", "BTCUSDT", SERVICE)
        assert info.value.retryable
        await gw.astart()
        try:
            assert (await client.health())["status"] == "healthy"
            sub = await client.subscribe("trades", "BTCUSDT", SERVICE)
            assert sub.topic == "publicTrade.BTCUSDT"
        finally:
            await gw.astop()


# -- idempotency ---------------------------------------------------------------------------------
async def test_resubscribe_returns_the_same_ids(gateway: FakeWsGateway) -> None:
    first = manager(gateway, ["BTCUSDT"], Sleeps())
    await first.run()
    await first.stop()
    second = manager(gateway, ["BTCUSDT"], Sleeps())  # e.g. the service restarted
    await second.run()
    await second.stop()
    ids_first = [s.subscription_id for s in first.status()]
    assert ids_first == [s.subscription_id for s in second.status()]
    assert len(set(ids_first)) == 4
    assert len(gateway.rows()) == 4
    assert len(gateway.requests_to("POST")) == 8

    other = manager(gateway, ["BTCUSDT"], Sleeps(), requesting_service="other-service")
    await other.run()
    await other.stop()
    assert not {s.subscription_id for s in other.status()} & set(ids_first)
    assert len(gateway.rows()) == 8


async def test_client_list_filters_and_health_without_key(gateway: FakeWsGateway) -> None:
    async with WsGatewayClient(gateway.base_url, KEY) as client:
        a = await client.subscribe("kline", "BTCUSDT", SERVICE)
        again = await client.subscribe("kline", "BTCUSDT", SERVICE)
        await client.subscribe("kline", "ETHUSDT", "other")
        await client.subscribe("ticker", "BTCUSDT", SERVICE)
        assert again.id == a.id
        mine = await client.list_subscriptions(requesting_service=SERVICE)
        klines = await client.list_subscriptions(channel_type="kline")
        one = await client.get_subscription(a.id)
    assert [s.topic for s in mine] == ["kline.1.BTCUSDT", "tickers.BTCUSDT"]
    assert [s.requesting_service for s in klines] == [SERVICE, "other"]
    assert one == a
    async with WsGatewayClient(gateway.base_url, "") as anonymous:
        health = await anonymous.health()
        with pytest.raises(WsGatewayAuthError):
            await anonymous.list_subscriptions()
    assert health["active_subscriptions"] == 3
    assert "x-api-key" not in gateway.requests_to("GET", "/health")[0].headers


# -- stop ----------------------------------------------------------------------------------------
async def test_stop_after_success_sends_no_delete(gateway: FakeWsGateway) -> None:
    mgr = manager(gateway, ["BTCUSDT", "ETHUSDT"], Sleeps())
    await mgr.run()
    await mgr.stop()
    assert gateway.requests_to("DELETE", "/") == []
    assert {r.method for r in gateway.requests} == {"POST"}
    assert all(r["is_active"] for r in gateway.rows())
    with pytest.raises(RuntimeError):  # stop() closed the owned connection pool
        await mgr.client.subscribe("trades", "BTCUSDT", SERVICE)  # type: ignore[attr-defined]


async def test_stop_interrupts_backoff_and_never_retries_again() -> None:
    gw = FakeWsGateway(api_key=KEY)
    # Real sleeping with a 30 s backoff: stop() must cut it short.
    mgr = SubscriptionManager(
        WsGatewayClient(gw.base_url, KEY, timeout=2.0),
        ["BTCUSDT"],
        backoff_initial=30.0,
        backoff_max=60.0,
        jitter=0.0,
    )
    task = mgr.start()
    await until(lambda: mgr.status()[0].attempts == 1 and mgr.status()[0].last_error is not None)
    began = time.monotonic()
    await mgr.stop()
    assert time.monotonic() - began < 2.0
    assert task.done() and not task.cancelled() and task.exception() is None
    assert not mgr.running
    try:
        await gw.astart()
        await asyncio.sleep(0.2)
        assert gw.requests == []
        await mgr.run()  # after stop() nothing restarts
        assert gw.requests == []
    finally:
        await gw.astop()
    assert all(s.status is SubscriptionStatus.PENDING for s in mgr.status())


async def test_stop_ends_run_in_callers_own_task_normally() -> None:
    gw = FakeWsGateway(api_key=KEY)
    sleeps = Sleeps(real=0.01)
    mgr = manager(gw, ["BTCUSDT"], sleeps)
    task = asyncio.create_task(mgr.run())
    await until(lambda: len(sleeps.calls) >= 2)
    await mgr.stop()
    assert task.done()
    assert not task.cancelled()
    assert task.result() is None
    assert gw.requests == []


async def test_outside_cancellation_of_run_is_not_swallowed() -> None:
    gw = FakeWsGateway(api_key=KEY)
    sleeps = Sleeps(real=0.01)
    mgr = manager(gw, ["BTCUSDT"], sleeps)
    task = asyncio.create_task(mgr.run())
    await until(lambda: len(sleeps.calls) >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    await mgr.stop()


async def test_stop_before_the_task_starts_makes_no_request(gateway: FakeWsGateway) -> None:
    mgr = manager(gateway, ["BTCUSDT"], Sleeps())
    task = mgr.start()
    await mgr.stop()
    assert task.done() and task.exception() is None
    assert gateway.requests == []


# -- robustness ----------------------------------------------------------------------------------
class _BrokenClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []
        self.closed = False

    async def subscribe(
        self, channel_type: str, symbol: str | None, service: str, topic: str | None = None
    ) -> Subscription:
        self.calls.append((channel_type, symbol, service))
        if channel_type == "trades":
            raise KeyError("bug")
        return Subscription(
            id=f"id-{channel_type}",
            channel_type=channel_type,
            symbol=symbol,
            topic=expected_topic(channel_type, symbol or ""),
            requesting_service=service,
            is_active=True,
            created_at=None,
            updated_at=None,
            last_event_at=None,
        )

    async def aclose(self) -> None:
        self.closed = True


async def test_unexpected_exception_fails_that_subscription_only() -> None:
    client = _BrokenClient()
    sleeps = Sleeps()
    mgr = SubscriptionManager(client, ["BTCUSDT"], sleep=sleeps)
    await mgr.run()
    await mgr.stop()
    assert client.closed
    assert sleeps.calls == []
    assert len(client.calls) == 4
    by_channel = {s.channel_type: s for s in mgr.status()}
    assert by_channel["trades"].status is SubscriptionStatus.FAILED
    assert by_channel["trades"].last_error == "KeyError: 'bug'"
    assert by_channel["kline"].subscription_id == "id-kline"
    assert sum(s.status is SubscriptionStatus.ACTIVE for s in by_channel.values()) == 3


def test_constructor_validates_arguments() -> None:
    client = _BrokenClient()
    with pytest.raises(ValueError):
        SubscriptionManager(client, [""])
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], requesting_service="")
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], backoff_initial=0)
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], backoff_initial=10, backoff_max=5)
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], jitter=1.0)
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], max_attempts=0)
    with pytest.raises(ValueError):
        SubscriptionManager(client, ["BTCUSDT"], retry_interval_s=0)
    dupes = SubscriptionManager(client, ["BTCUSDT", "BTCUSDT"], channels=("kline", "kline"))
    assert [(s.symbol, s.channel_type) for s in dupes.status()] == [("BTCUSDT", "kline")]
