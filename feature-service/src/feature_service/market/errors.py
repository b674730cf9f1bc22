"""Typed rejection of malformed input: every bad message gets a reason, never a guess."""

from __future__ import annotations

import enum


class RejectReason(enum.StrEnum):
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_NUMBER = "bad_number"
    NEGATIVE_VALUE = "negative_value"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_SYMBOL = "missing_symbol"
    BAD_SIDE = "bad_side"
    EMPTY_DATA = "empty_data"
    BAD_SYMBOL = "bad_symbol"  # not ^[A-Z0-9]{2,30}$
    OUT_OF_RANGE = "out_of_range"  # a number outside its documented bounds (market/values.py)
    INCONSISTENT = "inconsistent"  # fields that contradict each other (kline high < low, ...)
    TOO_LARGE = "too_large"  # body above the message size limit


class MessageRejected(ValueError):
    """Raised by the parsers; ``reason`` is a stable code for counters and dead-letter headers."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class UnstorableRecord(ValueError):
    """A record that can never be stored (its symbol is not usable as a folder name): raised by
    the raw store, dead-lettered by the consumer instead of retried."""
