"""Interval boundaries on the receive-time clock.

All intervals are whole seconds aligned to the Unix epoch, so a boundary b closes interval I
when b is a multiple of I. The engine walks boundaries in steps of the greatest common divisor
of the enabled intervals: at a shared boundary (e.g. 60 s is also 1 s, 3 s and 15 s) the state
is computed once and one vector per closing interval is emitted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from feature_service.market.events import US_PER_S


class IntervalClock:
    __slots__ = ("_intervals_us", "intervals_s", "step_us")

    def __init__(self, intervals_s: Iterable[int]) -> None:
        intervals = tuple(sorted(set(int(i) for i in intervals_s)))
        if not intervals or intervals[0] <= 0:
            raise ValueError("intervals must be positive whole seconds")
        self.intervals_s = intervals
        self._intervals_us = tuple(i * US_PER_S for i in intervals)
        self.step_us = math.gcd(*intervals) * US_PER_S

    def first_boundary_after(self, t_us: int) -> int:
        """The first boundary strictly after t (an event exactly at a boundary opens the next)."""
        return (t_us // self.step_us + 1) * self.step_us

    def closing_at(self, boundary_us: int) -> tuple[int, ...]:
        """Intervals (seconds) that close at this boundary."""
        return tuple(
            s
            for s, us in zip(self.intervals_s, self._intervals_us, strict=True)
            if boundary_us % us == 0
        )
