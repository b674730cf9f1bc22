"""Stateless and small stateful checks the monitor combines."""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from feature_service.market.events import Kline
from feature_service.quality.config import QualityConfig

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


class JumpDetector:
    """Price jumps against a robust baseline: the median and MAD of the last ``jump_window``
    1 s mid log returns. A return is a jump when it is further from the median than
    ``jump_k`` robust sigmas and at least ``jump_min_return`` in size.

    The median is O(1) from a sorted list (a plain list kept sorted with ``bisect``: a few
    hundred floats, so C-level inserts beat a SortedList's Python code); the MAD (O(n)) is only
    computed when the return is already beyond the minimum size, which a quiet second never
    is."""

    __slots__ = ("_cfg", "_order", "_prev", "_sorted")

    def __init__(self, config: QualityConfig) -> None:
        self._cfg = config
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._prev: float | None = None

    def sample(self, mid: float | None) -> float | None:
        """The mid at a new 1 s boundary; returns the log return when it is a jump."""
        prev, self._prev = self._prev, mid
        if mid is None or prev is None or mid <= 0 or prev <= 0:
            return None
        r = math.log(mid / prev)
        cfg = self._cfg
        jump = None
        window = self._sorted
        if len(window) >= cfg.jump_min_samples and abs(r) >= cfg.jump_min_return:
            median = _median(window)
            if abs(r - median) >= cfg.jump_min_return:
                mad = _median(sorted(abs(x - median) for x in window))
                if abs(r - median) > max(cfg.jump_k * MAD_TO_SIGMA * mad, cfg.jump_min_return):
                    jump = r
        self._order.append(r)
        insort(window, r)
        if len(self._order) > cfg.jump_window:
            del window[bisect_left(window, self._order.popleft())]
        return jump


def _median(values: list[float]) -> float:
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


def kline_violation(k: Kline) -> tuple[float, str] | None:
    """(relative size, description) when the candle's OHLC cannot be right, else None."""
    o, h, low, c = k.open, k.high, k.low, k.close
    ref = abs(c) or abs(o) or 1.0
    if min(o, h, low, c) <= 0:
        return 1.0, f"non-positive price in OHLC {o}/{h}/{low}/{c}"
    if k.volume < 0:
        return 1.0, f"negative volume {k.volume}"
    size = max(max(o, c) - h, low - min(o, c), low - h, 0.0) / ref
    if size > 0:
        return size, f"OHLC inconsistent: open {o} high {h} low {low} close {c}"
    return None
