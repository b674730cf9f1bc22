"""Incremental technical indicators on confirmed 1 m closes, with TA-Lib's definitions, and the
families (rsi_{period}, ema_{period}, macd_* with fast/slow/signal, bb_* with period/k) that
wrap them for the registry; non-default MACD / Bollinger parameters are named
``macd_line_{fast}_{slow}_{signal}`` and ``bb_upper_{period}_{k}`` (k's "." written "p").

Each operator follows one small lifecycle: ``update(close)`` (O(1)), ``value`` (or named values)
that is None until warm, ``ready``, ``reset()``. Feed them the close of every candle that
``KlineHistory.add`` accepted, in order, and nothing else.

Warm-up, as the number of closes before the first value (TA-Lib's lookback + 1; defaults; in
general RSI period + 1, EMA period, MACD line slow and signal slow + signal - 1, Bollinger
period):
- rsi_14: 15. Wilder's RSI: average gain and loss seeded by the simple average of the first 14
  close-to-close changes, then ``avg = (avg * 13 + x) / 14``. When both averages are exactly 0
  (no move at all) the value is 0, as TA-Lib returns.
- ema_20: 20. Seeded by the SMA of the first 20 closes, then ``ema += (close - ema) * 2/21``.
- macd_line: 26; macd_signal and macd_histogram: 34. TA-Lib MACD: line = EMA12 - EMA26 with the
  EMA12 *started 14 bars late* (seeded by the SMA of closes 15..26) so both EMAs emit their
  first value on bar 26; signal = EMA9 of the line seeded by the SMA of its first 9 values;
  histogram = line - signal. Note ``talib.MACD`` itself reports NaN for the line until bar 34
  because it aligns its three outputs; we publish the line from bar 26 (its value is the one
  TA-Lib computes internally, and equals ``EMA(close[14:], 12) - EMA(close, 26)``).
- bb_upper, bb_lower, bb_width: 20. Bollinger: middle = SMA20, bands = middle ± 2 * population
  std of the same 20 closes, width = (upper - lower) / middle (null with ``zero_base`` when the
  middle is 0).

Bollinger keeps shifted running sums over a ring buffer, recomputed exactly every ``period``
updates or sooner when their rounding bound requires it (``windows.klines.RollingMoments``),
so it never drifts; a window of equal closes
gives a std of exactly 0. Where TA-Lib itself loses precision (prices ~1e5 moving by ~1e-3)
our std is the more exact one.
"""

from __future__ import annotations

import math

from feature_service.windows.klines import RingBuffer, RollingMoments


def _check_period(name: str, period: int) -> None:
    if period < 2:
        raise ValueError(f"{name} period must be >= 2, got {period}")


class Ema:
    """TA-Lib EMA: the first value is the SMA of the first ``period`` closes."""

    __slots__ = ("_count", "_k", "_sum", "_value", "period")

    def __init__(self, period: int = 20) -> None:
        _check_period("EMA", period)
        self.period = period
        self._k = 2.0 / (period + 1)
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._value: float | None = None

    def update(self, close: float) -> None:
        value = self._value
        if value is not None:
            self._value = (close - value) * self._k + value
            return
        self._count += 1
        self._sum += close
        if self._count == self.period:
            self._value = self._sum / self.period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


