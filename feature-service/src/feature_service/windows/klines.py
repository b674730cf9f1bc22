"""Confirmed 1-minute kline history with O(1) rolling statistics.

"The last N candles" always means the N most recent *confirmed* 1 m candles accepted here, in
start order. Missing minutes (a gap in ``start``) are counted in ``stats`` but nothing is
inserted for them, so a return "between consecutive candles" spans the gap when there is one.

What ``add`` accepts: confirmed klines of interval ``"1"`` with a finite close and a finite,
non-negative volume, whose ``start`` is strictly later than the last accepted one. Everything
else is skipped and counted (unconfirmed, other interval, invalid, duplicate, out of order).

Rolling statistics kept per accepted candle, each O(1) per ``add`` and O(1) to read, for the
spans given at construction (the candle families say which; defaults in brackets):
- mean volume of the last N candles (``volume_mean``; 60 and 1,440);
- mean and population std of the N volumes *before* the newest one (``previous_volume_stats``;
  100);
- sample std of the N close-to-close simple returns of the last N + 1 candles (``return_std``;
  19).

Floating-point drift: ``RollingMoments`` keeps sums of values minus a shift (a value of the
window, which keeps the sum of squares free of the catastrophic cancellation of raw
``E[x²] − E[x]²``), bounds the rounding error it has accumulated, and recomputes the sums
exactly with ``math.fsum`` every ``size`` updates or sooner when that bound passes 1e-12 of
the result (e.g. when a huge volume spike leaves the window). A window of equal values
(zeros included) is detected exactly by an integer run counter, not by the float sums: its
mean is exactly that value and its std exactly 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from feature_service.market.events import US_PER_S, Kline

_T = TypeVar("_T")

ONE_MINUTE_US = 60 * US_PER_S
KLINE_INTERVAL = "1"
VOLUME_MEAN_SPANS: tuple[int, ...] = (60, 1440)
PREVIOUS_VOLUME_SPAN = 100
RETURN_SPAN = 19  # returns of the last 20 candles
RESYNC_CANDLES = 60  # exact recompute of the rolling sums at every whole hour of candle time
MIN_MAXLEN = max(*VOLUME_MEAN_SPANS, PREVIOUS_VOLUME_SPAN + 1, RETURN_SPAN) + 1


class RingBuffer(Sequence[_T], Generic[_T]):
    """Fixed-capacity FIFO with O(1) indexing from either end (``collections.deque`` indexes in
    O(n) towards the middle). Indexing follows list semantics, oldest first."""

    __slots__ = ("_buf", "_cap", "_count")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._cap = capacity
        self._buf: list[_T | None] = [None] * capacity
        self._count = 0  # total ever appended; the write position is _count % _cap

    @property
    def capacity(self) -> int:
        return self._cap

    def append(self, item: _T) -> None:
        self._buf[self._count % self._cap] = item
        self._count += 1

    def from_end(self, k: int) -> _T:
        """The item ``k`` places before the newest (0 = newest). No bounds check: hot path."""
        return self._buf[(self._count - 1 - k) % self._cap]  # type: ignore[return-value]

    def tail(self, n: int, skip: int = 0) -> list[_T]:
        """The ``n`` items that end ``skip`` places before the newest, oldest first (one or two
        list slices: the window recomputes read whole windows at once)."""
        end = self._count - skip
        start = max(end - n, self._count - len(self))
        if start >= end:
            return []
        cap, buf = self._cap, self._buf
        i, j = start % cap, end % cap
        if i < j:
            return buf[i:j]  # type: ignore[return-value]
        return buf[i:] + buf[:j]  # type: ignore[operator]

    def clear(self) -> None:
        self._buf = [None] * self._cap
        self._count = 0

    def __len__(self) -> int:
        return min(self._count, self._cap)

    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...
    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        n = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(n))]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("ring buffer index out of range")
        return self._buf[(self._count - n + index) % self._cap]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[_T]:
        n = len(self)
        start = self._count - n
        for i in range(n):
            yield self._buf[(start + i) % self._cap]  # type: ignore[misc]


class RollingMoments:
    """Count, mean and variance of the ``size`` values of a ring that end ``lag`` places before
    its newest item (``lag=1`` excludes the newest). Call ``on_append`` after every append.

    NaN items are "undefined" values: they add nothing to the sums and are counted in ``nans``
    so the caller can refuse a window that holds one. The ring's capacity must be at least
    ``size + lag + 1`` so the item leaving the window is still held when it leaves.

    Precision: the sums are of ``x - shift`` (shift = a value of the window at the last exact
    recompute). A float addition ``s += d`` errs by at most ``eps/2 * |s|`` after it, so
    ``_err1`` and ``_err2`` accumulate ``|s|`` and ``|d|`` (resp. ``s2`` and ``d²``) over the
    updates since the last recompute: ``eps`` times them bounds the error of the sums. The sums
    are recomputed exactly (``math.fsum``) every ``size`` updates, and sooner as soon as that
    bound exceeds ``RELATIVE_TOLERANCE`` of what the caller reads (the window's sum for
    ``track_mean``, its centred sum of squares for ``track_variance``) -- which is what makes a
    huge volume spike harmless once it has left the window. A recompute costs O(size); outside
    contrived inputs it happens about once per window length, so O(1) amortised.
    """

    RELATIVE_TOLERANCE = 1e-12
    _TRIGGER = 2.0**-52 / RELATIVE_TOLERANCE  # eps / tolerance

    __slots__ = (
        "_err1",
        "_err2",
        "_ring",
        "_run",
        "_s1",
        "_s2",
        "_shift",
        "_since_resync",
        "lag",
        "nans",
        "size",
        "track_mean",
        "track_variance",
    )

    def __init__(
        self,
        ring: RingBuffer[float],
        size: int,
        lag: int = 0,
        *,
        track_mean: bool = True,
        track_variance: bool = True,
    ) -> None:
        if size < 1 or lag < 0:
            raise ValueError(f"need size >= 1 and lag >= 0, got size={size} lag={lag}")
        if ring.capacity < size + lag + 1:
            raise ValueError(f"ring capacity {ring.capacity} < size + lag + 1 = {size + lag + 1}")
        self._ring = ring
        self.size = size
        self.lag = lag
        self.track_mean = track_mean
        self.track_variance = track_variance
        self.reset()

    def reset(self) -> None:
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._err1 = 0.0
        self._err2 = 0.0
        self._since_resync = 0
        self._run = 0  # trailing run of equal entering values: the window is constant iff >= n
        self.nans = 0

    @property
    def n(self) -> int:
        """How many values the window holds now (``size`` once warm), NaNs included."""
        return min(self.size, max(0, len(self._ring) - self.lag))

    def on_append(self, aligned: bool = False) -> None:
        """After every append. ``aligned``: recompute exactly now (KlineHistory passes a whole
        multiple of ``RESYNC_CANDLES`` minutes of candle time)."""
        ring = self._ring
        held = len(ring)
        if held <= self.lag:
            return
        entering = ring.from_end(self.lag)
        if held - self.lag >= 2 and entering == ring.from_end(self.lag + 1):
            self._run += 1
        else:
            self._run = 1
        if held - self.lag > self.size:
            self._remove(ring.from_end(self.lag + self.size))
        self._add(entering)
        self._since_resync += 1
        # Exact recomputes only at aligned points (or when the error bound asks): the sums then
        # depend on the values held, not on when the window started (state as of T).
        if aligned or self._imprecise():
            self.resync()

    def _add(self, x: float) -> None:
        if x != x:  # NaN
            self.nans += 1
            return
        d = x - self._shift
        dd = d * d
        self._s1 += d
        self._s2 += dd
        self._err1 += abs(self._s1) + abs(d)
        self._err2 += abs(self._s2) + 2.0 * dd

    def _remove(self, x: float) -> None:
        if x != x:
            self.nans -= 1
            return
        d = x - self._shift
        dd = d * d
        self._s1 -= d
        self._s2 -= dd
        self._err1 += abs(self._s1) + abs(d)
        self._err2 += abs(self._s2) + 2.0 * dd

    def _imprecise(self) -> bool:
        """The accumulated rounding bound exceeds the tolerance for what the caller reads."""
        finite = self.n - self.nans
        if finite <= 0 or self._run >= self.n:  # empty, or constant: decided exactly
            return False
        s1 = self._s1
        if self.track_mean and self._err1 * self._TRIGGER > abs(s1 + finite * self._shift):
            return True
        if self.track_variance:
            centred = self._s2 - s1 * s1 / finite
            bound = self._err2 + 2.0 * abs(s1) * self._err1 / finite
            if bound * self._TRIGGER > centred:
                return True
        return False

    def resync(self) -> None:
        """Recompute the sums exactly (correctly rounded) around a fresh shift."""
        finite = [v for v in self._ring.tail(self.n, self.lag) if v == v]
        shift = self._shift = finite[-1] if finite else 0.0  # the newest finite value
        deviations = [v - shift for v in finite]
        self._s1 = math.fsum(deviations)
        self._s2 = math.fsum([d * d for d in deviations])
        # what is left is the rounding of each deviation itself
        self._err1 = math.fsum(map(abs, deviations))
        self._err2 = 2.0 * self._s2
        self._since_resync = 0

    @property
    def constant(self) -> bool:
        """All values of a non-empty window are equal (exact, not from the float sums)."""
        n = self.n
        return n > 0 and self._run >= n

    def mean(self) -> float | None:
        """Mean of the window; None when it is empty or holds a NaN."""
        n = self.n
        if n == 0 or self.nans:
            return None
        if self.constant:
            return self._ring.from_end(self.lag)
        return self._shift + self._s1 / n

    def variance(self, ddof: int = 0) -> float | None:
        """Variance with ``n - ddof`` in the denominator; None when that is < 1 or a NaN is held."""
        n = self.n
        if n - ddof < 1 or self.nans:
            return None
        if self.constant:
            return 0.0
        var = (self._s2 - self._s1 * self._s1 / n) / (n - ddof)
        return var if var > 0.0 else 0.0

    def std(self, ddof: int = 0) -> float | None:
        var = self.variance(ddof)
        return None if var is None else math.sqrt(var)


@dataclass(slots=True)
class KlineStats:
    """Counters of what ``KlineHistory.add`` did with each kline."""

    accepted: int = 0
    unconfirmed: int = 0
    other_interval: int = 0
    invalid: int = 0  # non-finite close or volume, or negative volume
    duplicates: int = 0  # start == last accepted start
    out_of_order: int = 0  # start < last accepted start
    gaps: int = 0  # accepted candles that followed one or more missing minutes
    missing_minutes: int = 0  # total minutes missing across those gaps


class KlineHistory:
    """The last ``maxlen`` confirmed 1 m candles of one symbol, oldest first."""

    __slots__ = (
        "_closes",
        "_klines",
        "_last_start",
        "_prev_volumes",
        "_returns",
        "_returns_window",
        "_volume_means",
        "_volumes",
        "_windows",
        "stats",
    )

    def __init__(
        self,
        maxlen: int = 1500,
        *,
        volume_mean_spans: Iterable[int] = VOLUME_MEAN_SPANS,
        previous_volume_spans: Iterable[int] = (PREVIOUS_VOLUME_SPAN,),
        return_spans: Iterable[int] = (RETURN_SPAN,),
    ) -> None:
        means = sorted(set(volume_mean_spans))
        previous = sorted(set(previous_volume_spans))
        returns = sorted(set(return_spans))
        needed = max((*means, *(s + 1 for s in previous), *returns, 1)) + 1
        if maxlen < needed:
            raise ValueError(f"maxlen must be >= {needed} (longest window + 1), got {maxlen}")
        self._klines: RingBuffer[Kline] = RingBuffer(maxlen)
        self._closes: RingBuffer[float] = RingBuffer(maxlen)
        self._volumes: RingBuffer[float] = RingBuffer(maxlen)
        # Return of each candle against the previous accepted one; NaN for the first candle
        # and when the previous close is 0 (undefined), which nulls any window holding it.
        self._returns: RingBuffer[float] = RingBuffer(maxlen)
        self._volume_means = {
            span: RollingMoments(self._volumes, span, track_variance=False) for span in means
        }
        self._prev_volumes = {span: RollingMoments(self._volumes, span, lag=1) for span in previous}
        self._returns_window = {
            span: RollingMoments(self._returns, span, track_mean=False) for span in returns
        }
        self._windows = (
            *self._volume_means.values(),
            *self._prev_volumes.values(),
            *self._returns_window.values(),
        )
        self._last_start: int | None = None
        self.stats = KlineStats()

    def add(self, kline: Kline) -> bool:
        """Append a confirmed 1 m kline; False (and a counter) when it is skipped."""
        stats = self.stats
        if not kline.confirmed:
            stats.unconfirmed += 1
            return False
        if kline.interval != KLINE_INTERVAL:
            stats.other_interval += 1
            return False
        close = kline.close
        volume = kline.volume
        if not (math.isfinite(close) and math.isfinite(volume)) or volume < 0.0:
            stats.invalid += 1
            return False
        last_start = self._last_start
        if last_start is not None:
            if kline.start == last_start:
                stats.duplicates += 1
                return False
            if kline.start < last_start:
                stats.out_of_order += 1
                return False
            missing = (kline.start - last_start) // ONE_MINUTE_US - 1
            if missing > 0:
                stats.gaps += 1
                stats.missing_minutes += missing
        previous_close = self._closes.from_end(0) if len(self._closes) else 0.0
        ret = close / previous_close - 1.0 if previous_close != 0.0 else math.nan

        self._klines.append(kline)
        self._closes.append(close)
        self._volumes.append(volume)
        self._returns.append(ret)
        # Exact recomputes at whole multiples of RESYNC_CANDLES minutes of candle time: the sums
        # then depend only on the candles held, not on when the history started, so a history
        # rebuilt from stored candles is bit-identical to one that has run for days.
        minute = kline.start // ONE_MINUTE_US
        aligned = last_start is None or (
            minute // RESYNC_CANDLES != (last_start // ONE_MINUTE_US) // RESYNC_CANDLES
        )
        for window in self._windows:
            window.on_append(aligned)
        self._last_start = kline.start
        stats.accepted += 1
        return True

    def reset(self) -> None:
        """Forget every candle (e.g. before a backfill); counters are kept."""
        for ring in (self._klines, self._closes, self._volumes, self._returns):
            ring.clear()
        for window in self._windows:
            window.reset()
        self._last_start = None

    def __len__(self) -> int:
        return len(self._closes)

    def tracks(
        self, maxlen: int, means: Iterable[int], previous: Iterable[int], returns: Iterable[int]
    ) -> bool:
        """Whether this history already keeps these windows (a new plan can reuse it)."""
        return (
            self._closes.capacity >= maxlen
            and set(means) <= set(self._volume_means)
            and set(previous) <= set(self._prev_volumes)
            and set(returns) <= set(self._returns_window)
        )

    @property
    def closes(self) -> Sequence[float]:
        """Closes of the held candles, oldest first (a read-only view; index -1 is the newest)."""
        return self._closes

    @property
    def volumes(self) -> Sequence[float]:
        """Volumes (base quantity) of the held candles, oldest first (read-only view)."""
        return self._volumes

    @property
    def last_start(self) -> int | None:
        """Start (microseconds) of the newest accepted candle."""
        return self._last_start

    def last(self, n: int) -> list[Kline]:
        """The ``n`` most recent candles, oldest first (all of them when fewer are held)."""
        held = len(self._klines)
        n = min(max(n, 0), held)
        return self._klines[held - n :]

    def volume_mean(self, span: int) -> float | None:
        """Mean volume of the last ``span`` candles (a tracked span), newest included;
        None with fewer than ``span`` candles."""
        window = self._volume_means.get(span)
        if window is None:
            raise KeyError(
                f"volume mean span {span} is not tracked; use one of {tuple(self._volume_means)}"
            )
        return window.mean() if window.n == span else None

    def previous_volume_stats(self, span: int = PREVIOUS_VOLUME_SPAN) -> tuple[float, float] | None:
        """(mean, population std) of the ``span`` volumes before the newest; None with fewer
        than ``span + 1`` candles."""
        window = self._prev_volumes[span]
        if window.n < span:
            return None
        mean = window.mean()
        std = window.std(ddof=0)
        if mean is None or std is None:  # cannot happen: volumes are finite
            return None
        return mean, std

    def return_std(self, span: int = RETURN_SPAN) -> float | None:
        """Sample std (ddof=1) of the ``span`` close-to-close returns of the last ``span + 1``
        candles; None with fewer candles or when one of those returns has a zero base close."""
        window = self._returns_window[span]
        if len(self) < span + 1:
            return None
        return window.std(ddof=1)
