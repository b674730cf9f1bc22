"""Async client for Bybit V5 public market-data REST (reference: bybit-v5-market-data.md §3).

What it guarantees to callers:
- every request is paced by a token bucket kept *below* Bybit's IP limit (600 requests per 5 s;
  going over it earns a 403 ban of at least 10 minutes), plus an optional fixed delay between
  requests (``FEATURE_SERVICE_BACKFILL_RATE_LIMIT_DELAY_MS``);
- HTTP 429, 5xx, connection errors, timeouts and the retryable retCodes (10006 per-endpoint
  limit, 10429 system protection, 10016 server error / restart) are retried with exponential
  backoff and full jitter, at most ``max_retries`` times;
- HTTP 403 is a ban (or a geo block): it raises ``BybitBannedError`` at once and the client
  refuses every later request, so a caller can never hammer a banned IP;
- ``retCode`` is checked even on HTTP 200; errors carry ``ret_code`` / ``ret_msg``;
- a body that is not the documented JSON envelope raises ``BybitResponseError`` (retried: a
  truncated body from a proxy is usually transient).

Values are returned as Bybit sends them (strings for prices, string ms for REST times) inside
small typed records, so converting them into our events is the caller's single decision.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

MAINNET_URL = "https://api.bybit.com"
TESTNET_URL = "https://api-testnet.bybit.com"
RETRYABLE_RET_CODES = frozenset({10006, 10016, 10429})
# Bybit allows 600 per 5 s per IP; stay clearly under it so clock skew never tips us over.
DEFAULT_MAX_REQUESTS = 500
DEFAULT_WINDOW_S = 5.0
KLINE_MAX_LIMIT = 1000
FUNDING_MAX_LIMIT = 200
INTERVAL_MS = {
    **{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": 86_400_000,
    "W": 7 * 86_400_000,
}


# -- errors --------------------------------------------------------------------------------------
class BybitRestError(Exception):
    """Base class; ``ret_code``/``ret_msg`` from the envelope, ``status_code`` from HTTP."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        ret_code: int | None = None,
        ret_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.ret_code = ret_code
        self.ret_msg = ret_msg

    def __str__(self) -> str:
        parts = [self.args[0]]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.ret_code is not None:
            parts.append(f"retCode={self.ret_code} retMsg={self.ret_msg!r}")
        return " ".join(parts)


class BybitBannedError(BybitRestError):
    """HTTP 403: IP limit exceeded (ban >= 10 min), geo block or a malformed GET. Never retried."""


