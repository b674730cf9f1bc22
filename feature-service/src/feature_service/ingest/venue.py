"""Venue adapters: one exchange's wire format -> typed market events.

A second exchange is a second class with the same ``parse``; everything after it (sequencer,
engine, raw store) only sees ``MarketEvent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from feature_service.market.events import MarketEvent
from feature_service.market.parsing import parse_message
from feature_service.market.values import DEFAULT_LIMITS, ParseLimits

Body = bytes | str | Mapping[str, Any]


class VenueAdapter(Protocol):
    name: str

    def parse(self, body: Body, receive_ts: int | None) -> list[MarketEvent]:
        """Events of one message; ``receive_ts`` None means "take the recorded time".
        Raises ``MessageRejected`` for input that cannot be used."""
        ...


class BybitAdapter:
    """Bybit V5 public market data, as ws-gateway envelopes or bare frames."""

    name = "bybit"

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS

    def parse(self, body: Body, receive_ts: int | None) -> list[MarketEvent]:
        return parse_message(body, receive_ts=receive_ts, limits=self.limits)
