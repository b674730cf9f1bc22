"""In-process measurements behind /metrics and /stats, cheap enough for the hot path.

Nothing here talks to Prometheus: the live path only appends floats to lists and bumps dict
counters; ``metrics.py`` turns the structures into metric families at scrape time.

- ``Histogram``: fixed buckets. ``observe`` appends to a buffer (~40 ns); the buffer is folded
  into the bucket counts in bulk with numpy, when it fills or when read.
- ``MinuteRing``: keyed counts in per-minute buckets over the last day, for true sliding
  "last 1 h / 24 h" figures (to the minute: the current minute plus the previous ones).
- ``Telemetry``: one per runtime; what the live engine, the HTTP middleware, dataset builds and
  the other services report into.

Other parts report through these methods of ``Runtime.telemetry`` (documented in README,
"Metrics"): ``book_resync(symbol)``, ``quality_incident(symbol, kind)``,
``backfill_rows(symbol, kind, n)``, ``backfill_job(status)``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

US_PER_MIN = 60_000_000
FOLD_AT = 4096

COMPUTATION_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.07,
    0.1, 0.25, 1.0,
)  # fmt: skip
DELAY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.07, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
AGE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class Histogram:
    """Cumulative-bucket histogram (Prometheus ``le`` semantics: ``v <= bound``)."""

    __slots__ = ("_bounds", "_count", "_counts", "_scale", "_sum", "bounds", "buf")

    def __init__(self, bounds: Sequence[float], scale: float = 1.0) -> None:
        """``scale`` multiplies buffered values when folded: a hot path can append raw
        integers (e.g. µs) to ``buf`` and leave the conversion to the fold."""
        self.bounds = tuple(sorted(float(b) for b in bounds))
        self._scale = scale
        self._bounds = np.asarray(self.bounds)
        self._counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        self.buf: list[float] = []
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        buf = self.buf
        buf.append(value)
        if len(buf) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        buf = self.buf
        if not buf:
            return
        values = np.asarray(buf, dtype=np.float64)
        if self._scale != 1.0:
            values *= self._scale
        buf.clear()
        index = np.searchsorted(self._bounds, values, side="left")
        self._counts += np.bincount(index, minlength=len(self._counts))
        self._sum += float(values.sum())
        self._count += int(values.size)

    @property
    def count(self) -> int:
        self._fold()
        return self._count

    @property
    def sum(self) -> float:
        self._fold()
        return self._sum

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count <= le), ..., ("+Inf", total)]`` as Prometheus exposes them."""
        self._fold()
        running = np.cumsum(self._counts)
        out = [(_fmt_bound(b), int(c)) for b, c in zip(self.bounds, running[:-1], strict=True)]
        out.append(("+Inf", int(running[-1])))
        return out

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the ``q`` quantile (None when empty)."""
        self._fold()
        if self._count == 0:
            return None
        running = np.cumsum(self._counts)
        index = int(np.searchsorted(running, q * self._count, side="left"))
        return self.bounds[index] if index < len(self.bounds) else float("inf")


def _fmt_bound(value: float) -> str:
    return repr(value)


class LabeledHistograms:
    """Histograms keyed by a label tuple; ``get`` once and keep the result on a hot path."""

    __slots__ = ("_bounds", "_scale", "by_key")

    def __init__(self, bounds: Sequence[float], scale: float = 1.0) -> None:
        self._bounds = tuple(bounds)
        self._scale = scale
        self.by_key: dict[tuple[str, ...], Histogram] = {}

    def get(self, *key: str) -> Histogram:
        hist = self.by_key.get(key)
        if hist is None:
            hist = self.by_key[key] = Histogram(self._bounds, self._scale)
        return hist

    def observe(self, key: tuple[str, ...], value: float) -> None:
        hist = self.by_key.get(key)
        if hist is None:
            hist = self.by_key[key] = Histogram(self._bounds, self._scale)
        hist.observe(value)


class MinuteRing:
    """Keyed counts per minute of a clock the caller supplies (µs), kept for ``minutes``."""

    __slots__ = ("_past", "current", "minute", "next_roll_us")

    def __init__(self, minutes: int = 1440) -> None:
        self._past: deque[tuple[int, dict[Any, float]]] = deque(maxlen=minutes)
        self.current: dict[Any, float] = {}
        self.minute = -1
        self.next_roll_us = -1  # the first add rolls

    def roll(self, t_us: int) -> None:
        """Start the minute of ``t_us`` (callers check ``t_us >= next_roll_us`` first)."""
        minute = t_us // US_PER_MIN
        if minute <= self.minute:
            return
        if self.current:
            self._past.append((self.minute, self.current))
        self.current = {}
        self.minute = minute
        self.next_roll_us = (minute + 1) * US_PER_MIN

    def add(self, key: Any, t_us: int, n: float = 1) -> None:
        if t_us >= self.next_roll_us:
            self.roll(t_us)
        cur = self.current
        cur[key] = cur.get(key, 0) + n

    def totals(self, now_us: int, minutes: int) -> dict[Any, float]:
        """Per key, the sum over the minute of ``now_us`` and the ``minutes - 1`` before it."""
        first = now_us // US_PER_MIN - minutes + 1
        out: Counter[Any] = Counter()
        for minute, counts in self._past:
            if minute >= first:
                out.update(counts)
        if self.minute >= first:
            out.update(self.current)
        return dict(out)


@dataclass(slots=True)
class QueueDepth:
    """What the broker says about a consumed queue (refreshed by the statistics poller)."""

    queue: str
    messages: int | None
    consumers: int | None
    state: str  # "consuming" | "idle" | "missing" | "unreachable"
    checked_at_us: int


class Telemetry:
    """Everything /metrics and /stats report that the runtime's parts do not already count."""

    def __init__(self) -> None:
        self.computation = LabeledHistograms(COMPUTATION_BUCKETS)  # (interval,)
        self.publish_delay = LabeledHistograms(DELAY_BUCKETS)  # (interval,)
        self.message_age = LabeledHistograms(AGE_BUCKETS, scale=1e-6)  # (queue,), fed µs
        self.http = LabeledHistograms(HTTP_BUCKETS)  # (method, route, status)
        self.dataset_build_seconds = LabeledHistograms(BUILD_BUCKETS)  # (status,)
        self.dataset_builds: Counter[str] = Counter()
        self.messages: Counter[tuple[str, str]] = Counter()  # (queue, outcome)
        self.redelivered: Counter[str] = Counter()
        self.book_resyncs: Counter[str] = Counter()
        self.quality_incidents: Counter[tuple[str, str]] = Counter()
        self.backfill_rows_total: Counter[tuple[str, str]] = Counter()
        self.backfill_jobs: Counter[str] = Counter()
        self.vectors_by_symbol: Counter[tuple[str, int]] = Counter()  # since start
        self.events_window = MinuteRing()  # symbol -> events
        self.vectors_window = MinuteRing()  # (symbol, interval) -> vectors
        self.latency_window = MinuteRing(minutes=10)  # "sum_us" / "n" of computation time
        self.queue_depths: dict[str, QueueDepth] = {}
        self.active_builds: set[str] = set()
        self.last_build_duration_s: float | None = None
        self._age_by_queue: dict[str, list[float]] = {}
        self._labels: dict[int, str] = {}

    # -- hot path (live engine) ----------------------------------------------------------------
    def on_message(self, queue: str, events: Iterable[Any], t_us: int) -> None:
        """One consumed message that was applied: its events' age and the sliding counts."""
        # Raw µs straight into the histogram's buffer: no call, no float maths per event.
        ages = self._age_by_queue.get(queue)
        if ages is None:
            ages = self._age_by_queue[queue] = self.message_age.get(queue).buf
        ring = self.events_window
        if t_us >= ring.next_roll_us:
            ring.roll(t_us)
        cur = ring.current
        for event in events:
            ages.append(t_us - event.exchange_ts)
            symbol = event.symbol
            cur[symbol] = cur.get(symbol, 0) + 1
        if len(ages) >= FOLD_AT:
            self.message_age.get(queue).cumulative()  # folds the buffer

    def on_vectors(self, vectors: Iterable[Any]) -> None:
        ring = self.vectors_window
        latency = self.latency_window
        labels = self._labels
        for v in vectors:
            label = labels.get(v.interval_s) or self._label(v.interval_s)
            t = v.timestamp
            if t >= ring.next_roll_us:
                ring.roll(t)
                latency.roll(t)
            key = (v.symbol, label)
            ring.current[key] = ring.current.get(key, 0) + 1
            self.vectors_by_symbol[(v.symbol, v.interval_s)] += 1
            self.computation.observe((label,), v.computation_us * 1e-6)
            lat = latency.current
            lat["sum_us"] = lat.get("sum_us", 0.0) + v.computation_us
            lat["n"] = lat.get("n", 0) + 1

    def on_published(self, vector: Any, now_us: int) -> None:
        label = self._labels.get(vector.interval_s) or self._label(vector.interval_s)
        self.publish_delay.observe((label,), (now_us - vector.timestamp) * 1e-6)

    def _label(self, interval_s: int) -> str:
        from feature_service.engine.vector import interval_label

        label = self._labels[interval_s] = interval_label(interval_s)
        return label

    # -- reported by other parts -----------------------------------------------------------------
    def book_resync(self, symbol: str) -> None:
        self.book_resyncs[symbol] += 1

    def quality_incident(self, symbol: str, kind: str) -> None:
        self.quality_incidents[(symbol, kind)] += 1

    def backfill_rows(self, symbol: str, kind: str, n: int) -> None:
        self.backfill_rows_total[(symbol, kind)] += n

    def backfill_job(self, status: str) -> None:
        self.backfill_jobs[status] += 1

    def build_started(self, rec: Any, trace_id: str) -> None:
        """``DatasetService`` observer: a build began."""
        self.active_builds.add(str(rec.id))

    def build_finished(self, rec: Any, duration_s: float, trace_id: str) -> None:
        """``DatasetService`` observer: a build ended (ready or failed)."""
        was_running = str(rec.id) in self.active_builds
        self.active_builds.discard(str(rec.id))
        self.dataset_builds[rec.status] += 1
        if was_running:  # refused before it ran: no duration to speak of
            self.dataset_build_seconds.observe((rec.status,), duration_s)
            self.last_build_duration_s = duration_s

    # -- derived ---------------------------------------------------------------------------------
    def average_latency_ms(self, now_us: int, minutes: int = 5) -> float | None:
        totals = self.latency_window.totals(now_us, minutes)
        n = totals.get("n", 0)
        return None if not n else round(totals["sum_us"] / n / 1000.0, 4)
