"""Service clocks. Only the live engine reads one: to stamp receive times and to schedule the
interval timer. Feature code never sees a clock, only the ``t`` the engine passes in."""

from __future__ import annotations

import time
from typing import Protocol


class ServiceClock(Protocol):
    def now_us(self) -> int: ...

    def sleep_seconds_until(self, t_us: int) -> float:
        """Wall seconds to sleep until the clock reads ``t_us``."""
        ...


class WallClock:
    """UTC wall time in µs, never going backwards: receive stamps stay monotonic even if NTP
    steps the system clock back, so the engine's ordering invariant holds."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now_us(self) -> int:
        now = time.time_ns() // 1000
        if now < self._last:
            return self._last
        self._last = now
        return now

    def sleep_seconds_until(self, t_us: int) -> float:
        return max(0.0, (t_us - self.now_us()) / 1e6)


class AcceleratedClock:
    """A virtual clock running ``speed`` times faster than the wall, for the embedded replay demo:
    a 20-minute recording then shows warmed-up 5-minute features within seconds. It starts at
    ``origin_us`` (virtual) at construction time."""

    __slots__ = ("_last", "_origin_us", "_speed", "_wall0")

    def __init__(self, speed: float, origin_us: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        self._wall0 = time.monotonic_ns() // 1000
        self._origin_us = origin_us if origin_us is not None else time.time_ns() // 1000
        self._last = 0

    @property
    def speed(self) -> float:
        return self._speed

    def now_us(self) -> int:
        elapsed = time.monotonic_ns() // 1000 - self._wall0
        now = self._origin_us + int(elapsed * self._speed)
        if now < self._last:
            return self._last
        self._last = now
        return now

    def sleep_seconds_until(self, t_us: int) -> float:
        return max(0.0, (t_us - self.now_us()) / 1e6 / self._speed)
