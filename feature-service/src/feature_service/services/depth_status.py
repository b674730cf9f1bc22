"""What the upstream's book depth allows, per symbol: for /health, /stats and the log.

ws-gateway subscribes ``orderbook.1`` whatever the request asks, so the depth features
(``features/depth.py``) cannot be computed from its stream. This tells the operator plainly,
per symbol: the stream's depth (from its topic), where the depth features come from (``stream``,
``rest`` or ``none``), which of them cannot be computed and why. It is a warning, never a health
failure: every other feature is fine. ``DepthWatch`` logs each change once (not on every poll).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from feature_service.features.depth import (
    DEPTH_STALE,
    LEVELS_NEEDED,
    MAX_REST_AGE_US,
    STREAM_DEPTH_LIMITED,
    RestDepthBook,
    limited_by,
)
from feature_service.logging import get_logger

log = get_logger(__name__)

_HINT = "set FEATURE_SERVICE_DEPTH_SOURCE=rest to fill them from Bybit REST /v5/market/orderbook"


class DepthState(Protocol):
    stream_depth: int | None
    rest_depth: RestDepthBook | None


def symbol_depth(state: DepthState, now_us: int) -> dict[str, Any]:
    """One symbol's entry of the report."""
    rest = state.rest_depth
    rest_age_us = None if rest is None or rest.received_at is None else now_us - rest.received_at
    if rest_age_us is not None and rest_age_us <= MAX_REST_AGE_US:
        source, missing, reason = "rest", [], None
    elif rest_age_us is not None:
        source, missing, reason = "none", list(LEVELS_NEEDED), DEPTH_STALE
    else:
        missing = limited_by(state.stream_depth)
        source = "none" if missing else "stream"
        reason = STREAM_DEPTH_LIMITED if missing else None
    return {
        "stream_depth": state.stream_depth,
        "depth_features_from": source,
        "rest_depth_age_s": None if rest_age_us is None else round(rest_age_us / 1e6, 3),
        "unavailable_features": missing,
        "reason": reason,
    }


def _warning(symbol: str, entry: Mapping[str, Any]) -> str:
    missing = ", ".join(entry["unavailable_features"])
    if entry["reason"] == DEPTH_STALE:
        return (
            f"{symbol}: the REST depth book is {entry['rest_depth_age_s']} s old (limit"
            f" {MAX_REST_AGE_US / 1e6:g} s): {missing} cannot be computed"
        )
    return (
        f"{symbol}: the order book stream has depth {entry['stream_depth']} (ws-gateway"
        f" subscribes orderbook.1 only): {missing} cannot be computed; {_HINT}"
    )


def depth_report(
    states: Mapping[str, DepthState],
    now_us: int,
    *,
    source: str,
    wanted_depth: int,
    rest_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``book_depth`` health check (``ok`` is always True: a limitation, not a failure)."""
    symbols = {symbol: symbol_depth(states[symbol], now_us) for symbol in sorted(states)}
    warnings = [_warning(s, e) for s, e in symbols.items() if e["unavailable_features"]]
    return {
        "ok": True,
        "depth_source": source,
        "wanted_depth": wanted_depth,
        "limited_symbols": [s for s, e in symbols.items() if e["unavailable_features"]],
        "warnings": warnings,
        "symbols": symbols,
        "rest": rest_status,
    }


class DepthWatch:
    """Logs when a symbol's depth situation changes (first seen depth 1, REST book arrives or
    goes stale, ...), once per change."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, tuple[str, ...]]] = {}

    def check(self, report: Mapping[str, Any]) -> None:
        for symbol, entry in report["symbols"].items():
            key = (entry["depth_features_from"], tuple(entry["unavailable_features"]))
            if self._seen.get(symbol) == key:
                continue
            self._seen[symbol] = key
            if entry["unavailable_features"]:
                log.warning(
                    "orderbook_depth_limited",
                    symbol=symbol,
                    stream_depth=entry["stream_depth"],
                    reason=entry["reason"],
                    unavailable_features=entry["unavailable_features"],
                    depth_source=report["depth_source"],
                    hint=_HINT if entry["reason"] == STREAM_DEPTH_LIMITED else None,
                )
            else:
                log.info(
                    "orderbook_depth_available",
                    symbol=symbol,
                    stream_depth=entry["stream_depth"],
                    depth_features_from=entry["depth_features_from"],
                )
