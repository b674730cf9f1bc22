"""What the quality monitor remembers per symbol and per stream, laid out for its hot path.

The monitor sees every consumed event, so what it does per event is a handful of attribute
updates on these objects: a stream keeps the open minute's receive - exchange differences
(turned into a ``MinuteSummary`` only when the minute ends), and the book's best prices are
copied, not recomputed, so the 1 s mid sample needs no book query.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from feature_service.book.orderbook import BookStatus
from feature_service.quality.checks import JumpDetector
from feature_service.quality.config import SKEW_BUCKETS_MS, US_PER_S, QualityConfig
from feature_service.quality.incidents import Incident
from feature_service.quality.summary import MinuteSummary

NEVER = -(1 << 62)  # "no minute open" / "no second seen yet": any receive time is past it
HIST_SIZE = len(SKEW_BUCKETS_MS) + 1
_BOUNDS = np.array(SKEW_BUCKETS_MS, dtype=np.float64)
BOOK, TRADE, KLINE, OTHER = 0, 1, 2, 3  # StreamTrack.kind


class StreamTrack:
    """One stream of one symbol: timing, the skew episode, and the open minute's messages."""

    __slots__ = (
        "fixed_limit_us",
        "gaps",
        "kind",
        "last_ex",
        "last_rx",
        "learned",
        "m_d",
        "m_first",
        "m_last",
        "mean_gap_us",
        "name",
        "quick_limit_us",
        "skew",
        "skew_last_rx",
    )

    def __init__(
        self, name: str, kind: int, fixed_limit_us: int | None, config: QualityConfig
    ) -> None:
        self.name = name
        self.kind = kind  # BOOK / TRADE / KLINE / OTHER: which per-kind checks apply
        # A configured silence limit, or None: learned from the stream's own cadence.
        self.fixed_limit_us = fixed_limit_us
        self.learned = fixed_limit_us is None
        # No gap at or below this can be a silence (a learned limit is never below the floor),
        # so the exact limit is only worked out for the rare gap above it.
        self.quick_limit_us = (
            fixed_limit_us if fixed_limit_us is not None else int(config.silence_floor_s * US_PER_S)
        )
        self.last_rx = NEVER  # NEVER: no message yet
        self.last_ex = NEVER
        self.mean_gap_us = 0.0  # smoothed inter-arrival gap; kept for learned limits only
        self.gaps = 0
        self.skew: Incident | None = None
        self.skew_last_rx = 0
        # The open minute: receive - exchange time of each message, in arrival order (its
        # count and skew histogram are computed from them when it ends), first / last receive.
        self.m_d: list[int] = []
        self.m_first = 0
        self.m_last = 0

    def silence_limit_us(self, config: QualityConfig) -> int | None:
        if self.fixed_limit_us is not None:
            return self.fixed_limit_us
        if self.gaps < config.cadence_warmup:
            return None
        return int(max(config.silence_floor_s * US_PER_S, config.silence_factor * self.mean_gap_us))


class SymbolTrack:
    __slots__ = (
        "ask",
        "bid",
        "book_status",
        "by_type",
        "crossed",
        "desync",
        "in_sequence",
        "jumps",
        "last_kline_start",
        "last_seq",
        "last_u",
        "m_anomalies",
        "m_klines",
        "m_streams",
        "minute_us",
        "second",
        "streams",
        "trade_ids",
        "trade_order",
        "window_end",
    )

    def __init__(self, config: QualityConfig) -> None:
        self.streams: dict[str, StreamTrack] = {}
        self.by_type: dict[type, StreamTrack] = {}  # event class -> its stream (REST apart)
        self.last_u: int | None = None
        self.last_seq = NEVER
        self.in_sequence = False  # True only with last_u set (a snapshot started the sequence)
        self.book_status = BookStatus.NEVER_SYNCED
        self.desync: Incident | None = None
        self.crossed: Incident | None = None
        self.jumps = JumpDetector(config)
        self.second = NEVER
        # Best bid / ask after the last book event while the book was usable (bid None: it was
        # not): the mid a 1 s sample takes is the book as of the event before the new second.
        self.bid: float | None = None
        self.ask: float | None = None
        self.trade_ids: set[str] = set()
        self.trade_order: deque[str] = deque()
        self.last_kline_start: int | None = None
        self.minute_us = NEVER  # start of the open minute; NEVER: none open
        # Events in [minute_us, window_end) start neither a minute nor a second: one compare.
        self.window_end = NEVER
        self.m_anomalies = 0
        self.m_klines = 0
        self.m_streams: list[StreamTrack] = []  # streams with messages in the open minute

    def mid(self) -> float | None:
        bid, ask = self.bid, self.ask
        return None if bid is None or ask is None else (bid + ask) / 2.0

    def close_minute(self, symbol: str) -> MinuteSummary | None:
        """The open minute as a summary (None when none is open); no minute is open after."""
        if self.minute_us == NEVER:
            return None
        summary = MinuteSummary(
            symbol, self.minute_us, anomalies=self.m_anomalies, confirmed_klines=self.m_klines
        )
        for st in self.m_streams:
            name, diffs = st.name, st.m_d
            summary.messages[name] = len(diffs)
            summary.first_rx[name] = st.m_first
            summary.last_rx[name] = st.m_last
            # |receive - exchange| in ms as MinuteSummary.count computes it per message (an int
            # difference, then a float division: numpy rounds it the same way).
            skew = np.abs(np.array(diffs, dtype=np.int64) / 1000.0)
            buckets = np.searchsorted(_BOUNDS, skew, side="left")
            summary.skew_hist[name] = np.bincount(buckets, minlength=HIST_SIZE).tolist()
            summary.skew_max_ms[name] = float(skew.max())
            st.m_d = []
        self.m_streams = []
        self.minute_us = NEVER
        self.window_end = NEVER
        self.m_anomalies = 0
        self.m_klines = 0
        return summary
