"""The mid price as of each whole-second boundary, for the last ``horizon_s`` seconds.

"The mid as of boundary ``b``" is the book's mid after every event received before ``b`` and
before any event received at or after it (None when the book was unusable then). The engine
samples it by calling ``record_until(floor_to_second(now), book.mid())`` *before* applying each
event and before computing a vector at ``t``: the first call that reaches a boundary is made
with the book exactly as of that boundary, and since nothing changed the book in between, every
boundary skipped since the previous call had that same mid. Hence the write rule: **the first
value recorded for a boundary wins**; a boundary at or before the last recorded one is ignored
(later calls, e.g. for an out-of-order event, cannot rewrite the past that vectors already saw).

``record(b, mid)`` records ``b`` only: boundaries skipped since the last recorded one become
unknown (None). ``record_until(b, mid)`` gives every one of them ``mid``. Both write at most
``horizon_s`` boundaries, whatever the gap.

Log returns. Each recorded boundary also stores the 1 s log return ``ln(mid[b] / mid[b-1])``
(None when either mid is unknown), and for each span in ``return_spans_s`` the grid keeps the
count, sum and sum of squares of the known returns ending in the last ``span`` boundaries. So
``return_moments`` is O(1) instead of a rescan of up to 300 seconds. Sums are recomputed exactly
(``math.fsum``) at every boundary that is a whole multiple of ``span`` seconds, which bounds
their drift at O(1) amortised cost and makes them a function of the grid's content alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from feature_service.market.events import US_PER_S

_NO_SECOND = -(2**62)  # marks a slot that holds no boundary


@dataclass(frozen=True, slots=True)
class ReturnMoments:
    """Known 1 s log returns ending at the boundaries of a window: count, Σr and Σr²."""

    count: int
    total: float
    total_sq: float

    def std(self, ddof: int = 1) -> float | None:
        """Standard deviation with ``count - ddof`` in the denominator; None when that is < 1."""
        n = self.count
        if n - ddof < 1:
            return None
        var = (self.total_sq - self.total * self.total / n) / (n - ddof)
        return math.sqrt(var) if var > 0.0 else 0.0


_NO_RETURNS = ReturnMoments(0, 0.0, 0.0)


class _ReturnWindow:
    __slots__ = ("n", "since_resync", "span", "sum", "sum_sq")

    def __init__(self, span: int) -> None:
        self.span = span
        self.clear()

    def clear(self) -> None:
        self.n = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.since_resync = 0


def _valid(mid: float | None) -> float | None:
    """A usable mid: finite and positive (anything else is treated as unknown)."""
    if mid is None or not (0.0 < mid < math.inf):
        return None
    return mid


class MidGrid:
    """Mids at whole-second boundaries (ring of ``horizon_s`` slots) and rolling return sums."""

    __slots__ = ("_horizon", "_last", "_mid", "_ret", "_sec", "_windows")

    def __init__(self, horizon_s: int = 301, return_spans_s: Iterable[int] = (60, 300)) -> None:
        spans = sorted({int(s) for s in return_spans_s})
        if horizon_s < 2:
            raise ValueError(f"horizon_s must be >= 2, got {horizon_s}")
        if spans and (spans[0] < 1 or spans[-1] >= horizon_s):
            raise ValueError(f"return spans must be in [1, horizon_s), got {spans}")
        self._horizon = horizon_s
        self._sec: list[int] = [_NO_SECOND] * horizon_s
        self._mid: list[float | None] = [None] * horizon_s
        self._ret: list[float | None] = [None] * horizon_s
        self._last: int | None = None  # last recorded boundary, in whole seconds
        self._windows: dict[int, _ReturnWindow] = {s: _ReturnWindow(s) for s in spans}

    @property
    def horizon_s(self) -> int:
        return self._horizon

    @property
    def return_spans_s(self) -> tuple[int, ...]:
        return tuple(self._windows)

    @property
    def last_boundary(self) -> int | None:
        """The last recorded boundary (microseconds), or None."""
        return None if self._last is None else self._last * US_PER_S

    # -- writes --------------------------------------------------------------------------------
    def record(self, boundary_us: int, mid: float | None) -> None:
        """The mid as of ``boundary_us``; boundaries skipped since the last one become unknown."""
        self._write(boundary_us, mid, fill=False)

    def record_until(self, boundary_us: int, mid: float | None) -> None:
        """``mid`` for every boundary after the last recorded one, up to ``boundary_us``."""
        self._write(boundary_us, mid, fill=True)

    def _write(self, boundary_us: int, mid: float | None, fill: bool) -> None:
        sec, rem = divmod(boundary_us, US_PER_S)
        if rem:
            raise ValueError(f"not a whole-second boundary: {boundary_us}")
        last = self._last
        if last is not None and sec <= last:
            return  # first write wins (see the module docstring)
        mid = _valid(mid)
        if last is None:
            start = sec  # nothing is known before the first boundary recorded
        else:
            start = last + 1
            oldest = sec - self._horizon + 1
            if start < oldest:
                # The gap is longer than the horizon: nothing held stays in it.
                self._clear()
                start = oldest if fill else sec
        gap_mid = mid if fill else None
        for s in range(start, sec):
            self._push(s, gap_mid)
        self._push(sec, mid)

    def _push(self, sec: int, mid: float | None) -> None:
        horizon = self._horizon
        secs = self._sec
        mids = self._mid
        rets = self._ret
        prev_slot = (sec - 1) % horizon
        prev = mids[prev_slot] if secs[prev_slot] == sec - 1 else None
        ret = math.log(mid / prev) if mid is not None and prev is not None else None
        for w in self._windows.values():
            leaving_slot = (sec - w.span) % horizon
            if secs[leaving_slot] == sec - w.span:
                old = rets[leaving_slot]
                if old is not None:
                    w.n -= 1
                    w.sum -= old
                    w.sum_sq -= old * old
            if ret is not None:
                w.n += 1
                w.sum += ret
                w.sum_sq += ret * ret
            w.since_resync += 1
        slot = sec % horizon
        secs[slot] = sec
        mids[slot] = mid
        rets[slot] = ret
        self._last = sec
        for w in self._windows.values():
            if w.n == 0:
                w.sum = w.sum_sq = 0.0
            elif sec % w.span == 0:
                # At whole multiples of the span, not every span pushes: the sums then depend on
                # the grid's content alone, not on when the grid started, so state rebuilt from
                # stored data is bit-identical to a grid that has run for days.
                self._resync(w, sec)

    def _resync(self, w: _ReturnWindow, last: int) -> None:
        known = [r for r in self._returns_ending(last, w.span) if r is not None]
        w.n = len(known)
        w.sum = math.fsum(known)
        w.sum_sq = math.fsum(r * r for r in known)
        w.since_resync = 0

    def _clear(self) -> None:
        horizon = self._horizon
        self._sec = [_NO_SECOND] * horizon
        self._mid = [None] * horizon
        self._ret = [None] * horizon
        for w in self._windows.values():
            w.clear()

    def reset(self) -> None:
        """Forget every boundary."""
        self._clear()
        self._last = None

    # -- reads ---------------------------------------------------------------------------------
    def at(self, boundary_us: int) -> float | None:
        """The mid as of ``boundary_us``; None when unknown, not a whole second, or out of the
        horizon (older than the last ``horizon_s`` recorded boundaries, or not recorded yet)."""
        sec, rem = divmod(boundary_us, US_PER_S)
        last = self._last
        if rem or last is None or sec > last or sec <= last - self._horizon:
            return None
        slot = sec % self._horizon
        return self._mid[slot] if self._sec[slot] == sec else None

    def return_moments(self, span_s: int, t: int, mid_t: float | None) -> ReturnMoments:
        """The known 1 s log returns ending at the ``span_s`` boundaries ``t - span_s + 1 s ..
        t``, where the mid at ``t`` is ``mid_t`` (the current mid) rather than the grid's.

        O(1) when ``span_s`` is one of ``return_spans_s`` and the grid's last boundary is ``t``
        or ``t - 1 s`` (the engine records up to ``t`` before computing); otherwise a scan of
        the grid. A ``t`` that is not a whole second has no known return.
        """
        if span_s < 1 or span_s >= self._horizon:
            raise ValueError(f"span_s must be in [1, {self._horizon}), got {span_s}")
        sec, rem = divmod(t, US_PER_S)
        last = self._last
        if rem or last is None:
            return _NO_RETURNS
        w = self._windows.get(span_s)
        if w is None or not (sec - 1 <= last <= sec):
            return self._scan(span_s, sec, mid_t)
        n, total, total_sq = w.n, w.sum, w.sum_sq
        # The window holds the returns ending in (last - span, last]; move it to (sec - span,
        # sec] with the return ending at sec taken from mid_t.
        if last == sec:
            out = self._ret[sec % self._horizon]
        else:
            leaving = sec - span_s
            slot = leaving % self._horizon
            out = self._ret[slot] if self._sec[slot] == leaving else None
        new = self._return_to(sec, mid_t)
        # Swap ``out`` for ``new``; equal values (often both 0.0) cancel and need no update.
        if out is not None and out != new:
            n -= 1
            total -= out
            total_sq -= out * out
            out = None
        if new is not None and out is None:
            n += 1
            total += new
            total_sq += new * new
        if n == 0:
            return _NO_RETURNS
        return ReturnMoments(n, total, total_sq)

    def _return_to(self, sec: int, mid: float | None) -> float | None:
        """ln(mid / mid as of sec - 1), or None when either is unknown."""
        mid = _valid(mid)
        if mid is None:
            return None
        prev = self.at((sec - 1) * US_PER_S)
        return None if prev is None else math.log(mid / prev)

    def _scan(self, span_s: int, sec: int, mid_t: float | None) -> ReturnMoments:
        known: list[float] = []
        prev = self.at((sec - span_s) * US_PER_S)
        for s in range(sec - span_s + 1, sec + 1):
            mid = _valid(mid_t) if s == sec else self.at(s * US_PER_S)
            if mid is not None and prev is not None:
                known.append(math.log(mid / prev))
            prev = mid
        if not known:
            return _NO_RETURNS
        return ReturnMoments(len(known), math.fsum(known), math.fsum(r * r for r in known))

    def _returns_ending(self, last: int, span: int) -> Iterable[float | None]:
        """Stored returns ending at the ``span`` boundaries up to ``last`` (None when unknown)."""
        horizon = self._horizon
        secs = self._sec
        rets = self._ret
        for s in range(last - span + 1, last + 1):
            slot = s % horizon
            yield rets[slot] if secs[slot] == s else None
