"""Time windows of trades with running sums: volume, taker buy / sell volume, notional, count.

A window of span ``W`` at close time ``t`` covers the trades with ``receive_ts`` in
``[t - W, t)``. Eviction is driven by ``t``, never by the last trade's time: a quiet market
reports zero volume (and no trades), not the activity of a minute ago.

How it works. Every trade is appended once to a shared buffer (parallel lists, oldest first).
Each span keeps two cursors into it: ``tail`` (first trade not yet counted) and ``head`` (first
trade still counted), and running sums of what lies between. ``advance(t)`` moves every span:
the tail forward over trades received before ``t`` (added to the sums), then the head forward
over trades received before ``t - W`` (subtracted). Each trade therefore enters and leaves each
span once: O(1) amortised per trade and span, and a read is O(1). The buffer's prefix that even
the longest span has left is dropped in batches.

Counting lazily (at ``advance``, not at ``add``) is also what keeps trades received at or after
``t`` out of a window at ``t``. They cannot exist in normal operation -- the engine closes ``t``
before it applies any event received at ``t`` or later -- but a caller that adds first and asks
later still gets the right answer, and such a trade is counted by the next ``t`` after it.

Precision. Sums are compensated (Neumaier): each keeps the rounding error of every addition and
subtraction in a second float, so a huge trade leaving the window does not leave its rounding
error behind in the sums of the small ones that remain. Each side also keeps an exact trade
count, and a side (or the whole window) whose count drops to zero has its sums reset to exactly
0.0 -- so an empty window reports 0.0, never -1e-17, and "no sell volume" is an exact 0 that
``buy_sell_volume_ratio`` can test.

Ordering. Trades must be added in ``receive_ts`` order. One received earlier than the previous
trade (an unsorted input file) is kept, never dropped, but stamped with the previous trade's
time so the buffer stays sorted; it is counted in ``late``.

``t`` never goes backwards: ``advance`` ignores an older ``t`` (the engine may report an
out-of-order event's time), and ``stats`` refuses one, since the trades that left the window
are gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from feature_service.market.events import Side, Trade

_COMPACT_MIN = 1024  # drop the buffer's dead prefix once it is this long and half the buffer


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Totals over one window. Volumes are base quantity; ``notional`` is Σ price·size (quote)."""

    volume: float
    buy_volume: float  # taker buys
    sell_volume: float  # taker sells
    notional: float
    count: int
    buy_count: int
    sell_count: int


EMPTY_STATS = TradeStats(0.0, 0.0, 0.0, 0.0, 0, 0, 0)


class _Span:
    """One window's cursors and compensated sums (``x_s + x_c`` is the value of sum ``x``)."""

    __slots__ = (
        "buy_c",
        "buy_n",
        "buy_s",
        "head",
        "notional_c",
        "notional_s",
        "sell_c",
        "sell_n",
        "sell_s",
        "span_us",
        "tail",
    )

    def __init__(self, span_us: int) -> None:
        self.span_us = span_us
        self.head = 0
        self.tail = 0
        self.reset_sums()

    def reset_sums(self) -> None:
        self.buy_s = self.buy_c = 0.0
        self.sell_s = self.sell_c = 0.0
        self.notional_s = self.notional_c = 0.0
        self.buy_n = 0
        self.sell_n = 0


