"""Thresholds of the quality monitor. Every one is a FEATURE_SERVICE_QUALITY_* setting too."""

from __future__ import annotations

from dataclasses import dataclass, field

US_PER_S = 1_000_000

# A stream silent longer than this is an incident. ``None``: learned from its own cadence
# (``silence_factor`` x its smoothed inter-arrival gap, at least ``silence_floor_s``, once
# ``cadence_warmup`` gaps were seen). Bybit pushes the book at least every few seconds and the
# ticker every 100 ms while anything changes; trades and funding can be quiet for long.
DEFAULT_SILENCE_S: dict[str, float | None] = {
    "orderbook": 10.0,
    "ticker": 30.0,
    "kline": 90.0,
    "trade": None,
    "funding": None,
}


@dataclass(frozen=True, slots=True)
class QualityConfig:
    silence_s: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_SILENCE_S))
    silence_factor: float = 50.0
    silence_floor_s: float = 60.0
    cadence_warmup: int = 32
    # Price jumps: |r - median| > jump_k * 1.4826 * MAD of the last jump_window 1 s mid log
    # returns, and |r| >= jump_min_return (a quiet book has MAD 0: ticks alone are not jumps).
    jump_k: float = 10.0
    jump_window: int = 300
    jump_min_samples: int = 60
    jump_min_return: float = 0.002
    # A trade more than this (relative) below the best bid or above the best ask.
    trade_outside_tolerance: float = 0.005
    # |receive - exchange| above this is clock skew (ms).
    skew_threshold_ms: float = 1000.0
    # Trade ids remembered for duplicate detection (per symbol).
    trade_id_memory: int = 4096

    def silence_us(self, stream: str) -> int | None:
        value = self.silence_s.get(stream)
        return None if value is None else int(value * US_PER_S)


# Skew histogram bucket upper bounds in ms (|receive - exchange|); the last bucket is open.
SKEW_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
