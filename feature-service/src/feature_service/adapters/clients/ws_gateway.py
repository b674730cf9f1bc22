"""Client for ws-gateway's REST subscription API (contract: ws-gateway-contract.md §2).

Every failure surfaces as a ``WsGatewayError`` subclass whose ``retryable`` property tells the
caller whether trying again can help: 429, 5xx, connection failures and timeouts can; other 4xx
(a wrong API key, a missing symbol, an unknown channel) cannot.

Feature Service never cancels its subscriptions for good (other instances, or the next start,
rely on them staying active). The one cancel it makes is inside ``resubscribe``, immediately
followed by the new subscription: the only way the contract offers to make ws-gateway send
Bybit a fresh ``subscribe``, which is what produces a new order book snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

SUBSCRIPTIONS_PATH = "/api/v1/subscriptions"
HEALTH_PATH = "/health"
API_KEY_HEADER = "X-API-Key"
DEFAULT_PORT = 4400

# Error text taken from a non-JSON body (a proxy's HTML page, say) is cut to this length.
_MAX_TEXT = 300


# -- errors --------------------------------------------------------------------------------------
class WsGatewayError(Exception):
    """Base class. ``code`` and ``details`` come from ws-gateway's ErrorResponse, if any."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details

    @property
    def retryable(self) -> bool:
        return False

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.code:
            parts.append(f"code={self.code}")
        return " ".join(parts)


class WsGatewayAuthError(WsGatewayError):
    """401/403: the API key is missing or wrong. Retrying with the same key cannot succeed."""


class WsGatewayClientError(WsGatewayError):
    """Any other 4xx except 429: the request itself is wrong (e.g. ``MISSING_SYMBOL``, 422)."""


class WsGatewayRateLimitError(WsGatewayError):
    """429. ``retry_after`` (seconds) is set when the response carried a Retry-After header."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return True


class WsGatewayUnavailableError(WsGatewayError):
    """5xx, connection refused/reset, timeouts: the gateway is down or struggling."""

    @property
    def retryable(self) -> bool:
        return True


class WsGatewayResponseError(WsGatewayError):
    """A success status with a body that is not what the contract promises."""


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subscription:
    """ws-gateway's SubscriptionResponse. Datetimes are timezone-aware UTC."""

    id: str
    channel_type: str
    symbol: str | None
    topic: str
    requesting_service: str
    is_active: bool
    created_at: datetime | None
    updated_at: datetime | None
    last_event_at: datetime | None

    @classmethod
    def from_json(cls, body: Any) -> Subscription:
        if not isinstance(body, dict):
            raise WsGatewayResponseError(f"subscription is not an object: {_preview(body)}")
        try:
            sub_id = body["id"]
            channel_type = body["channel_type"]
            topic = body["topic"]
            service = body["requesting_service"]
            is_active = body["is_active"]
        except KeyError as exc:
            raise WsGatewayResponseError(f"subscription lacks field {exc.args[0]!r}") from None
        symbol = body.get("symbol")
        if not all(isinstance(v, str) for v in (sub_id, channel_type, topic, service)) or not (
            symbol is None or isinstance(symbol, str)
        ):
            raise WsGatewayResponseError(f"subscription has mistyped fields: {_preview(body)}")
        if not isinstance(is_active, bool):
            raise WsGatewayResponseError(f"is_active is not a boolean: {is_active!r}")
        return cls(
            id=sub_id,
            channel_type=channel_type,
            symbol=symbol,
            topic=topic,
            requesting_service=service,
            is_active=is_active,
            created_at=_parse_dt(body.get("created_at"), "created_at"),
            updated_at=_parse_dt(body.get("updated_at"), "updated_at"),
            last_event_at=_parse_dt(body.get("last_event_at"), "last_event_at"),
        )


