"""ws-gateway envelopes and bare Bybit V5 frames -> typed market events.

This runs once per consumed message, so it is written for speed: no validation framework, one
dict lookup to route, floats parsed with ``float()`` and checked for NaN/inf with one
subtraction. Every malformed input raises ``MessageRejected`` with a stable reason; nothing is
ever defaulted or guessed (a missing number is an error, not a zero).

Accepted inputs (see ws-gateway-contract.md section 1.5-1.7 and bybit-v5-market-data.md):
- a ws-gateway envelope -> exactly one event;
- the same envelope as a recording line, with ``service_received_at`` (our receive stamp);
- a bare Bybit V5 frame ``{topic, type, ts, data, cts?}`` -> one event per ``data`` element.

Deliberately lenient, for our own recordings: ``event_id``/``trace_id`` may be absent or null,
and ``received_at`` may be null (an event that came from a bare frame has no gateway time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from feature_service.market.errors import MessageRejected, RejectReason
from feature_service.market.events import (
    TICKER_FIELDS,
    BookDelta,
    BookSnapshot,
    EventType,
    Funding,
    Kline,
    Level,
    MarketEvent,
    Side,
    Ticker,
    Trade,
)
from feature_service.market.timeutil import parse_iso_us
from feature_service.market.values import (
    DEFAULT_LIMITS,
    FUNDING_RATE_MAX,
    MAX_LEVELS,
    PCNT_MAX,
    PCNT_MIN,
    PRICE_MAX,
    PRICE_MIN,
    SIZE_MAX,
    SIZE_MIN,
    ParseLimits,
    absolute_time,
    reject,
    short,
)
from feature_service.market.values import amount as _amount
from feature_service.market.values import bounded as _bounded
from feature_service.market.values import integer as _int
from feature_service.market.values import ms_to_us as _ms_to_us
from feature_service.market.values import near as _near
from feature_service.market.values import number as _number
from feature_service.market.values import price as _price
from feature_service.market.values import size as _size
from feature_service.market.values import symbol as _checked_symbol

__all__ = ["ParseLimits", "parse_message"]

_SIDES: dict[str, Side] = {"Buy": Side.BUY, "Sell": Side.SELL}

# Bybit topic prefix -> what we consume; a topic is "<prefix>.<...>.<SYMBOL>".
_TOPIC_KINDS: dict[str, EventType] = {
    "orderbook": EventType.ORDERBOOK,
    "publicTrade": EventType.TRADE,
    "kline": EventType.KLINE,
    "tickers": EventType.TICKER,
    "fundingRate": EventType.FUNDING,
}
# Real streams we deliberately do not consume: a distinct reason from a garbled topic.
_NOT_CONSUMED_TOPICS = frozenset(
    {"liquidation", "allLiquidation", "order", "wallet", "position", "execution"}
)

# Ticker field -> its bounds (market/values.py documents them); times are checked apart.
_MS_TICKER_FIELDS = frozenset({"next_funding_time"})
_TICKER_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "funding_rate": (-FUNDING_RATE_MAX, FUNDING_RATE_MAX, True),
    "price_24h_pcnt": (PCNT_MIN, PCNT_MAX, True),
    "bid1_size": (SIZE_MIN, SIZE_MAX, True),
    "ask1_size": (SIZE_MIN, SIZE_MAX, True),
    "open_interest": (SIZE_MIN, 1e16, True),
    "open_interest_value": (SIZE_MIN, 1e16, True),
    "volume_24h": (SIZE_MIN, 1e16, True),
    "turnover_24h": (SIZE_MIN, 1e16, True),
}
_PRICE_BOUNDS = (PRICE_MIN, PRICE_MAX, False)

_DETAIL_MAX = 80
_short = short
_reject = reject


class _TopicInfo:
    """What a topic string says, parsed once per distinct topic."""

    __slots__ = ("depth", "kind", "reject", "symbol")

    def __init__(
        self,
        kind: EventType | None,
        depth: int | None,
        symbol: str | None,
        reject: RejectReason | None,
    ) -> None:
        self.kind = kind
        self.depth = depth
        self.symbol = symbol
        self.reject = reject


_TOPIC_CACHE: dict[str, _TopicInfo] = {}
_TOPIC_CACHE_MAX = 4096  # topics are few; the bound only guards against garbage input


def _topic_info(topic: Any) -> _TopicInfo:
    info = _TOPIC_CACHE.get(topic) if type(topic) is str else None
    if info is not None:
        return info
    if type(topic) is not str or not topic:
        _reject(
            RejectReason.MISSING_FIELD, f"topic must be a non-empty string, got {_short(topic)}"
        )
    parts = topic.split(".")
    head = parts[0]
    kind = _TOPIC_KINDS.get(head)
    depth: int | None = None
    symbol = parts[-1] if len(parts) > 1 and parts[-1] else None
    reject: RejectReason | None = None
    if kind is None:
        reject = (
            RejectReason.UNKNOWN_EVENT_TYPE
            if head in _NOT_CONSUMED_TOPICS
            else RejectReason.UNKNOWN_TOPIC
        )
    elif kind is EventType.ORDERBOOK:
        # orderbook.{depth}.{symbol}; orderbook.rpi / orderbook.full are other streams.
        if len(parts) == 3 and parts[1].isdigit() and parts[1].isascii():
            depth = int(parts[1])
        else:
            reject = RejectReason.UNKNOWN_TOPIC
    elif len(parts) != (3 if kind is EventType.KLINE else 2):
        reject = RejectReason.UNKNOWN_TOPIC
    info = _TopicInfo(kind, depth, symbol, reject)
    if len(_TOPIC_CACHE) >= _TOPIC_CACHE_MAX:
        _TOPIC_CACHE.clear()
    _TOPIC_CACHE[topic] = info
    return info


# --------------------------------------------------------------------------- scalar fields


def _iso(value: Any, name: str) -> int:
    try:
        us = parse_iso_us(value)
    except ValueError:
        _reject(RejectReason.BAD_TIMESTAMP, f"{name} is not an ISO-8601 time: {_short(value)}")
    return absolute_time(us, name)


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    _reject(RejectReason.MISSING_FIELD, f"{key} must be a string, got {_short(value)}")


def _field(payload: Mapping[str, Any], key: str, what: str) -> Any:
    value = payload.get(key)
    if value is None:
        _reject(RejectReason.MISSING_FIELD, f"{what} payload has no {key!r}")
    return value


def _level_number(value: Any, name: str, level: Any) -> float:
    # The plain form ("50000.10") skips the general check: ASCII digits with one dot always
    # parse; an overflow to inf is caught by the bounds below.
    if type(value) is str and value.isascii() and value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        return _number(value, name)
    except MessageRejected:
        _reject(RejectReason.BAD_NUMBER, f"{name} level is not numeric: {_short(level)}")


def _levels(raw: Any, name: str, is_delta: bool) -> tuple[list[Level], float, float]:
    """The levels, plus the highest and lowest price with a non-zero size (for the crossed
    check; -inf / inf when there is none)."""
    if type(raw) is not list:
        if raw is None:
            _reject(RejectReason.MISSING_FIELD, f"orderbook payload has no {name!r}")
        _reject(RejectReason.BAD_NUMBER, f"{name} is not a list of levels: {_short(raw)}")
    if len(raw) > MAX_LEVELS:
        _reject(RejectReason.OUT_OF_RANGE, f"{name} has {len(raw)} levels (max {MAX_LEVELS})")
    out: list[Level] = []
    append = out.append
    hi = -math.inf
    lo = math.inf
    for level in raw:
        if type(level) is not list or len(level) != 2:
            _reject(RejectReason.BAD_NUMBER, f"{name} level is not [price, size]: {_short(level)}")
        p = _level_number(level[0], name, level)
        q = _level_number(level[1], name, level)
        if not PRICE_MIN <= p <= PRICE_MAX:
            _reject(
                RejectReason.NEGATIVE_VALUE if p <= 0.0 else RejectReason.OUT_OF_RANGE,
                f"{name} level price must be within [{PRICE_MIN:g}, {PRICE_MAX:g}]: "
                f"{_short(level)}",
            )
        if q == 0.0:
            if not is_delta:
                _reject(
                    RejectReason.NEGATIVE_VALUE,
                    f"{name} level size 0 deletes, in a delta only: {_short(level)}",
                )
        elif SIZE_MIN <= q <= SIZE_MAX:
            if p > hi:
                hi = p
            if p < lo:
                lo = p
        else:
            _reject(
                RejectReason.NEGATIVE_VALUE if q < 0.0 else RejectReason.OUT_OF_RANGE,
                f"{name} level size must be 0 (delta) or within [{SIZE_MIN:g}, {SIZE_MAX:g}]: "
                f"{_short(level)}",
            )
        append((p, q))
    return out, hi, lo


def _symbol(payload: Mapping[str, Any], info: _TopicInfo) -> str:
    symbol = payload.get("s")
    if symbol is None:
        symbol = payload.get("symbol")
    if symbol is None:
        symbol = info.symbol
    return _checked_symbol(symbol)


# --------------------------------------------------------------------------- per-kind payloads


class _Ctx:
    """The message-level values shared by every event built from one message.

    Each builder passes them to its event as plain keywords, repeated per kind on purpose:
    unpacking one shared dict instead (``**common``) measured ~0.37 us more per event, +5% on
    a trade envelope."""

    __slots__ = (
        "event_id",
        "exchange_ts",
        "gateway_ts",
        "info",
        "limits",
        "receive_ts",
        "topic",
        "trace_id",
    )

    def __init__(
        self,
        topic: str,
        info: _TopicInfo,
        exchange_ts: int,
        gateway_ts: int | None,
        receive_ts: int,
        event_id: str | None,
        trace_id: str | None,
        limits: ParseLimits,
    ) -> None:
        self.limits = limits
        self.topic = topic
        self.info = info
        self.exchange_ts = exchange_ts
        self.gateway_ts = gateway_ts
        self.receive_ts = receive_ts
        self.event_id = event_id
        self.trace_id = trace_id

    def time(self, value: Any, name: str) -> int:
        """A millisecond time near the receive time (``time_window`` either side)."""
        window = self.limits.time_window_us
        return _near(_ms_to_us(value, name), self.receive_ts, window, window, name)

    def kline_time(self, value: Any, name: str) -> int:
        limits = self.limits
        return _near(
            _ms_to_us(value, name),
            self.receive_ts,
            limits.kline_window_us,
            limits.time_window_us,
            name,
        )


def _orderbook(payload: Mapping[str, Any], ctx: _Ctx, book_type: Any) -> BookSnapshot | BookDelta:
    u = payload.get("u")
    if u is None:
        _reject(RejectReason.MISSING_FIELD, "orderbook payload has no 'u'")
    update_id = _int(u, "u")
    seq_raw = payload.get("seq")
    seq = None if seq_raw is None else _int(seq_raw, "seq")
    if book_type == "delta":
        # u == 1 is Bybit's restart marker: the message is a full book, whatever its type says.
        is_delta = update_id != 1
    elif book_type == "snapshot":
        is_delta = False
    elif book_type is None:
        _reject(RejectReason.MISSING_FIELD, "orderbook message has no 'type'")
    else:
        _reject(
            RejectReason.UNKNOWN_EVENT_TYPE,
            f"orderbook type must be snapshot or delta, got {_short(book_type)}",
        )
    bids, best_bid, _ = _levels(payload.get("b"), "b", is_delta)
    asks, _, best_ask = _levels(payload.get("a"), "a", is_delta)
    if best_bid >= best_ask:
        # Both levels exist once this is applied, so the book would be crossed.
        _reject(
            RejectReason.INCONSISTENT,
            f"crossed: bid {best_bid!r} >= ask {best_ask!r} within one {book_type} message",
        )
    cls = BookDelta if is_delta else BookSnapshot
    return cls(
        symbol=_symbol(payload, ctx.info),
        topic=ctx.topic,
        exchange_ts=ctx.exchange_ts,
        gateway_ts=ctx.gateway_ts,
        receive_ts=ctx.receive_ts,
        event_id=ctx.event_id,
        trace_id=ctx.trace_id,
        bids=bids,
        asks=asks,
        update_id=update_id,
        seq=seq,
        depth=ctx.info.depth,
    )


def _trade(payload: Mapping[str, Any], ctx: _Ctx) -> Trade:
    side_raw = _field(payload, "S", "trade")
    side = _SIDES.get(side_raw) if type(side_raw) is str else None
    if side is None:
        _reject(RejectReason.BAD_SIDE, f"trade side must be Buy or Sell, got {_short(side_raw)}")
    trade_id = _field(payload, "i", "trade")
    if type(trade_id) is int:
        trade_id = str(trade_id)  # spot ids are numeric; the same digits, not a guess
    elif type(trade_id) is not str or not trade_id:
        _reject(
            RejectReason.MISSING_FIELD, f"trade id 'i' must be a string, got {_short(trade_id)}"
        )
    block = payload.get("BT", False)
    if type(block) is not bool:
        _reject(RejectReason.BAD_NUMBER, f"trade 'BT' must be a boolean, got {_short(block)}")
    seq_raw = payload.get("seq")
    return Trade(
        symbol=_symbol(payload, ctx.info),
        topic=ctx.topic,
        exchange_ts=ctx.exchange_ts,
        gateway_ts=ctx.gateway_ts,
        receive_ts=ctx.receive_ts,
        event_id=ctx.event_id,
        trace_id=ctx.trace_id,
        price=_price(_field(payload, "p", "trade"), "p"),
        size=_size(_field(payload, "v", "trade"), "v"),
        side=side,
        trade_time=ctx.time(_field(payload, "T", "trade"), "T"),
        trade_id=trade_id,
        block_trade=block,
        seq=None if seq_raw is None else _int(seq_raw, "seq"),
    )


def _kline(payload: Mapping[str, Any], ctx: _Ctx) -> Kline:
    interval = _field(payload, "interval", "kline")
    if type(interval) is not str or not interval:
        _reject(RejectReason.MISSING_FIELD, f"kline interval must be a string: {_short(interval)}")
    confirmed = _field(payload, "confirm", "kline")
    if type(confirmed) is not bool:
        _reject(RejectReason.BAD_NUMBER, f"kline 'confirm' must be a boolean: {_short(confirmed)}")
    start = ctx.kline_time(_field(payload, "start", "kline"), "start")
    end = ctx.kline_time(_field(payload, "end", "kline"), "end")
    open_ = _price(_field(payload, "open", "kline"), "open")
    high = _price(_field(payload, "high", "kline"), "high")
    low = _price(_field(payload, "low", "kline"), "low")
    close = _price(_field(payload, "close", "kline"), "close")
    if not (low <= open_ <= high and low <= close <= high) or end <= start:
        _reject(
            RejectReason.INCONSISTENT,
            f"kline needs low <= open, close <= high and start < end: o={open_!r} h={high!r} "
            f"l={low!r} c={close!r}",
        )
    return Kline(
        symbol=_symbol(payload, ctx.info),
        topic=ctx.topic,
        exchange_ts=ctx.exchange_ts,
        gateway_ts=ctx.gateway_ts,
        receive_ts=ctx.receive_ts,
        event_id=ctx.event_id,
        trace_id=ctx.trace_id,
        interval=interval,
        start=start,
        end=end,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=_size(_field(payload, "volume", "kline"), "volume", zero_ok=True),
        turnover=_amount(_field(payload, "turnover", "kline"), "turnover"),
        confirmed=confirmed,
    )


def _ticker(payload: Mapping[str, Any], ctx: _Ctx) -> Ticker:
    fields: dict[str, float | int] = {}
    # A delta carries a handful of keys, a snapshot ~25: walk the payload, not the field list.
    for key, value in payload.items():
        name = TICKER_FIELDS.get(key)
        # "" is Bybit's "not applicable" (e.g. funding on dated futures); null means the same.
        if name is None or value == "" or value is None:
            continue
        if name in _MS_TICKER_FIELDS:
            fields[name] = ctx.time(value, key)
        else:
            low, high, zero_ok = _TICKER_BOUNDS.get(name, _PRICE_BOUNDS)
            fields[name] = _bounded(value, key, low, high, zero_ok)
    return Ticker(
        symbol=_symbol(payload, ctx.info),
        topic=ctx.topic,
        exchange_ts=ctx.exchange_ts,
        gateway_ts=ctx.gateway_ts,
        receive_ts=ctx.receive_ts,
        event_id=ctx.event_id,
        trace_id=ctx.trace_id,
        fields=fields,
    )


def _first_of(payload: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = payload.get(camel)
    return payload.get(snake) if value is None else value


def _funding(payload: Mapping[str, Any], ctx: _Ctx) -> Funding:
    rate = _first_of(payload, "fundingRate", "funding_rate")
    if rate is None:
        _reject(RejectReason.MISSING_FIELD, "funding payload has no fundingRate")
    next_raw = _first_of(payload, "nextFundingTime", "next_funding_time")
    ts_raw = _first_of(payload, "fundingRateTimestamp", "funding_rate_timestamp")
    return Funding(
        symbol=_symbol(payload, ctx.info),
        topic=ctx.topic,
        exchange_ts=ctx.exchange_ts,
        gateway_ts=ctx.gateway_ts,
        receive_ts=ctx.receive_ts,
        event_id=ctx.event_id,
        trace_id=ctx.trace_id,
        funding_rate=_bounded(rate, "fundingRate", -FUNDING_RATE_MAX, FUNDING_RATE_MAX, True),
        next_funding_time=(
            None if next_raw is None or next_raw == "" else ctx.time(next_raw, "nextFundingTime")
        ),
        funding_rate_ts=(
            None if ts_raw is None or ts_raw == "" else ctx.time(ts_raw, "fundingRateTimestamp")
        ),
    )


_Builder = Callable[[Mapping[str, Any], _Ctx], MarketEvent]

_BUILDERS: dict[EventType, _Builder] = {
    EventType.TRADE: _trade,
    EventType.KLINE: _kline,
    EventType.TICKER: _ticker,
    EventType.FUNDING: _funding,
}

_EVENT_TYPES: dict[str, EventType] = {kind.value: kind for kind in EventType}


# --------------------------------------------------------------------------- message level


def _as_dict(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    _reject(RejectReason.NOT_AN_OBJECT, f"{what} is not a JSON object: {_short(value)}")


def _check_topic(topic: Any, kind: EventType) -> _TopicInfo:
    info = _topic_info(topic)
    if info.kind is not kind or info.reject is not None:
        _reject(RejectReason.UNKNOWN_TOPIC, f"topic {_short(topic)} is not a {kind.value} topic")
    return info


def _parse_envelope(
    msg: Mapping[str, Any], receive_ts: int | None, limits: ParseLimits
) -> list[MarketEvent]:
    event_type = msg["event_type"]
    kind = _EVENT_TYPES.get(event_type) if type(event_type) is str else None
    if kind is None:
        _reject(RejectReason.UNKNOWN_EVENT_TYPE, f"event_type {_short(event_type)} is not consumed")
    topic = msg.get("topic")
    if topic is None:
        _reject(RejectReason.MISSING_FIELD, "envelope has no 'topic'")
    info = _check_topic(topic, kind)
    payload = msg.get("payload")
    if payload is None:
        _reject(RejectReason.MISSING_FIELD, "envelope has no 'payload'")
    payload = _as_dict(payload, "payload")
    ts_raw = msg.get("timestamp")
    if ts_raw is None:
        _reject(RejectReason.MISSING_FIELD, "envelope has no 'timestamp'")
    exchange_ts = _iso(ts_raw, "timestamp")
    if "received_at" not in msg:
        _reject(RejectReason.MISSING_FIELD, "envelope has no 'received_at'")
    received_raw = msg["received_at"]
    gateway_ts = None if received_raw is None else _iso(received_raw, "received_at")
    if receive_ts is None:
        service_raw = msg.get("service_received_at")
        if service_raw is not None:
            receive_ts = _iso(service_raw, "service_received_at")
        elif gateway_ts is not None:
            receive_ts = gateway_ts
        else:
            receive_ts = exchange_ts
    window = limits.time_window_us
    # A kline envelope is stamped with its candle's close: the candle warm-up (25 h) brings
    # envelopes as old as its payload's start, so they get the kline window going back.
    back = limits.kline_window_us if kind is EventType.KLINE else window
    _near(exchange_ts, receive_ts, back, window, "timestamp")
    if gateway_ts is not None:
        _near(gateway_ts, receive_ts, back, window, "received_at")
    ctx = _Ctx(
        topic,
        info,
        exchange_ts,
        gateway_ts,
        receive_ts,
        _opt_str(msg, "event_id"),
        _opt_str(msg, "trace_id"),
        limits,
    )
    if kind is EventType.ORDERBOOK:
        book = _orderbook(payload, ctx, payload.get("type"))
        feed = msg.get("feed")
        if feed is not None:
            # Only the service's own REST depth source writes this key (ws-gateway never does).
            if feed != "rest":
                _reject(RejectReason.UNKNOWN_TOPIC, f"orderbook feed {_short(feed)} is unknown")
            book.feed = feed
        return [book]
    return [_BUILDERS[kind](payload, ctx)]


def _parse_frame(
    msg: Mapping[str, Any], receive_ts: int | None, limits: ParseLimits
) -> list[MarketEvent]:
    topic = msg.get("topic")
    info = _topic_info(topic)
    if info.reject is not None:
        _reject(info.reject, f"topic {_short(topic)} is not consumed")
    kind = info.kind
    assert kind is not None  # a topic without a kind always carries a reject reason
    ts_raw = msg.get("ts")
    if ts_raw is None:
        _reject(RejectReason.MISSING_FIELD, "frame has no 'ts'")
    exchange_ts = _ms_to_us(ts_raw, "ts")
    if receive_ts is None:
        service_raw = msg.get("service_received_at")
        receive_ts = (
            exchange_ts if service_raw is None else _iso(service_raw, "service_received_at")
        )
    window = limits.time_window_us
    _near(exchange_ts, receive_ts, window, window, "ts")
    data = msg.get("data")
    if data is None:
        _reject(RejectReason.MISSING_FIELD, "frame has no 'data'")
    items = data if type(data) is list else [_as_dict(data, "data")]
    if not items or not data:
        _reject(RejectReason.EMPTY_DATA, f"frame {_short(topic)} has empty data")
    ctx = _Ctx(topic, info, exchange_ts, None, receive_ts, None, None, limits)
    out: list[MarketEvent] = []
    if kind is EventType.ORDERBOOK:
        book_type = msg.get("type")
        for item in items:
            out.append(_orderbook(_as_dict(item, "data element"), ctx, book_type))
    else:
        build = _BUILDERS[kind]
        for item in items:
            out.append(build(_as_dict(item, "data element"), ctx))
    return out


def parse_message(
    body: bytes | str | Mapping[str, Any],
    *,
    receive_ts: int | None = None,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> list[MarketEvent]:
    """Parse one consumed message (or one recording line) into events.

    ``receive_ts`` is the service's own stamp (int microseconds). When ``None`` (replay) it is
    taken from ``service_received_at``, else the envelope ``received_at``, else the exchange
    time (a bare frame's ``ts``). Raises ``MessageRejected`` for malformed input and for any
    value outside the bounds documented in ``market/values.py``.
    """
    if type(body) is bytes or type(body) is str or isinstance(body, bytes | bytearray | memoryview):
        if len(body) > limits.max_message_bytes:
            _reject(
                RejectReason.TOO_LARGE,
                f"{len(body)} bytes, above the {limits.max_message_bytes} byte limit",
            )
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            _reject(RejectReason.BAD_JSON, str(exc)[:_DETAIL_MAX])
        if type(msg) is not dict:
            _reject(RejectReason.NOT_AN_OBJECT, f"message is not a JSON object: {_short(msg)}")
    elif type(body) is dict or isinstance(body, Mapping):
        msg = body
    else:
        _reject(RejectReason.NOT_AN_OBJECT, f"message is not a JSON object: {_short(body)}")
    if "event_type" in msg:
        return _parse_envelope(msg, receive_ts, limits)
    if "data" in msg:
        return _parse_frame(msg, receive_ts, limits)
    _reject(
        RejectReason.MISSING_FIELD,
        "neither a ws-gateway envelope (no 'event_type') nor a Bybit frame (no 'data')",
    )
