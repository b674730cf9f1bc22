"""Per-minute summaries: what the report needs from every minute, small enough to keep for
every minute of every day (precomputed as data arrives, so a 24 h report reads 1,440 rows)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from feature_service.quality.config import SKEW_BUCKETS_MS

US_PER_MINUTE = 60_000_000


def skew_bucket(abs_ms: float) -> int:
    """Index of the first bucket whose upper bound is >= ``abs_ms``."""
    return bisect_left(SKEW_BUCKETS_MS, abs_ms)


@dataclass(slots=True)
class MinuteSummary:
    """Counts of one symbol's minute ``[minute_us, minute_us + 60 s)`` on receive time."""

    symbol: str
    minute_us: int
    messages: dict[str, int] = field(default_factory=dict)
    anomalies: int = 0  # messages (or 1 s samples) that raised an anomaly incident
    confirmed_klines: int = 0  # confirmed 1 m candles whose start lies in this minute
    skew_hist: dict[str, list[int]] = field(default_factory=dict)
    skew_max_ms: dict[str, float] = field(default_factory=dict)
    first_rx: dict[str, int] = field(default_factory=dict)  # first / last receive time
    last_rx: dict[str, int] = field(default_factory=dict)

    def count(self, stream: str, skew_ms: float, rx: int) -> None:
        n = self.messages.get(stream)
        if n is None:
            self.messages[stream] = 1
            self.first_rx[stream] = rx
        else:
            self.messages[stream] = n + 1
        self.last_rx[stream] = rx
        hist = self.skew_hist.get(stream)
        if hist is None:
            hist = self.skew_hist[stream] = [0] * (len(SKEW_BUCKETS_MS) + 1)
        a = abs(skew_ms)
        hist[skew_bucket(a)] += 1
        if a > self.skew_max_ms.get(stream, -1.0):
            self.skew_max_ms[stream] = a

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "minute_us": self.minute_us,
            "messages": self.messages,
            "anomalies": self.anomalies,
            "confirmed_klines": self.confirmed_klines,
            "skew_hist": self.skew_hist,
            "skew_max_ms": self.skew_max_ms,
            "first_rx": self.first_rx,
            "last_rx": self.last_rx,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MinuteSummary:
        return cls(
            symbol=data["symbol"],
            minute_us=int(data["minute_us"]),
            messages={k: int(v) for k, v in data.get("messages", {}).items()},
            anomalies=int(data.get("anomalies", 0)),
            confirmed_klines=int(data.get("confirmed_klines", 0)),
            skew_hist={k: [int(x) for x in v] for k, v in data.get("skew_hist", {}).items()},
            skew_max_ms={k: float(v) for k, v in data.get("skew_max_ms", {}).items()},
            first_rx={k: int(v) for k, v in data.get("first_rx", {}).items()},
            last_rx={k: int(v) for k, v in data.get("last_rx", {}).items()},
        )
