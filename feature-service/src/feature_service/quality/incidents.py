"""Structured quality incidents: what was wrong, where, from when to when, and how badly."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Category(enum.StrEnum):
    MISSING = "missing"
    ANOMALY = "anomaly"
    SEQUENCE = "sequence"
    TIMESTAMP = "timestamp"
    DESYNC = "desync"


class IncidentKind(enum.StrEnum):
    """Every problem the monitor detects. ``magnitude`` is in the unit given in the comment."""

    STREAM_SILENT = "stream_silent"  # seconds of silence
    KLINE_MISSING = "kline_missing"  # confirmed 1 m candles missing
    PRICE_JUMP = "price_jump"  # |1 s mid log return|
    TRADE_OUTSIDE_BOOK = "trade_outside_book"  # relative distance beyond the best price
    ZERO_SIZE_LEVEL = "zero_size_level"  # zero-size levels in a snapshot
    CROSSED_BOOK = "crossed_book"  # (best bid - best ask) / best ask when it started
    OHLC_INCONSISTENT = "ohlc_inconsistent"  # relative size of the violation
    U_GAP = "u_gap"  # book updates missing (u jumped by this + 1)
    U_RESET = "u_reset"  # how far u went back
    SEQ_BACKWARDS = "seq_backwards"  # how far seq went back
    DUPLICATE = "duplicate"  # 1 per repeated message
    CLOCK_SKEW = "clock_skew"  # largest |receive - exchange| time in ms during the episode
    TIME_BACKWARDS = "time_backwards"  # ms the exchange time went back
    BOOK_DESYNC = "book_desync"  # seconds until a snapshot restored the book

    @property
    def category(self) -> Category:
        return _CATEGORY[self]


_CATEGORY = {
    IncidentKind.STREAM_SILENT: Category.MISSING,
    IncidentKind.KLINE_MISSING: Category.MISSING,
    IncidentKind.PRICE_JUMP: Category.ANOMALY,
    IncidentKind.TRADE_OUTSIDE_BOOK: Category.ANOMALY,
    IncidentKind.ZERO_SIZE_LEVEL: Category.ANOMALY,
    IncidentKind.CROSSED_BOOK: Category.ANOMALY,
    IncidentKind.OHLC_INCONSISTENT: Category.ANOMALY,
    IncidentKind.U_GAP: Category.SEQUENCE,
    IncidentKind.U_RESET: Category.SEQUENCE,
    IncidentKind.SEQ_BACKWARDS: Category.SEQUENCE,
    IncidentKind.DUPLICATE: Category.SEQUENCE,
    IncidentKind.CLOCK_SKEW: Category.TIMESTAMP,
    IncidentKind.TIME_BACKWARDS: Category.TIMESTAMP,
    IncidentKind.BOOK_DESYNC: Category.DESYNC,
}


@dataclass(slots=True)
class Incident:
    """One incident. Times are receive times (µs). ``end_us`` is None while it is still open
    (a desync waiting for its snapshot, a crossed book, a skew episode); ``detected_us`` is the
    receive time of the event that revealed it, which decides the report period it belongs to.
    ``seq`` numbers the incidents of one monitor, so an open record and its closing record
    (both stored) are one incident."""

    kind: IncidentKind
    symbol: str
    stream: str
    start_us: int
    end_us: int | None
    magnitude: float
    detail: str
    detected_us: int
    seq: int = 0

    @property
    def is_open(self) -> bool:
        return self.end_us is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind.value,
            "category": self.kind.category.value,
            "symbol": self.symbol,
            "stream": self.stream,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "detected_us": self.detected_us,
            "magnitude": self.magnitude,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        return cls(
            kind=IncidentKind(data["kind"]),
            symbol=data["symbol"],
            stream=data["stream"],
            start_us=int(data["start_us"]),
            end_us=None if data.get("end_us") is None else int(data["end_us"]),
            magnitude=float(data["magnitude"]),
            detail=str(data.get("detail", "")),
            detected_us=int(data["detected_us"]),
            seq=int(data.get("seq", 0)),
        )