class BybitApiError(BybitRestError):
    """A non-zero retCode; ``retryable`` for 10006 / 10016 / 10429."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.ret_code in RETRYABLE_RET_CODES


class BybitUnavailableError(BybitRestError):
    """429, 5xx, connection failure or timeout (retryable)."""

    retryable = True


class BybitResponseError(BybitRestError):
    """A body that is not the documented envelope (malformed JSON, missing ``result``)."""

    retryable = True


# -- records -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Kline:
    start_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    turnover: str


@dataclass(frozen=True, slots=True)
class FundingRecord:
    symbol: str
    funding_rate: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OrderbookSnapshot:
    """``/v5/market/orderbook``: bids best first, asks best first; ``u`` is the 1000-level u."""

    symbol: str
    bids: list[list[str]]
    asks: list[list[str]]
    ts_ms: int
    u: int
    seq: int | None
    cts_ms: int | None


# -- signing -------------------------------------------------------------------------------------
def sign_request(
    api_secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str
) -> str:
    """Bybit V5 HMAC recipe: hex(HMAC_SHA256(secret, timestamp + key + recvWindow + payload)),
    where payload is the query string of a GET (or the JSON body of a POST)."""
    message = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.new(api_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# -- pacing --------------------------------------------------------------------------------------
class TokenBucket:
    """At most ``capacity`` requests in *any* ``window_s`` seconds, plus an optional minimum gap
    between two requests. Each token comes back exactly ``window_s`` after it was spent (a
    sliding-window log): a refill-rate bucket would allow a full burst plus a window's refill,
    up to twice the limit in one window, which is what gets an IP banned. Shared by the tasks
    of one event loop."""

    def __init__(
        self,
        capacity: int = DEFAULT_MAX_REQUESTS,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if capacity < 1 or window_s <= 0 or min_interval_s < 0:
            raise ValueError("capacity must be >= 1, window_s > 0, min_interval_s >= 0")
        self.capacity = capacity
        self.window_s = window_s
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._spent and self._spent[0] <= now - self.window_s:
                    self._spent.popleft()
                wait = 0.0
                if len(self._spent) >= self.capacity:
                    wait = self._spent[0] + self.window_s - now
                if self._spent:
                    wait = max(wait, self._spent[-1] + self.min_interval_s - now)
                if wait <= 0:
                    self._spent.append(now)
                    return
                await self._sleep(wait)


# -- client --------------------------------------------------------------------------------------
class BybitRestClient:
    """One client per process is enough; share it (and so its bucket) between jobs."""

    def __init__(
        self,
        base_url: str = MAINNET_URL,
        *,
        category: str = "linear",
        timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        bucket: TokenBucket | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int = 5000,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.category = category
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.bucket = bucket or TokenBucket()
        self.api_key = api_key
        self.api_secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.requests_sent = 0
        self.retries = 0
        self.banned: BybitBannedError | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> BybitRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- endpoints -------------------------------------------------------------------------------
    async def get_klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int,
        end_ms: int,
        *,
        limit: int = KLINE_MAX_LIMIT,
        category: str | None = None,
    ) -> list[Kline]:
        """One page of ``/v5/market/kline`` for ``[start_ms, end_ms]``, **ascending** by start.
        The last bar may still be open; callers decide (backfill drops it by its close time)."""
        result = await self.request(
            "/v5/market/kline",
            {
                "category": category or self.category,
                "symbol": symbol,
                "interval": interval,
                "start": start_ms,
                "end": end_ms,
                "limit": limit,
            },
        )
        try:
            rows = [Kline(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in result["list"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BybitResponseError(f"kline list malformed: {exc!r}") from None
        rows.sort(key=lambda k: k.start_ms)  # the API sends newest first
        return rows

    async def get_funding_history(
        self,
        symbol: str,
        *,
        end_ms: int | None = None,
        start_ms: int | None = None,
        limit: int = FUNDING_MAX_LIMIT,
        category: str | None = None,
    ) -> list[FundingRecord]:
        """One page of ``/v5/market/funding/history``, ascending. Bybit rejects ``startTime``
        alone, so page backwards: ``end_ms = oldest - 1`` until a page comes back short."""
        params: dict[str, Any] = {"category": category or self.category, "symbol": symbol}
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        params["limit"] = limit
        result = await self.request("/v5/market/funding/history", params)
        try:
            rows = [
                FundingRecord(r["symbol"], r["fundingRate"], int(r["fundingRateTimestamp"]))
                for r in result["list"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BybitResponseError(f"funding list malformed: {exc!r}") from None
        rows.sort(key=lambda f: f.timestamp_ms)
        return rows

    async def get_recent_trades(
        self, symbol: str, *, limit: int = 1000, category: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest trades only (spot <= 60, linear <= 1000); REST has no trade history."""
        result = await self.request(
            "/v5/market/recent-trade",
            {"category": category or self.category, "symbol": symbol, "limit": limit},
        )
        return _list(result)

    async def get_orderbook(
        self, symbol: str, *, limit: int = 50, category: str | None = None
    ) -> OrderbookSnapshot:
        """The current book, ``limit`` levels a side (linear 1-1000, spot 1-1000).

        Returns bids and asks as ``[price, size]`` strings, best first, plus ``u`` (equal to the
        1000-level WS stream's u), ``seq``, ``ts_ms`` (server time) and ``cts_ms`` (match engine
        time). Usable directly as a book snapshot; one request per call, retried like any other.
        """
        result = await self.request(
            "/v5/market/orderbook",
            {"category": category or self.category, "symbol": symbol, "limit": limit},
        )
        try:
            return OrderbookSnapshot(
                symbol=result["s"],
                bids=[[str(p), str(q)] for p, q in result["b"]],
                asks=[[str(p), str(q)] for p, q in result["a"]],
                ts_ms=int(result["ts"]),
                u=int(result["u"]),
                seq=int(result["seq"]) if result.get("seq") is not None else None,
                cts_ms=int(result["cts"]) if result.get("cts") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BybitResponseError(f"orderbook malformed: {exc!r}") from None

    async def get_tickers(
        self, symbol: str | None = None, *, category: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"category": category or self.category}
        if symbol:
            params["symbol"] = symbol
        return _list(await self.request("/v5/market/tickers", params))

    # -- transport -------------------------------------------------------------------------------
    async def request(
        self, path: str, params: Mapping[str, Any], *, signed: bool = False
    ) -> dict[str, Any]:
        """GET ``path`` and return the envelope's ``result``, retrying what can be retried."""
        attempt = 0
        while True:
            try:
                return await self._once(path, params, signed)
            except BybitRestError as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    raise
                attempt += 1
                self.retries += 1
                await self._sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter in the upper half, so parallel jobs do not retry in lockstep.
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _once(self, path: str, params: Mapping[str, Any], signed: bool) -> dict[str, Any]:
        if self.banned is not None:
            raise self.banned
        query = urlencode([(k, str(v)) for k, v in params.items()])
        headers = self._auth_headers(query) if signed else {}
        await self.bucket.acquire()
        self.requests_sent += 1
        try:
            response = await self._http.get(f"{path}?{query}", headers=headers)
        except httpx.TimeoutException as exc:
            raise BybitUnavailableError(f"timeout on {path}: {exc!r}") from None
        except httpx.TransportError as exc:
            raise BybitUnavailableError(f"network error on {path}: {exc!r}") from None
        status = response.status_code
        if status == 403:
            self.banned = BybitBannedError(
                f"HTTP 403 on {path}: IP banned or blocked; stop all requests for >= 10 min",
                status_code=403,
            )
            raise self.banned
        if status == 429 or status >= 500:
            raise BybitUnavailableError(f"HTTP {status} on {path}", status_code=status)
        if status != 200:
            raise BybitRestError(f"HTTP {status} on {path}", status_code=status)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BybitResponseError(f"malformed JSON on {path}", status_code=status) from None
        if not isinstance(body, dict) or "retCode" not in body:
            raise BybitResponseError(f"not a V5 envelope on {path}", status_code=status)
        ret_code, ret_msg = body.get("retCode"), str(body.get("retMsg", ""))
        if ret_code != 0:
            raise BybitApiError(
                f"Bybit error on {path}", status_code=status, ret_code=ret_code, ret_msg=ret_msg
            )
        result = body.get("result")
        if not isinstance(result, dict):
            raise BybitResponseError(f"envelope without result on {path}", status_code=status)
        return result

    def _auth_headers(self, query: str) -> dict[str, str]:
        if not (self.api_key and self.api_secret):
            raise BybitRestError("signed request needs api_key and api_secret")
        ts = int(time.time() * 1000)
        return {
            "X-BAPI-API-KEY": self.api_key,
            "X-BAPI-TIMESTAMP": str(ts),
            "X-BAPI-RECV-WINDOW": str(self.recv_window_ms),
            "X-BAPI-SIGN": sign_request(
                self.api_secret, ts, self.api_key, self.recv_window_ms, query
            ),
        }


def _list(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("list")
    if not isinstance(rows, list):
        raise BybitResponseError("result has no list")
    return rows


def client_from_settings(settings: Any, **overrides: Any) -> BybitRestClient:
    """The client configured by ``FEATURE_SERVICE_BYBIT_*`` / ``..._BACKFILL_RATE_LIMIT_*``."""
    bucket = TokenBucket(
        settings.backfill_rate_limit_requests,
        settings.backfill_rate_limit_window_s,
        min_interval_s=settings.backfill_rate_limit_delay_ms / 1000.0,
    )
    kwargs: dict[str, Any] = {
        "category": settings.bybit_category,
        "timeout_s": settings.bybit_timeout_s,
        "max_retries": settings.bybit_max_retries,
        "bucket": bucket,
        "api_key": settings.bybit_api_key,
        "api_secret": settings.bybit_api_secret,
    }
    kwargs.update(overrides)
    return BybitRestClient(settings.bybit_rest_url, **kwargs)
