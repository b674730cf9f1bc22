"""Subscribing to ws-gateway at start-up, in the background, until every topic is active.

The service computes features from whatever arrives on the queues meanwhile, so nothing waits
for this: ``start()`` returns at once and ``run()`` keeps retrying in its task.

Policy (ws-gateway-contract.md §2, "a well-behaved client"):
- one POST per (symbol, channel). ``order`` is per symbol too: ws-gateway's table requires a
  symbol for it (a symbol-less ``order`` gets a 500). Only ``balance``, ``position`` and
  ``liquidation`` are posted once with ``symbol: null``;
- ``orderbook`` names the wanted depth in ``topic`` (``orderbook.{depth}.{SYMBOL}``) so that a
  gateway that honours it delivers it; today's ignores it and subscribes depth 1;
- ``funding`` is not requested unless asked for (``include_funding``): Bybit has no
  ``fundingRate.{SYMBOL}`` topic, funding comes from the ticker;
- 429, 5xx, connection failures and timeouts are retried with exponential backoff and jitter,
  at most ``max_attempts`` times per round; a subscription that used them up is marked failed
  (with the reason, for /health) and retried in a new round every ``retry_interval_s`` (the
  slow schedule; None = never again), so nothing loops fast forever;
- any other 4xx is a permanent failure of that subscription, logged and never retried; a 401
  fails every remaining subscription at once, since the same key would be refused for all;
- subscriptions are never cancelled: ``stop()`` only stops retrying.

The backoff is shared by all subscriptions, not kept per subscription: a retryable failure
almost always means the gateway as a whole is down or overloaded, and a shared delay sends one
probe per interval instead of one per subscription. The failed subscription goes to the back
of the queue, so one topic that keeps failing cannot starve the others; the first success
resets the delay, so after an outage the rest are posted back to back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog

from feature_service.adapters.clients.ws_gateway import (
    Subscription,
    WsGatewayAuthError,
    WsGatewayError,
    WsGatewayRateLimitError,
)

log = structlog.get_logger("feature_service.subscriptions")

DEFAULT_CHANNELS: tuple[str, ...] = ("orderbook", "trades", "ticker", "kline")
# ws-gateway derives a fixed topic for these and ignores the symbol.
SYMBOLLESS_CHANNELS = frozenset({"balance", "position", "liquidation"})
ORDER_CHANNEL = "order"
FUNDING_CHANNEL = "funding"
DEFAULT_SERVICE_NAME = "feature-service"
DEFAULT_MAX_ATTEMPTS = 3  # the contract's well-behaved client: 3 attempts, backoff from 1 s
DEFAULT_RETRY_INTERVAL_S = 300.0

# 2**63 times any sane initial delay is far above any cap; bounding the exponent keeps the
# float conversion from overflowing after a very long outage.
_MAX_EXPONENT = 63


class SubscriptionClient(Protocol):
    async def subscribe(
        self,
        channel_type: str,
        symbol: str | None,
        requesting_service: str,
        topic: str | None = None,
    ) -> Subscription: ...

    async def aclose(self) -> None: ...


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"


@dataclass(slots=True)
class SubscriptionState:
    channel_type: str
    symbol: str | None
    status: SubscriptionStatus = SubscriptionStatus.PENDING
    attempts: int = 0
    last_error: str | None = None
    subscription_id: str | None = None
    topic: str | None = None
    requested_topic: str | None = None
    round_attempts: int = 0  # in the current round, bounded by max_attempts
    failure: str | None = None  # why it failed: attempts_exhausted, permanent_error, auth
    retry_at: float | None = None  # wall-clock epoch seconds of the next slow retry

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel_type": self.channel_type,
            "symbol": self.symbol,
            "status": self.status.value,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "failure": self.failure,
            "next_retry_at": (
                None
                if self.retry_at is None
                else datetime.fromtimestamp(self.retry_at, UTC).isoformat()
            ),
            "subscription_id": self.subscription_id,
            "topic": self.topic,
            "requested_topic": self.requested_topic,
        }

    def fail(self, error: str, failure: str = "permanent_error") -> None:
        self.status = SubscriptionStatus.FAILED
        self.last_error = error
        self.failure = failure

    def log_fields(self, exc: WsGatewayError | None = None) -> dict[str, Any]:
        """What every log line about this subscription carries (and the gateway error)."""
        fields: dict[str, Any] = {
            "channel_type": self.channel_type,
            "symbol": self.symbol,
            "attempt": self.attempts,
        }
        if exc is not None:
            fields["error"] = self.last_error
            fields["error_type"] = type(exc).__name__
            fields["status_code"] = exc.status_code
        return fields


class SubscriptionManager:
    def __init__(
        self,
        client: SubscriptionClient,
        symbols: Iterable[str],
        channels: Iterable[str] = DEFAULT_CHANNELS,
        requesting_service: str = DEFAULT_SERVICE_NAME,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        *,
        include_orders: bool = False,
        include_funding: bool = False,
        orderbook_depth: int | None = 50,
        jitter: float = 0.2,
        rng: random.Random | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_interval_s: float | None = DEFAULT_RETRY_INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
        owns_client: bool = True,
    ) -> None:
        """``jitter``: each delay is drawn from ``[d * (1 - jitter), d]`` with ``rng`` (pass a
        seeded ``random.Random`` for reproducible delays). ``max_attempts``: per subscription
        and round; ``retry_interval_s``: the pause before a failed-by-retries subscription gets
        a new round (None: never). ``orderbook_depth``: the depth asked for in the orderbook
        request's ``topic`` (None: no topic sent). ``owns_client``: ``stop()`` closes the
        client's connection pool."""
        if not requesting_service:
            raise ValueError("requesting_service must not be empty")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if retry_interval_s is not None and retry_interval_s <= 0:
            raise ValueError("retry_interval_s must be > 0 or None")
        self.client = client
        self.requesting_service = requesting_service
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.jitter = float(jitter)
        self.max_attempts = max_attempts
        self.retry_interval_s = retry_interval_s
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._owns_client = owns_client
        self._states = _plan(symbols, channels, include_orders, include_funding)
        for state in self._states:
            if state.channel_type == "orderbook" and orderbook_depth is not None:
                state.requested_topic = f"orderbook.{orderbook_depth}.{state.symbol}"
        self._stopping = False
        self._task: asyncio.Task[None] | None = None  # created by start()
        self._run_task: asyncio.Task[Any] | None = None  # whichever task is inside run()
        self._finished = asyncio.Event()
        self._client_closed = False

    # -- state ---------------------------------------------------------------------------------
    def status(self) -> list[SubscriptionState]:
        """A snapshot (copies) of every subscription's state, in posting order."""
        return [replace(state) for state in self._states]

    def summary(self) -> dict[str, Any]:
        """JSON-ready detail for /health. Pending or failed subscriptions do not make the
        service unready: it serves features from whatever the queues deliver."""
        failed = [s for s in self._states if s.status is SubscriptionStatus.FAILED]
        return {
            "requesting_service": self.requesting_service,
            "running": self.running,
            "total": len(self._states),
            **self._counts(),
            "warnings": [_warning(s) for s in failed],
            "subscriptions": [state.as_dict() for state in self._states],
        }

    @property
    def running(self) -> bool:
        return self._run_task is not None

    @property
    def settled(self) -> bool:
        """True when nothing is left to try (every subscription is active or failed)."""
        return all(s.status is not SubscriptionStatus.PENDING for s in self._states)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run in a background task of the current loop; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="ws-gateway-subscriptions")
        return self._task

    async def stop(self) -> None:
        """Stop retrying. Subscriptions already made stay active at the gateway (no DELETE)."""
        self._stopping = True
        current = asyncio.current_task()
        run_task = self._run_task
        if run_task is not None and run_task is not current and not run_task.done():
            run_task.cancel()
            await self._finished.wait()
        if self._task is not None and self._task is not current:
            # asyncio.wait never raises the task's outcome, and run() returns normally when
            # stopped, so a cancellation of stop() itself is still propagated.
            await asyncio.wait({self._task})
        if self._owns_client and not self._client_closed:
            self._client_closed = True
            await self.client.aclose()

    async def run(self) -> None:
        """Post every pending subscription, retrying until each one is active or failed, or
        until ``stop()``. Returns normally in all three cases."""
        if self._stopping or self._run_task is not None:
            return
        task = asyncio.current_task()
        self._run_task = task
        self._finished.clear()
        try:
            await self._subscribe_all()
        except asyncio.CancelledError:
            # Swallow only the cancellation stop() asked for; any other one propagates.
            if self._stopping and task is not None and task.uncancel() == 0:
                log.info("ws_gateway_subscriptions_stopped", **self._counts())
                return
            raise
        finally:
            self._run_task = None
            self._finished.set()

    # -- the loop ------------------------------------------------------------------------------
    async def _subscribe_all(self) -> None:
        """Rounds: a fast one with backoff, then, while some subscription failed only because
        its retries ran out, a slow pause and a new round for those."""
        while not self._stopping:
            await self._round()
            again = [s for s in self._states if s.failure == "attempts_exhausted"]
            if not again or self.retry_interval_s is None or self._stopping:
                return
            retry_at = self._wall_clock() + self.retry_interval_s
            for state in again:
                state.retry_at = retry_at
            log.warning(
                "ws_gateway_subscriptions_retry_later",
                failed=len(again),
                retry_in_s=self.retry_interval_s,
            )
            await self._sleep(self.retry_interval_s)
            for state in again:
                state.status = SubscriptionStatus.PENDING
                state.failure = None
                state.retry_at = None
                state.round_attempts = 0

    async def _round(self) -> None:
        queue = deque(s for s in self._states if s.status is SubscriptionStatus.PENDING)
        consecutive_failures = 0
        while queue and not self._stopping:
            state = queue.popleft()
            state.attempts += 1
            state.round_attempts += 1
            log.info("ws_gateway_subscribe_attempt", **state.log_fields())
            try:
                sub = await self.client.subscribe(
                    state.channel_type,
                    state.symbol,
                    self.requesting_service,
                    state.requested_topic,
                )
            except WsGatewayAuthError as exc:
                self._fail_all([state, *queue], exc)
                return
            except WsGatewayError as exc:
                state.last_error = str(exc)
                exhausted = state.round_attempts >= self.max_attempts
                if not exc.retryable or exhausted:
                    self._fail(state, exc, exhausted=exhausted)
                    continue
                consecutive_failures += 1
                delay = self._delay(consecutive_failures, exc)
                log.warning(
                    "ws_gateway_subscribe_retry",
                    **state.log_fields(exc),
                    retry_in_s=round(delay, 3),
                )
                queue.append(state)
                await self._sleep(delay)
                continue
            except Exception as exc:
                # A bug, not a gateway condition: retrying would loop on it forever.
                state.fail(f"{type(exc).__name__}: {exc}")
                log.exception("ws_gateway_subscribe_crashed", **state.log_fields())
                continue
            consecutive_failures = 0
            state.status = SubscriptionStatus.ACTIVE
            state.subscription_id = sub.id
            state.topic = sub.topic
            state.last_error = None
            log.info(
                "ws_gateway_subscribed",
                **state.log_fields(),
                subscription_id=sub.id,
                topic=sub.topic,
                requested_topic=state.requested_topic,
            )
        if not queue:
            log.info("ws_gateway_subscriptions_settled", **self._counts())

    def _delay(self, consecutive_failures: int, exc: WsGatewayError) -> float:
        exponent = min(consecutive_failures - 1, _MAX_EXPONENT)
        base = min(self.backoff_max, self.backoff_initial * 2.0**exponent)
        delay = base * (1.0 - self.jitter * self._rng.random())
        if isinstance(exc, WsGatewayRateLimitError) and exc.retry_after is not None:
            # The gateway said when to come back; honour it, but never beyond our own cap.
            delay = max(delay, min(exc.retry_after, self.backoff_max))
        return delay

    def _fail(self, state: SubscriptionState, exc: WsGatewayError, *, exhausted: bool) -> None:
        reason = "attempts_exhausted" if exhausted else "permanent_error"
        state.fail(str(exc), reason)
        log.error(
            "ws_gateway_subscribe_failed",
            **state.log_fields(exc),
            code=exc.code,
            reason=reason,
            retry_in_s=self.retry_interval_s if exhausted else None,
        )

    def _fail_all(self, states: list[SubscriptionState], exc: WsGatewayAuthError) -> None:
        for state in states:
            state.fail(str(exc), "auth")
        log.error(
            "ws_gateway_auth_failed",
            error=str(exc),
            status_code=exc.status_code,
            code=exc.code,
            failed_subscriptions=len(states),
            hint="check the ws-gateway API key",
        )

    def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in SubscriptionStatus), 0)
        for state in self._states:
            counts[state.status.value] += 1
        return counts


