"""Own-order execution events (ws-gateway.order or order-manager.order_events).

They do not feed market features; they are kept in raw storage (kind ``executions``) for
offline analysis. Only what the store needs is read: the symbol and the three times. The body
is stored exactly as received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from feature_service.adapters.rawstore.schema import RecordMeta
from feature_service.market.errors import MessageRejected, RejectReason
from feature_service.market.timeutil import parse_iso_us


def _symbol(body: Mapping[str, Any]) -> str | None:
    payload = body.get("payload")
    candidates: list[Any] = [body, payload]
    if isinstance(payload, Mapping) and isinstance(payload.get("data"), list):
        candidates += payload["data"][:1]
    for item in candidates:
        if isinstance(item, Mapping):
            for key in ("symbol", "s"):
                value = item.get(key)
                if isinstance(value, str) and value:
                    return value.upper()
    return None


def _time(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_iso_us(value)
    except ValueError as exc:
        raise MessageRejected(RejectReason.BAD_TIMESTAMP, f"{key}: {value!r}") from exc


def parse_execution(raw: bytes | str, *, receive_ts: int) -> RecordMeta:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MessageRejected(RejectReason.BAD_JSON, str(exc)) from exc
    if not isinstance(body, Mapping):
        raise MessageRejected(RejectReason.NOT_AN_OBJECT, "execution event is not an object")
    symbol = _symbol(body)
    if symbol is None:
        raise MessageRejected(RejectReason.MISSING_SYMBOL, "no symbol in the execution event")
    return RecordMeta(
        symbol=symbol,
        topic=str(body.get("topic") or body.get("event_type") or "order"),
        receive_ts=receive_ts,
        exchange_ts=_time(body, "timestamp"),
        gateway_ts=_time(body, "received_at"),
        event_id=body.get("event_id") if isinstance(body.get("event_id"), str) else None,
        trace_id=body.get("trace_id") if isinstance(body.get("trace_id"), str) else None,
    )
