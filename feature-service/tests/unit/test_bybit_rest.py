"""The Bybit V5 REST client against the fake Bybit server (real TCP on loopback)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from feature_service.adapters.clients.bybit_rest import (
    BybitApiError,
    BybitBannedError,
    BybitResponseError,
    BybitRestClient,
    BybitUnavailableError,
    TokenBucket,
    sign_request,
)
from tests.fixtures.fake_bybit import FakeBybit, funding_at, kline_at

NOW_MS = 1_764_547_200_000 + 30_000  # 2025-12-01 00:00:30 UTC: the 00:00 candle is still open


@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    with FakeBybit(now_ms=NOW_MS) as server:
        server.state.hold_s = 1.0
        yield server


@pytest.fixture
async def client(fake: FakeBybit) -> AsyncIterator[BybitRestClient]:
    c = BybitRestClient(fake.base_url, timeout_s=0.3, max_retries=4, backoff_base_s=0.01)
    yield c
    await c.aclose()


def test_signature_matches_the_documented_recipe() -> None:
    # Expected value computed independently with
    # printf '%s' '1658384314791api_key5000category=option&symbol=BTC-29JUL22-25000-C' \
    #   | openssl dgst -sha256 -hmac api_secret
    query = "category=option&symbol=BTC-29JUL22-25000-C"
    expected = "d46a1c1f1a35c6a513850569c6dd46fc77e74579ce7c66c9b8a23a70e9f2b8c9"
    assert sign_request("api_secret", 1658384314791, "api_key", 5000, query) == expected


async def test_signed_request_carries_the_v5_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"retCode": 0, "retMsg": "OK", "result": {"list": []}})

    async with BybitRestClient(
        "http://bybit.invalid",
        api_key="k",
        api_secret="s",
        recv_window_ms=5000,
        transport=httpx.MockTransport(handler),
    ) as c:
        await c.request("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, signed=True)
        await c.request("/v5/market/tickers", {"category": "linear"})
    signed, public = seen
    ts = signed.headers["X-BAPI-TIMESTAMP"]
    recipe = f"{ts}k5000accountType=UNIFIED".encode()
    assert signed.headers["X-BAPI-SIGN"] == hmac.new(b"s", recipe, hashlib.sha256).hexdigest()
    assert signed.headers["X-BAPI-API-KEY"] == "k"
    assert signed.headers["X-BAPI-RECV-WINDOW"] == "5000"
    assert "X-BAPI-SIGN" not in public.headers


async def test_klines_come_back_ascending_with_the_documented_fields(
    client: BybitRestClient,
) -> None:
    start = NOW_MS - 30_000 - 10 * 60_000
    rows = await client.get_klines("BTCUSDT", "1", start, NOW_MS)
    assert [k.start_ms for k in rows] == [start + i * 60_000 for i in range(11)]
    first = rows[0]
    assert (first.open, first.high, first.low, first.close) == kline_at("BTCUSDT", start)
    # The newest candle is still open: its close is not the generated one.
    assert rows[-1].close != kline_at("BTCUSDT", rows[-1].start_ms)[3]


async def test_funding_history_pages_by_end_time(client: BybitRestClient) -> None:
    page = await client.get_funding_history("BTCUSDT", end_ms=NOW_MS, limit=3)
    stamps = [f.timestamp_ms for f in page]
    assert stamps == sorted(stamps) and len(stamps) == 3
    assert stamps[-1] == NOW_MS // 28_800_000 * 28_800_000
    assert page[0].funding_rate == funding_at("BTCUSDT", stamps[0])
    with pytest.raises(BybitApiError) as err:
        await client.get_funding_history("BTCUSDT", start_ms=0)
    assert err.value.ret_code == 10001 and not err.value.retryable


@pytest.mark.parametrize("fault", ["429", "500", "503", "10006", "10016", "10429", "malformed"])
async def test_transient_faults_are_retried(
    fake: FakeBybit, client: BybitRestClient, fault: str
) -> None:
    fake.inject(fault, 2)
    rows = await client.get_klines("BTCUSDT", "1", NOW_MS - 150_000, NOW_MS)
    assert len(rows) == 3
    assert fake.request_count() == 3 and client.retries == 2


async def test_timeout_is_retried(fake: FakeBybit, client: BybitRestClient) -> None:
    fake.inject("timeout", 1)
    rows = await client.get_klines("BTCUSDT", "1", NOW_MS - 90_000, NOW_MS)
    assert len(rows) == 2 and client.retries == 1


async def test_retries_are_bounded_and_errors_carry_the_ret_code(
    fake: FakeBybit, client: BybitRestClient
) -> None:
    fake.inject("10006", 10)
    with pytest.raises(BybitApiError) as err:
        await client.get_tickers("BTCUSDT")
    assert err.value.ret_code == 10006 and err.value.ret_msg == "injected"
    assert fake.request_count() == client.max_retries + 1
    fake.state.faults.clear()
    fake.inject("malformed", 10)
    with pytest.raises(BybitResponseError):
        await client.get_tickers("BTCUSDT")


async def test_network_error_is_retryable_and_reported() -> None:
    async with BybitRestClient("http://127.0.0.1:9", max_retries=1, backoff_base_s=0.01) as c:
        with pytest.raises(BybitUnavailableError):
            await c.get_tickers()
        assert c.requests_sent == 2


async def test_403_is_a_ban_and_stops_all_requests(
    fake: FakeBybit, client: BybitRestClient
) -> None:
    fake.inject("403", 1)
    with pytest.raises(BybitBannedError) as err:
        await client.get_orderbook("BTCUSDT")
    assert err.value.status_code == 403
    with pytest.raises(BybitBannedError):
        await client.get_orderbook("BTCUSDT")
    assert fake.request_count() == 1  # the second call never left the process


async def test_orderbook_and_present_only_endpoints(client: BybitRestClient) -> None:
    book = await client.get_orderbook("BTCUSDT", limit=5)
    assert len(book.bids) == len(book.asks) == 5
    assert float(book.bids[0][0]) < float(book.asks[0][0]) and book.u == 123456
    assert len(await client.get_recent_trades("BTCUSDT", limit=5)) == 5
    assert (await client.get_tickers("BTCUSDT"))[0]["symbol"] == "BTCUSDT"


async def test_requests_per_window_stay_under_the_limit(fake: FakeBybit) -> None:
    # Scaled-down IP rule: 20 per 1 s window (the default is 500 per 5 s, Bybit bans above 600).
    fake.state.ban_after = 20
    fake.state.ban_window_s = 0.8  # slack for scheduling jitter between client and server
    bucket = TokenBucket(20, 1.0)
    async with BybitRestClient(fake.base_url, bucket=bucket, max_retries=0) as c:
        for _ in range(50):
            await c.get_tickers("BTCUSDT")
    arrivals = fake.arrivals()
    assert len(arrivals) == 50 and not fake.state.banned
    # Measured at the server, with a little slack for loopback jitter.
    worst = max(sum(1 for t in arrivals if a <= t < a + 0.8) for a in arrivals)
    assert worst <= 20
    assert arrivals[-1] - arrivals[0] >= 2.0  # 50 requests at 20/s need at least two refills


class FakeTime:
    """A clock that only moves when the bucket sleeps: pacing checked without the wall."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_bucket_never_allows_more_than_capacity_in_any_window() -> None:
    t = FakeTime()
    bucket = TokenBucket(7, 2.0, clock=t.clock, sleep=t.sleep)
    stamps = []
    for _ in range(40):
        await bucket.acquire()
        stamps.append(t.now)
        t.now += 0.013  # the caller's own work between requests
    assert max(sum(1 for x in stamps if a <= x < a + 2.0) for a in stamps) == 7
    assert stamps[7] >= stamps[0] + 2.0  # the 8th waits for the 1st token to come back


async def test_min_delay_spaces_requests() -> None:
    t = FakeTime()
    bucket = TokenBucket(500, 5.0, min_interval_s=0.05, clock=t.clock, sleep=t.sleep)
    stamps = []
    for _ in range(6):
        await bucket.acquire()
        stamps.append(t.now)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) == pytest.approx(0.05)


def test_default_bucket_stays_below_bybit_ip_limit() -> None:
    bucket = TokenBucket()
    assert bucket.capacity / bucket.window_s * 5.0 < 600