def _parse_dt(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise WsGatewayResponseError(f"{name} is not an ISO string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WsGatewayResponseError(f"{name} is not an ISO datetime: {value!r}") from None
    # ws-gateway writes naive UTC; make it explicit so comparisons never mix naive and aware.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


# -- error mapping -------------------------------------------------------------------------------
def _error_fields(response: httpx.Response) -> tuple[str, str | None, Any]:
    """(message, code, details) from ws-gateway's error shapes.

    Shapes: top-level ErrorResponse ``{"error","code","details"}`` (the auth middleware);
    ``{"detail": ErrorResponse}`` (HTTPException in a handler); ``{"detail": [...]}`` (FastAPI
    422); ``{"detail": "text"}`` (plain HTTPException); anything else is reported as text.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:_MAX_TEXT] or response.reason_phrase or "error"), None, None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, dict):
            body = detail
        elif isinstance(detail, list):
            return _validation_message(detail), None, detail
        else:
            return str(detail), None, None
    if isinstance(body, dict):
        message = body.get("error") or body.get("message") or response.reason_phrase or "error"
        code = body.get("code")
        return str(message), (str(code) if code is not None else None), body.get("details")
    return _preview(body), None, None


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors:
        if isinstance(err, dict):
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg', '')}".strip(": "))
    return "validation failed: " + ("; ".join(parts) if parts else "unknown")


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> WsGatewayError:
    status = response.status_code
    message, code, details = _error_fields(response)
    kwargs: dict[str, Any] = {"status_code": status, "code": code, "details": details}
    if status in (401, 403):
        return WsGatewayAuthError(message, **kwargs)
    if status == 429:
        return WsGatewayRateLimitError(message, retry_after=_retry_after(response), **kwargs)
    if 400 <= status < 500:
        return WsGatewayClientError(message, **kwargs)
    if status >= 500:
        return WsGatewayUnavailableError(message, **kwargs)
    return WsGatewayError(f"unexpected status: {message}", **kwargs)


# -- client --------------------------------------------------------------------------------------
class WsGatewayClient:
    """Async client. One instance keeps one connection pool; close it with ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = base_url.strip().rstrip("/")
        # A malformed URL would otherwise surface as a transport error and be retried forever.
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"ws-gateway base_url must be http(s)://host[:port], got {base_url!r}")
        self.base_url = base
        headers = {"Accept": "application/json"}
        # With no key configured, send no header: ws-gateway then answers "Missing API key",
        # which names the real problem better than "Invalid API key".
        if api_key:
            headers[API_KEY_HEADER] = api_key
        self._http = httpx.AsyncClient(
            base_url=base,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> WsGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise WsGatewayUnavailableError(f"ws-gateway timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise WsGatewayUnavailableError(
                f"ws-gateway unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        except httpx.RequestError as exc:
            # Not a network condition (e.g. an undecodable body): retrying would not help.
            raise WsGatewayResponseError(
                f"ws-gateway request failed: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code not in ok:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError:
            raise WsGatewayResponseError(
                f"response is not JSON: {response.text[:_MAX_TEXT]!r}",
                status_code=response.status_code,
            ) from None

    async def subscribe(
        self,
        channel_type: str,
        symbol: str | None,
        requesting_service: str,
        topic: str | None = None,
    ) -> Subscription:
        """POST a subscription. ws-gateway returns the existing row when this service already
        has an active subscription to the same topic, so calling this again is safe.

        ``topic`` names the Bybit topic wanted (e.g. ``orderbook.50.BTCUSDT``). Today's
        ws-gateway accepts and ignores it (it derives the topic itself, ``orderbook.1.*``);
        the response's ``topic`` says what was really subscribed."""
        body: dict[str, Any] = {
            "channel_type": channel_type,
            "symbol": symbol,
            "requesting_service": requesting_service,
        }
        if topic is not None:
            body["topic"] = topic
        # The contract says 200; 201 is accepted so a more RESTful gateway version still works.
        data = await self._request("POST", SUBSCRIPTIONS_PATH, json=body, ok=(200, 201))
        return Subscription.from_json(data)

    async def resubscribe(
        self, channel_type: str, symbol: str, requesting_service: str
    ) -> Subscription:
        """Cancel this service's active subscriptions of the topic, then subscribe again.

        ws-gateway returns an existing row for a repeated POST without contacting Bybit; only
        a new row makes it send ``subscribe`` (and Bybit answer with a snapshot)."""
        active = await self.list_subscriptions(
            requesting_service=requesting_service, is_active=True, channel_type=channel_type
        )
        for sub in active:
            if sub.symbol == symbol:
                await self._request(
                    "DELETE", f"{SUBSCRIPTIONS_PATH}/{quote(sub.id, safe='')}", ok=(200, 404)
                )
        return await self.subscribe(channel_type, symbol, requesting_service)

    async def list_subscriptions(
        self,
        requesting_service: str | None = None,
        is_active: bool | None = None,
        channel_type: str | None = None,
    ) -> list[Subscription]:
        params: dict[str, str] = {}
        if requesting_service is not None:
            params["requesting_service"] = requesting_service
        if is_active is not None:
            params["is_active"] = "true" if is_active else "false"
        if channel_type is not None:
            params["channel_type"] = channel_type
        data = await self._request("GET", SUBSCRIPTIONS_PATH, params=params)
        if not isinstance(data, dict) or not isinstance(data.get("subscriptions"), list):
            raise WsGatewayResponseError(f"subscription list malformed: {_preview(data)}")
        return [Subscription.from_json(item) for item in data["subscriptions"]]

    async def get_subscription(self, subscription_id: str) -> Subscription:
        data = await self._request("GET", f"{SUBSCRIPTIONS_PATH}/{quote(subscription_id, safe='')}")
        return Subscription.from_json(data)

    async def health(self) -> dict[str, Any]:
        """ws-gateway's /health body (open endpoint). It answers 200 even when it reports
        itself ``unhealthy``; read ``status`` in the result."""
        data = await self._request("GET", HEALTH_PATH)
        if not isinstance(data, dict):
            raise WsGatewayResponseError(f"health body is not an object: {_preview(data)}")
        return data