def _warning(state: SubscriptionState) -> str:
    where = state.channel_type + (f"/{state.symbol}" if state.symbol else "")
    text = f"{where} failed ({state.failure}) after {state.attempts} attempts: {state.last_error}"
    if state.retry_at is not None:
        text += f"; retried at {datetime.fromtimestamp(state.retry_at, UTC).isoformat()}"
    return text


def _plan(
    symbols: Iterable[str], channels: Iterable[str], include_orders: bool, include_funding: bool
) -> list[SubscriptionState]:
    """The subscriptions to make, symbol-major, without duplicates."""
    symbol_list = list(dict.fromkeys(symbols))
    channel_list = list(dict.fromkeys(channels))
    if include_funding and FUNDING_CHANNEL not in channel_list:
        channel_list.append(FUNDING_CHANNEL)
    if include_orders and ORDER_CHANNEL not in channel_list:
        channel_list.append(ORDER_CHANNEL)
    if any(not isinstance(s, str) or not s for s in symbol_list):
        raise ValueError(f"symbols must be non-empty strings: {symbol_list!r}")
    if any(not c for c in channel_list):
        raise ValueError(f"channels must be non-empty: {channel_list!r}")
    states: list[SubscriptionState] = []
    for symbol in symbol_list:
        for channel in channel_list:
            if channel not in SYMBOLLESS_CHANNELS:
                states.append(SubscriptionState(channel, symbol))
    states.extend(SubscriptionState(c, None) for c in channel_list if c in SYMBOLLESS_CHANNELS)
    return states
