"""Book resync requests: immediate for a quiet symbol, merged while one is under way, spaced
out (doubling) for a flapping stream, retried while the gateway fails, skipped once in sync."""

from __future__ import annotations

import asyncio

from feature_service.adapters.clients.ws_gateway import Subscription, WsGatewayUnavailableError
from feature_service.services.book_resync import BookResyncer


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)


class FakeClient:
    def __init__(self, clock: FakeClock, failures: int = 0) -> None:
        self.calls: list[tuple[float, str, str]] = []
        self.clock = clock
        self.failures = failures

    async def resubscribe(self, channel_type: str, symbol: str, service: str) -> Subscription:
        self.calls.append((self.clock.t, channel_type, symbol))
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise WsGatewayUnavailableError("down", status_code=503)
        return Subscription(
            id="id",
            channel_type=channel_type,
            symbol=symbol,
            topic=f"orderbook.1.{symbol}",
            requesting_service=service,
            is_active=True,
            created_at=None,
            updated_at=None,
            last_event_at=None,
        )


async def _settle(resyncer: BookResyncer) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
    await resyncer.stop()


def _resyncer(client: FakeClient, clock: FakeClock, **kw: object) -> BookResyncer:
    return BookResyncer(
        client,
        "feature-service",
        clock=clock,
        sleep=clock.sleep,
        min_interval_s=2.0,
        max_interval_s=16.0,
        flap_window_s=30.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_first_desync_is_sent_at_once_and_repeats_merge() -> None:
    clock = FakeClock()
    client = FakeClient(clock)
    r = _resyncer(client, clock)
    r.request("BTCUSDT")
    r.request("BTCUSDT")  # while the first is under way
    await _settle(r)
    assert client.calls == [(1000.0, "orderbook", "BTCUSDT")]
    assert (r.stats.requested, r.stats.sent, r.stats.merged) == (2, 1, 1)


async def test_flapping_stream_is_spaced_out_doubling() -> None:
    clock = FakeClock()
    client = FakeClient(clock)
    r = _resyncer(client, clock)
    for _ in range(5):  # a desync right after every resync
        r.request("ETHUSDT")
        for _ in range(20):
            await asyncio.sleep(0)
    await _settle(r)
    sent_at = [t - 1000.0 for t, _, _ in client.calls]
    # 0, then spacing 4, 8, 16, 16 (capped) after each previous send.
    assert sent_at == [0.0, 4.0, 12.0, 28.0, 44.0]
    assert r.stats.delayed == 4


async def test_quiet_spell_resets_the_spacing() -> None:
    clock = FakeClock()
    client = FakeClient(clock)
    r = _resyncer(client, clock)
    r.request("BTCUSDT")
    await asyncio.sleep(0)
    clock.t += 100.0  # longer than the flap window
    for _ in range(5):
        await asyncio.sleep(0)
    r.request("BTCUSDT")
    await _settle(r)
    assert [t - 1000.0 for t, _, _ in client.calls] == [0.0, 100.0]


async def test_gateway_failure_is_retried_until_it_answers() -> None:
    clock = FakeClock()
    client = FakeClient(clock, failures=2)
    r = _resyncer(client, clock)
    r.request("BTCUSDT")
    await _settle(r)
    assert len(client.calls) == 3
    assert (r.stats.failed, r.stats.sent) == (2, 1)


async def test_book_back_in_sync_skips_the_request() -> None:
    clock = FakeClock()
    client = FakeClient(clock)
    synced = {"BTCUSDT": False}
    r = _resyncer(client, clock, is_synced=lambda s: synced[s])
    r.request("BTCUSDT")
    await _settle(r)
    synced["BTCUSDT"] = True
    r.request("BTCUSDT")  # a snapshot arrived meanwhile (within the spacing)
    await _settle(r)
    assert len(client.calls) == 1
    assert r.stats.skipped_synced == 1


async def test_desync_while_a_request_is_on_the_wire_gets_its_own_request() -> None:
    """The gateway publishes the snapshot before its REST answer returns, so a new gap can be
    reported while the request that fixed the previous one is still awaiting its answer."""
    clock = FakeClock()
    client = FakeClient(clock)
    r = _resyncer(client, clock)
    inner = client.resubscribe

    async def answer_after_a_new_gap(channel_type: str, symbol: str, service: str) -> Subscription:
        if len(client.calls) == 0:
            r.request(symbol)  # snapshot applied, next delta skips: a second desync
        return await inner(channel_type, symbol, service)

    client.resubscribe = answer_after_a_new_gap  # type: ignore[method-assign]
    r.request("BTCUSDT")
    await _settle(r)
    # The second goes out one doubled spacing (2 s -> 4 s) after the first.
    assert [c[0] for c in client.calls] == [1000.0, 1004.0]
    assert (r.stats.requested, r.stats.sent, r.stats.merged, r.stats.delayed) == (2, 2, 0, 1)
