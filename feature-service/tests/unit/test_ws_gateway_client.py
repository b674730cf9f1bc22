"""WsGatewayClient request shapes and error mapping, against httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from feature_service.adapters.clients.ws_gateway import (
    Subscription,
    WsGatewayAuthError,
    WsGatewayClient,
    WsGatewayClientError,
    WsGatewayError,
    WsGatewayRateLimitError,
    WsGatewayResponseError,
    WsGatewayUnavailableError,
)

BASE = "http://ws-gateway:4400"
KEY = "secret-key"

ROW = {
    "id": "6f1c2e0b-8d7a-4f3b-9c21-5a4e3d2c1b0a",
    "channel_type": "orderbook",
    "symbol": "BTCUSDT",
    "topic": "orderbook.1.BTCUSDT",
    "requesting_service": "feature-service",
    "is_active": True,
    "created_at": "2025-01-27T10:00:00.123000",
    "updated_at": "2025-01-27T10:00:00",
    "last_event_at": None,
}


def make_client(
    handler: Callable[[httpx.Request], httpx.Response], *, key: str = KEY, base: str = BASE
) -> tuple[WsGatewayClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return WsGatewayClient(base, key, transport=httpx.MockTransport(recording)), seen


def answer(status: int, body: object = None, **kwargs: object) -> Callable:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, **kwargs)  # type: ignore[arg-type]
        return httpx.Response(status, json=body, **kwargs)  # type: ignore[arg-type]

    return handler


def raising(exc: Exception) -> Callable:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def subscribe_error(handler: Callable) -> WsGatewayError:
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(WsGatewayError) as info:
            await client.subscribe("trades", "BTCUSDT", "feature-service")
    return info.value


# -- requests ------------------------------------------------------------------------------------
async def test_subscribe_sends_contract_body_header_and_path() -> None:
    client, seen = make_client(answer(200, ROW))
    async with client:
        sub = await client.subscribe("orderbook", "BTCUSDT", "feature-service")
    assert len(seen) == 1
    req = seen[0]
    assert req.method == "POST"
    assert str(req.url) == "http://ws-gateway:4400/api/v1/subscriptions"
    assert req.headers["X-API-Key"] == KEY
    assert json.loads(req.content) == {
        "channel_type": "orderbook",
        "symbol": "BTCUSDT",
        "requesting_service": "feature-service",
    }
    assert sub == Subscription(
        id=ROW["id"],
        channel_type="orderbook",
        symbol="BTCUSDT",
        topic="orderbook.1.BTCUSDT",
        requesting_service="feature-service",
        is_active=True,
        created_at=datetime(2025, 1, 27, 10, 0, 0, 123000, tzinfo=UTC),
        updated_at=datetime(2025, 1, 27, 10, 0, 0, tzinfo=UTC),
        last_event_at=None,
    )


async def test_subscribe_accepts_201_offset_datetimes_and_null_symbol() -> None:
    row = {
        **ROW,
        "channel_type": "order",
        "symbol": None,
        "topic": "order",
        "created_at": "2025-01-27T12:00:00+02:00",
        "last_event_at": "2025-01-27T10:05:00Z",
    }
    client, seen = make_client(answer(201, row))
    async with client:
        sub = await client.subscribe("order", None, "feature-service")
    assert json.loads(seen[0].content)["symbol"] is None
    assert sub.symbol is None
    assert sub.created_at == datetime(2025, 1, 27, 10, 0, tzinfo=UTC)
    assert sub.last_event_at == datetime(2025, 1, 27, 10, 5, tzinfo=UTC)


async def test_base_url_with_trailing_slash_and_empty_key_sends_no_header() -> None:
    client, seen = make_client(answer(200, ROW), key="", base="http://gw:4400/")
    async with client:
        await client.subscribe("orderbook", "BTCUSDT", "feature-service")
    assert str(seen[0].url) == "http://gw:4400/api/v1/subscriptions"
    assert "x-api-key" not in seen[0].headers


@pytest.mark.parametrize("bad", ["ws-gateway:4400", "", "ftp://gw"])
def test_non_http_base_url_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        WsGatewayClient(bad, KEY)


async def test_list_subscriptions_sends_only_given_filters() -> None:
    body = {"subscriptions": [ROW, {**ROW, "id": "x2", "is_active": False}], "total": 2}
    client, seen = make_client(answer(200, body))
    async with client:
        subs = await client.list_subscriptions(
            requesting_service="feature-service", is_active=False
        )
        await client.list_subscriptions()
        await client.list_subscriptions(is_active=True, channel_type="kline")
    assert [s.id for s in subs] == [ROW["id"], "x2"]
    assert [s.is_active for s in subs] == [True, False]
    assert seen[0].url.path == "/api/v1/subscriptions"
    assert dict(seen[0].url.params) == {
        "requesting_service": "feature-service",
        "is_active": "false",
    }
    assert dict(seen[1].url.params) == {}
    assert dict(seen[2].url.params) == {"is_active": "true", "channel_type": "kline"}


async def test_get_subscription_escapes_the_id() -> None:
    client, seen = make_client(answer(200, ROW))
    async with client:
        await client.get_subscription("a/b")
    assert seen[0].url.raw_path == b"/api/v1/subscriptions/a%2Fb"


async def test_health_returns_body_even_when_gateway_says_unhealthy() -> None:
    body = {
        "status": "unhealthy",
        "service": "ws-gateway",
        "websocket_connected": False,
        "websocket_status": "disconnected",
        "database_connected": True,
        "queue_connected": True,
        "active_subscriptions": 0,
    }
    client, seen = make_client(answer(200, body))
    async with client:
        assert await client.health() == body
    assert seen[0].url.path == "/health"


# -- error mapping -------------------------------------------------------------------------------
async def test_401_top_level_body_is_auth_error() -> None:
    body = {
        "error": "Invalid API key",
        "code": "AUTHENTICATION_FAILED",
        "details": {"reason": "invalid_or_missing_api_key"},
    }
    err = await subscribe_error(answer(401, body))
    assert type(err) is WsGatewayAuthError
    assert (err.status_code, err.code, err.message) == (
        401,
        "AUTHENTICATION_FAILED",
        "Invalid API key",
    )
    assert err.details == {"reason": "invalid_or_missing_api_key"}
    assert err.retryable is False


async def test_400_detail_wrapped_missing_symbol_is_unwrapped() -> None:
    body = {
        "detail": {
            "error": "Symbol is required for trades channel",
            "code": "MISSING_SYMBOL",
            "details": None,
        }
    }
    err = await subscribe_error(answer(400, body))
    assert type(err) is WsGatewayClientError
    assert err.code == "MISSING_SYMBOL"
    assert err.message == "Symbol is required for trades channel"
    assert err.status_code == 400
    assert err.retryable is False
    assert "MISSING_SYMBOL" in str(err)


async def test_422_validation_list_is_client_error_with_locations() -> None:
    detail = [
        {"type": "enum", "loc": ["body", "channel_type"], "msg": "Input should be 'trades'"},
        {"type": "missing", "loc": ["body", "requesting_service"], "msg": "Field required"},
    ]
    err = await subscribe_error(answer(422, {"detail": detail}))
    assert type(err) is WsGatewayClientError
    assert err.code is None
    assert err.details == detail
    assert err.message == (
        "validation failed: body.channel_type: Input should be 'trades'; "
        "body.requesting_service: Field required"
    )
    assert not err.retryable


async def test_404_wrapped_not_found() -> None:
    body = {
        "detail": {
            "error": "Subscription not found",
            "code": "SUBSCRIPTION_NOT_FOUND",
            "details": None,
        }
    }
    client, _ = make_client(answer(404, body))
    async with client:
        with pytest.raises(WsGatewayClientError) as info:
            await client.get_subscription("6f1c2e0b-8d7a-4f3b-9c21-5a4e3d2c1b0a")
    assert info.value.code == "SUBSCRIPTION_NOT_FOUND"
    assert info.value.status_code == 404


async def test_409_string_detail_is_client_error() -> None:
    err = await subscribe_error(answer(409, {"detail": "conflict"}))
    assert type(err) is WsGatewayClientError
    assert (err.message, err.code, err.retryable) == ("conflict", None, False)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "soon"}, None), ({}, None)],
)
async def test_429_is_retryable_rate_limit(headers: dict[str, str], expected: float | None) -> None:
    err = await subscribe_error(answer(429, {"error": "slow down"}, headers=headers))
    assert type(err) is WsGatewayRateLimitError
    assert err.retryable is True
    assert err.retry_after == expected
    assert err.message == "slow down"


async def test_429_retry_after_http_date_in_the_past_is_zero() -> None:
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    err = await subscribe_error(answer(429, "busy", headers=headers))
    assert isinstance(err, WsGatewayRateLimitError)
    assert err.retry_after == 0.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable_unavailable_with_text_body(status: int) -> None:
    err = await subscribe_error(answer(status, "<html>Bad Gateway</html>"))
    assert type(err) is WsGatewayUnavailableError
    assert err.status_code == status
    assert err.message == "<html>Bad Gateway</html>"
    assert err.retryable is True


async def test_5xx_with_empty_body_uses_reason_phrase() -> None:
    err = await subscribe_error(lambda r: httpx.Response(503, content=b""))
    assert isinstance(err, WsGatewayUnavailableError)
    assert err.message == "Service Unavailable"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("connect timeout"),
        httpx.ReadTimeout("read timeout"),
        httpx.WriteTimeout("write timeout"),
        httpx.PoolTimeout("pool timeout"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("reset by peer"),
    ],
)
async def test_transport_errors_and_timeouts_are_retryable(exc: Exception) -> None:
    err = await subscribe_error(raising(exc))
    assert type(err) is WsGatewayUnavailableError
    assert err.retryable is True
    assert err.status_code is None
    assert err.__cause__ is exc


async def test_non_transport_request_error_is_not_retryable() -> None:
    err = await subscribe_error(raising(httpx.DecodingError("bad gzip")))
    assert type(err) is WsGatewayResponseError
    assert err.retryable is False


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [1, 2],
        {k: v for k, v in ROW.items() if k != "topic"},
        {**ROW, "is_active": "yes"},
        {**ROW, "id": 5},
        {**ROW, "created_at": "yesterday"},
        {**ROW, "symbol": 1},
    ],
)
async def test_malformed_success_body_is_response_error(body: object) -> None:
    err = await subscribe_error(answer(200, body))
    assert type(err) is WsGatewayResponseError
    assert err.retryable is False


async def test_unexpected_3xx_is_plain_non_retryable_error() -> None:
    err = await subscribe_error(answer(302, "", headers={"Location": "/elsewhere"}))
    assert type(err) is WsGatewayError
    assert err.status_code == 302
    assert err.retryable is False


async def test_list_with_malformed_envelope_is_response_error() -> None:
    client, _ = make_client(answer(200, {"items": []}))
    async with client:
        with pytest.raises(WsGatewayResponseError):
            await client.list_subscriptions()


async def test_real_timeout_value_reaches_httpx() -> None:
    client = WsGatewayClient(BASE, KEY, timeout=0.25)
    try:
        assert client._http.timeout == httpx.Timeout(0.25)
    finally:
        await client.aclose()