class RsiWilder:
    """TA-Lib RSI (Wilder smoothing), first value on close ``period + 1``."""

    __slots__ = ("_avg_gain", "_avg_loss", "_changes", "_prev", "_value", "period")

    def __init__(self, period: int = 14) -> None:
        _check_period("RSI", period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._prev: float | None = None
        self._changes = 0
        self._avg_gain = 0.0  # a running sum until the seed, an average afterwards
        self._avg_loss = 0.0
        self._value: float | None = None

    def update(self, close: float) -> None:
        prev = self._prev
        self._prev = close
        if prev is None:
            return
        change = close - prev
        period = self.period
        if self._changes < period:
            if change < 0.0:
                self._avg_loss -= change
            else:
                self._avg_gain += change
            self._changes += 1
            if self._changes < period:
                return
            self._avg_gain /= period
            self._avg_loss /= period
        else:
            gain = self._avg_gain * (period - 1)
            loss = self._avg_loss * (period - 1)
            if change < 0.0:
                loss -= change
            else:
                gain += change
            self._avg_gain = gain / period
            self._avg_loss = loss / period
        total = self._avg_gain + self._avg_loss
        self._value = 100.0 * (self._avg_gain / total) if total != 0.0 else 0.0

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


class Macd:
    """TA-Lib MACD(fast, slow, signal): the line from close ``slow``, the signal and histogram
    from close ``slow + signal - 1``."""

    __slots__ = ("_count", "_fast", "_signal", "_slow", "_start_fast")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_period("MACD fast", fast)
        _check_period("MACD signal", signal)
        if slow <= fast:
            raise ValueError(f"MACD needs fast < slow, got fast={fast} slow={slow}")
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        # The fast EMA only sees the last `fast` closes of the slow EMA's seed window, so its
        # SMA seed completes on the same bar as the slow one (TA-Lib's alignment).
        self._start_fast = slow - fast
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._fast.reset()
        self._slow.reset()
        self._signal.reset()

    def update(self, close: float) -> None:
        self._count += 1
        self._slow.update(close)
        if self._count > self._start_fast:
            self._fast.update(close)
        line = self.line
        if line is not None:
            self._signal.update(line)

    @property
    def line(self) -> float | None:
        fast = self._fast.value
        slow = self._slow.value
        if fast is None or slow is None:
            return None
        return fast - slow

    @property
    def signal(self) -> float | None:
        return self._signal.value

    @property
    def histogram(self) -> float | None:
        signal = self._signal.value
        line = self.line
        if signal is None or line is None:
            return None
        return line - signal

    @property
    def ready(self) -> bool:
        """All three outputs are available."""
        return self._signal.ready


class Bollinger:
    """Bollinger bands: SMA(period) ± k * population std over the same closes."""

    __slots__ = ("_closes", "_moments", "k", "period")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        _check_period("Bollinger", period)
        if not math.isfinite(k) or k < 0.0:
            raise ValueError(f"Bollinger k must be finite and >= 0, got {k}")
        self.period = period
        self.k = k
        self._closes: RingBuffer[float] = RingBuffer(period + 1)
        self._moments = RollingMoments(self._closes, period)

    def reset(self) -> None:
        self._closes.clear()
        self._moments.reset()

    def update(self, close: float) -> None:
        self._closes.append(close)
        # Exact at every close (20 values, once a minute): the bands then depend only on the
        # last 20 closes, never on how long the service has been running (state as of T).
        self._moments.on_append(aligned=True)

    @property
    def ready(self) -> bool:
        return self._moments.n == self.period

    @property
    def middle(self) -> float | None:
        return self._moments.mean() if self.ready else None

    @property
    def std(self) -> float | None:
        return self._moments.std(ddof=0) if self.ready else None

    def bands(self) -> tuple[float, float, float, float | None] | None:
        """(lower, middle, upper, width) in one pass; width is None when the middle is 0."""
        if not self.ready:
            return None
        middle = self._moments.mean()
        std = self._moments.std(ddof=0)
        if middle is None or std is None:  # cannot happen once ready: closes are finite
            return None
        half = self.k * std
        upper = middle + half
        lower = middle - half
        width = (upper - lower) / middle if middle != 0.0 else None
        return lower, middle, upper, width

    @property
    def upper(self) -> float | None:
        bands = self.bands()
        return None if bands is None else bands[2]

    @property
    def lower(self) -> float | None:
        bands = self.bands()
        return None if bands is None else bands[0]

    @property
    def width(self) -> float | None:
        """(upper - lower) / middle; None before warm-up or when the middle is 0."""
        bands = self.bands()
        return None if bands is None else bands[3]
