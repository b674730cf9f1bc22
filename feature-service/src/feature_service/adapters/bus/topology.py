"""Names and declaration arguments on the wire (ws-gateway contract §1, and our own queues)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from feature_service.adapters.bus.base import QueueSpec

# ws-gateway declares its queues with exactly these; any other arguments make RabbitMQ refuse
# our declaration with PRECONDITION_FAILED (406).
WS_GATEWAY_QUEUE_ARGUMENTS: Final[Mapping[str, Any]] = MappingProxyType(
    {"x-message-ttl": 86_400_000, "x-max-length": 100_000, "x-overflow": "drop-head"}
)

WS_GATEWAY_QUEUES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "orderbook": "ws-gateway.orderbook",
        "trade": "ws-gateway.trade",
        "kline": "ws-gateway.kline",
        "ticker": "ws-gateway.ticker",
        "funding": "ws-gateway.funding",
    }
)
WS_GATEWAY_ORDER_QUEUE: Final = "ws-gateway.order"

DEAD_LETTER_QUEUE: Final = "feature-service.dead-letter"
FEATURES_LIVE: Final = "features.live"
DATASET_READY_QUEUE: Final = "features.dataset.ready"

# features.live is for live use: a consumer keeps "the latest vector per symbol", so a vector
# older than the longest interval is worthless to it, and a backlog only delays the first useful
# one. A TTL of the order of the longest interval plus a length cap of what the symbols and
# intervals produce in one TTL (x2 headroom, drop-head) keep the queue small and fresh.
FEATURES_LIVE_TTL_S: Final = 60.0
FEATURES_LIVE_HEADROOM: Final = 2


def features_live_max_length(
    symbols: int, intervals_s: Iterable[int], ttl_s: float = FEATURES_LIVE_TTL_S
) -> int:
    """Vectors ``symbols`` symbols publish in one TTL over ``intervals_s``, times the headroom:
    1 symbol at 1/3/15/60 s and 60 s TTL -> (60 + 20 + 4 + 1) * 2 = 170."""
    per_symbol = sum(max(1, math.ceil(ttl_s / i)) for i in intervals_s)
    return max(1, symbols) * max(1, per_symbol) * FEATURES_LIVE_HEADROOM


def features_live_arguments(ttl_s: float, max_length: int) -> dict[str, Any]:
    return {
        "x-message-ttl": round(ttl_s * 1000),
        "x-max-length": int(max_length),
        "x-overflow": "drop-head",
    }


FEATURES_LIVE_QUEUE_ARGUMENTS: Final[Mapping[str, Any]] = MappingProxyType(
    features_live_arguments(FEATURES_LIVE_TTL_S, features_live_max_length(1, (1, 3, 15, 60)))
)
# Our other queues are bounded too: a queue nobody drains must not fill the broker's disk.
DEAD_LETTER_QUEUE_ARGUMENTS: Final[Mapping[str, Any]] = MappingProxyType(
    {"x-message-ttl": 7 * 86_400_000, "x-max-length": 100_000, "x-overflow": "drop-head"}
)

CONTENT_TYPE_JSON: Final = "application/json"

HEADER_REJECT_REASON: Final = "x-reject-reason"
HEADER_REJECT_DETAIL: Final = "x-reject-detail"
HEADER_SOURCE_QUEUE: Final = "x-source-queue"
HEADER_ORIGINAL_HEADERS: Final = "x-original-headers"
HEADER_ORIGINAL_MESSAGE_ID: Final = "x-original-message-id"
HEADER_REDELIVERED: Final = "x-redelivered"
HEADER_DEAD_LETTERED_AT: Final = "x-dead-lettered-at"  # int microseconds UTC


def ws_gateway_queue(name: str) -> QueueSpec:
    """A ws-gateway input queue: used as it exists, created with ws-gateway's arguments if not."""
    from feature_service.adapters.bus.base import QueueSpec

    return QueueSpec.ws_gateway(name)


def ws_gateway_queue_specs(names: Iterable[str]) -> list[QueueSpec]:
    return [ws_gateway_queue(name) for name in names]
