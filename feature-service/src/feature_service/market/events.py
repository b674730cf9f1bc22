"""Typed market-data events: what every other part of the service consumes.

All times are integer microseconds since the Unix epoch (UTC). Integers keep the three clocks
exact and comparable, and make replay bit-identical: no float rounding ever decides an order.

Every event carries three times:
- ``exchange_ts``: the exchange's own message time (Bybit frame ``ts``; the envelope ``timestamp``).
- ``gateway_ts``: ws-gateway's ``received_at`` (``None`` for bare Bybit frames).
- ``receive_ts``: the service's own receive time, stamped when it consumed the message. This is
  the clock features are computed on ("known time").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias

US_PER_MS = 1_000
US_PER_S = 1_000_000


class EventType(enum.StrEnum):
    """Kinds of input; the values are ws-gateway's ``event_type`` names."""

    ORDERBOOK = "orderbook"
    TRADE = "trade"
    KLINE = "kline"
    TICKER = "ticker"
    FUNDING = "funding"


class Side(enum.IntEnum):
    """Taker side of a trade: +1 buy aggressor, -1 sell aggressor."""

    BUY = 1
    SELL = -1


Level: TypeAlias = tuple[float, float]
"""A price level ``(price, size)``. In a delta, size 0 deletes the level."""


@dataclass(slots=True, kw_only=True)
class EventBase:
    symbol: str
    topic: str
    exchange_ts: int
    gateway_ts: int | None
    receive_ts: int
    event_id: str | None = None
    trace_id: str | None = None


@dataclass(slots=True, kw_only=True)
class BookSnapshot(EventBase):
    """Full book replacement. ``bids`` best (highest) first, ``asks`` best (lowest) first."""

    bids: list[Level]
    asks: list[Level]
    update_id: int
    seq: int | None = None
    depth: int | None = None  # from the topic, e.g. 50 for orderbook.50.BTCUSDT
    # None: the stream; "rest": the REST depth source (features/depth.py), envelope key "feed".
    feed: str | None = None


@dataclass(slots=True, kw_only=True)
class BookDelta(EventBase):
    """Changed levels only; size 0 removes the level."""

    bids: list[Level]
    asks: list[Level]
    update_id: int
    seq: int | None = None
    depth: int | None = None
    feed: str | None = None


@dataclass(slots=True, kw_only=True)
class Trade(EventBase):
    price: float
    size: float
    side: Side
    trade_time: int  # match time ``T``, microseconds
    trade_id: str
    block_trade: bool = False
    seq: int | None = None


@dataclass(slots=True, kw_only=True)
class Kline(EventBase):
    interval: str  # Bybit interval code, "1" = one minute
    start: int  # candle open time, microseconds
    end: int  # candle end time (start + interval - 1 ms), microseconds
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float
    confirmed: bool


@dataclass(slots=True, kw_only=True)
class Ticker(EventBase):
    """A ticker message. ws-gateway drops the frame ``type``, so every message is treated as a
    partial update: ``fields`` holds only the keys present, parsed (floats; ``next_funding_time``
    as int microseconds). Consumers merge it into the last known ticker."""

    fields: dict[str, float | int] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Funding(EventBase):
    funding_rate: float
    next_funding_time: int | None  # microseconds
    funding_rate_ts: int | None = None  # microseconds


MarketEvent: TypeAlias = BookSnapshot | BookDelta | Trade | Kline | Ticker | Funding

TICKER_FIELDS: dict[str, str] = {
    # Bybit key -> our field name. Only these are parsed; the rest is kept in raw storage.
    "lastPrice": "last_price",
    "markPrice": "mark_price",
    "indexPrice": "index_price",
    "bid1Price": "bid1_price",
    "bid1Size": "bid1_size",
    "ask1Price": "ask1_price",
    "ask1Size": "ask1_size",
    "fundingRate": "funding_rate",
    "nextFundingTime": "next_funding_time",
    "openInterest": "open_interest",
    "openInterestValue": "open_interest_value",
    "volume24h": "volume_24h",
    "turnover24h": "turnover_24h",
    "highPrice24h": "high_price_24h",
    "lowPrice24h": "low_price_24h",
    "prevPrice24h": "prev_price_24h",
    "price24hPcnt": "price_24h_pcnt",
}


def event_type_of(event: MarketEvent) -> EventType:
    match event:
        case BookSnapshot() | BookDelta():
            return EventType.ORDERBOOK
        case Trade():
            return EventType.TRADE
        case Kline():
            return EventType.KLINE
        case Ticker():
            return EventType.TICKER
        case Funding():
            return EventType.FUNDING
    raise TypeError(f"not a market event: {type(event).__name__}")