class TradeWindows:
    """Running trade sums over several spans (microseconds) of one symbol's trades."""

    __slots__ = ("_buy", "_notional", "_now", "_size", "_spans", "_ts", "late", "longest")

    def __init__(self, spans_us: Iterable[int]) -> None:
        spans = sorted({int(s) for s in spans_us})
        if not spans or spans[0] <= 0:
            raise ValueError(f"spans must be positive microseconds, got {spans}")
        self._spans: dict[int, _Span] = {s: _Span(s) for s in spans}
        self.longest = spans[-1]
        self._ts: list[int] = []
        self._size: list[float] = []
        self._notional: list[float] = []
        self._buy: list[bool] = []
        self._now: int | None = None  # latest t the windows were advanced to
        self.late = 0  # trades received before the previous trade (re-stamped, see module doc)

    @property
    def spans_us(self) -> tuple[int, ...]:
        return tuple(self._spans)

    @property
    def now(self) -> int | None:
        """The latest close time the windows were advanced to (None before the first)."""
        return self._now

    def __len__(self) -> int:
        """Trades held in the buffer (those the longest window may still need)."""
        return len(self._ts) - self._spans[self.longest].head

    def ensure_spans(self, spans_us: Iterable[int]) -> None:
        """Track more spans from now on (a new registry version). A new span starts from the
        trades still held, so it is complete at once when it is no longer than the longest
        span tracked so far, and fills in over its own length otherwise."""
        start = self._spans[self.longest].head
        for span in sorted({int(s) for s in spans_us} - set(self._spans)):
            if span <= 0:
                raise ValueError(f"spans must be positive microseconds, got {span}")
            sp = _Span(span)
            sp.head = sp.tail = start
            self._spans[span] = sp
            self.longest = max(self.longest, span)
        # the new spans count the held trades at the next advance: let it run
        self._now = None if self._now is None else self._now - 1

    def add(self, trade: Trade) -> None:
        """Append one trade. O(1); it is counted by the first ``advance(t)`` with ``t`` after it."""
        ts_list = self._ts
        ts = trade.receive_ts
        if ts_list and ts < ts_list[-1]:
            ts = ts_list[-1]
            self.late += 1
        ts_list.append(ts)
        size = trade.size
        self._size.append(size)
        self._notional.append(trade.price * size)
        self._buy.append(trade.side is Side.BUY)

    def advance(self, t: int) -> None:
        """Move every window to cover ``[t - span, t)``. An older ``t`` than before is ignored."""
        now = self._now
        if now is not None and t <= now:
            return
        self._now = t
        ts = self._ts
        sizes = self._size
        notionals = self._notional
        buys = self._buy
        n_trades = len(ts)
        for sp in self._spans.values():
            tail = sp.tail
            head = sp.head
            cutoff = t - sp.span_us
            if tail < n_trades and ts[tail] < t:
                buy_s, buy_c, sell_s, sell_c = sp.buy_s, sp.buy_c, sp.sell_s, sp.sell_c
                not_s, not_c = sp.notional_s, sp.notional_c
                buy_n, sell_n = sp.buy_n, sp.sell_n
                while tail < n_trades and ts[tail] < t:
                    x = sizes[tail]
                    if buys[tail]:
                        s = buy_s + x
                        buy_c += (buy_s - s) + x if abs(buy_s) >= abs(x) else (x - s) + buy_s
                        buy_s = s
                        buy_n += 1
                    else:
                        s = sell_s + x
                        sell_c += (sell_s - s) + x if abs(sell_s) >= abs(x) else (x - s) + sell_s
                        sell_s = s
                        sell_n += 1
                    x = notionals[tail]
                    s = not_s + x
                    not_c += (not_s - s) + x if abs(not_s) >= abs(x) else (x - s) + not_s
                    not_s = s
                    tail += 1
                sp.buy_s, sp.buy_c, sp.sell_s, sp.sell_c = buy_s, buy_c, sell_s, sell_c
                sp.notional_s, sp.notional_c = not_s, not_c
                sp.buy_n, sp.sell_n = buy_n, sell_n
                sp.tail = tail
            if head < tail and ts[head] < cutoff:
                buy_s, buy_c, sell_s, sell_c = sp.buy_s, sp.buy_c, sp.sell_s, sp.sell_c
                not_s, not_c = sp.notional_s, sp.notional_c
                buy_n, sell_n = sp.buy_n, sp.sell_n
                while head < tail and ts[head] < cutoff:
                    x = -sizes[head]
                    if buys[head]:
                        s = buy_s + x
                        buy_c += (buy_s - s) + x if abs(buy_s) >= abs(x) else (x - s) + buy_s
                        buy_s = s
                        buy_n -= 1
                    else:
                        s = sell_s + x
                        sell_c += (sell_s - s) + x if abs(sell_s) >= abs(x) else (x - s) + sell_s
                        sell_s = s
                        sell_n -= 1
                    x = -notionals[head]
                    s = not_s + x
                    not_c += (not_s - s) + x if abs(not_s) >= abs(x) else (x - s) + not_s
                    not_s = s
                    head += 1
                sp.head = head
                if head == tail:
                    sp.reset_sums()
                    continue
                # A side that holds no trade any more sums to exactly 0, whatever the rounding.
                if buy_n == 0:
                    buy_s = buy_c = 0.0
                if sell_n == 0:
                    sell_s = sell_c = 0.0
                sp.buy_s, sp.buy_c, sp.sell_s, sp.sell_c = buy_s, buy_c, sell_s, sell_c
                sp.notional_s, sp.notional_c = not_s, not_c
                sp.buy_n, sp.sell_n = buy_n, sell_n
        self._compact()

    def stats(self, span_us: int, t: int) -> TradeStats:
        """Totals over ``[t - span_us, t)``. ``t`` must not be older than any earlier ``t``."""
        sp = self._spans.get(span_us)
        if sp is None:
            raise KeyError(f"span {span_us} us is not tracked; tracked: {tuple(self._spans)}")
        now = self._now
        if now is not None and t < now:
            raise ValueError(f"t went backwards: {t} < {now} (trades that left are gone)")
        self.advance(t)
        buy_n = sp.buy_n
        sell_n = sp.sell_n
        if buy_n == 0 and sell_n == 0:
            return EMPTY_STATS
        buy = sp.buy_s + sp.buy_c
        sell = sp.sell_s + sp.sell_c
        return TradeStats(
            volume=buy + sell,
            buy_volume=buy,
            sell_volume=sell,
            notional=sp.notional_s + sp.notional_c,
            count=buy_n + sell_n,
            buy_count=buy_n,
            sell_count=sell_n,
        )

    def reset(self) -> None:
        """Forget every trade (the clock ``now`` is kept: time does not go back)."""
        self._ts.clear()
        self._size.clear()
        self._notional.clear()
        self._buy.clear()
        for sp in self._spans.values():
            sp.head = sp.tail = 0
            sp.reset_sums()

    def _compact(self) -> None:
        """Drop trades every window has left, in batches so the cost is amortised O(1)."""
        dead = self._spans[self.longest].head  # the longest span's head is the smallest
        if dead < _COMPACT_MIN or dead * 2 < len(self._ts):
            return
        del self._ts[:dead]
        del self._size[:dead]
        del self._notional[:dead]
        del self._buy[:dead]
        for sp in self._spans.values():
            sp.head -= dead
            sp.tail -= dead
