"""One symbol's order book, kept from Bybit V5 ``orderbook.{depth}`` snapshots and deltas.

Pure: no I/O and no clock; every time comes from the events (``receive_ts``).

Sequencing (Bybit V5 market data notes, §1.1 and §2.1):

- Any snapshot replaces the book, whatever its ``u``: ``u == 1`` (exchange restart) and a
  repeated ``u`` (depth-1 streams re-send the top of book every 3 s with the same ``u``) are
  normal. A snapshot is never stale.
- A delta needs a baseline: before the first snapshot, and after a gap until the next snapshot,
  deltas are ignored (``WAITING_FOR_SNAPSHOT``).
- ``u <= last_u``: stale or duplicate delta, skipped; the book is unchanged.
- ``u > last_u + 1``: gap. The book is cleared and ``OUT_OF_SYNC`` until the next snapshot.
- A ``u`` far ahead is never a new baseline that blocks valid data: the state before a gap,
  and before a snapshot that jumped ahead of an in-sequence book, is kept aside (a *shadow*,
  moved, not copied). Deltas that continue the shadow's sequence are applied to it; the
  shadow becomes the book again after the first such delta when the book is out of sync
  (a corrupted ``u`` on one delta) or after ``SHADOW_PROMOTE_RUN`` of them when a snapshot had
  jumped ahead (a corrupted snapshot ``u`` would otherwise make every valid delta "stale").
  The state is always the exact result of one contiguous sequence, so resuming is safe. A
  delta applied to the book itself drops the shadow.
- Otherwise each level is applied: size 0 deletes (deleting a missing level is fine), any other
  size inserts or overwrites.

Content checks after every applied event:

- ``EMPTY`` when either side holds no level: mid and spread need both sides, so a one-sided book
  is as unusable as an empty one. Deltas are still applied in sequence (the book is in sync with
  the exchange, it is just one-sided) and a delta that fills the missing side makes it usable.
- ``CROSSED`` when ``best_bid >= best_ask``. A later delta that un-crosses it, or a snapshot,
  makes it usable again.

Only ``SYNCED`` is usable; every read accessor returns ``None`` / ``[]`` otherwise.

Data structure: per side a ``dict`` price -> size plus a ``SortedList`` of the prices. That is
what ``SortedDict`` is internally, but inlining it keeps the per-level hot path to one dict
probe plus, only for an inserted or deleted price, one O(log n) list update, with no Python-level
``__setitem__`` override in between. Best prices are ``prices[0]`` / ``prices[-1]`` (O(1)); top-N
walks the sorted list lazily from the best end, O(N) with no sort.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from dataclasses import dataclass
from itertools import islice

from sortedcontainers import SortedList

from feature_service.market.events import BookDelta, BookSnapshot, Level

DEFAULT_CHURN_WINDOW_US = 300_000_000
# Contiguous deltas continuing the pre-snapshot sequence that prove a snapshot's u was wrong.
SHADOW_PROMOTE_RUN = 3


class BookStatus(enum.StrEnum):
    NEVER_SYNCED = "never_synced"  # no snapshot yet
    SYNCED = "synced"  # in sequence, both sides present, not crossed: the only usable state
    OUT_OF_SYNC = "out_of_sync"  # a sequence gap was seen; waiting for a snapshot
    EMPTY = "empty"  # in sequence, but at least one side holds no level
    CROSSED = "crossed"  # in sequence, but best_bid >= best_ask


class BookUpdate(enum.StrEnum):
    """What one ``apply`` did. The resulting state is always in ``OrderBook.status``."""

    SNAPSHOT_APPLIED = "snapshot_applied"  # book replaced; usable
    DELTA_APPLIED = "delta_applied"  # levels applied; usable
    EMPTY_SNAPSHOT = "empty_snapshot"  # book replaced, but a side is empty (status EMPTY)
    SIDE_EMPTY = "side_empty"  # delta applied, but a side is empty (status EMPTY)
    CROSSED = "crossed"  # snapshot or delta applied, and the book is crossed (status CROSSED)
    STALE_SKIPPED = "stale_skipped"  # delta with u <= last u; book unchanged
    GAP_DETECTED = "gap_detected"  # delta with u > last u + 1; book cleared, OUT_OF_SYNC
    WAITING_FOR_SNAPSHOT = "waiting_for_snapshot"  # delta before any snapshot or after a gap

    @property
    def applied(self) -> bool:
        """True when the event's levels went into the book."""
        return self in _APPLIED


_APPLIED = frozenset(
    {
        BookUpdate.SNAPSHOT_APPLIED,
        BookUpdate.DELTA_APPLIED,
        BookUpdate.EMPTY_SNAPSHOT,
        BookUpdate.SIDE_EMPTY,
        BookUpdate.CROSSED,
    }
)


@dataclass(slots=True)
class BookStats:
    """Counters since construction.

    ``resumed`` counts returns to the state kept aside before a gap or a jumped snapshot.
    ``crossed`` counts episodes (transitions into CROSSED), not every update while crossed.
    ``empty_snapshots`` counts snapshots with at least one empty side (they are also counted in
    ``snapshots``). ``ignored_while_unsynced`` counts deltas before the first snapshot and
    deltas after a gap (the gapped delta itself is counted in ``gaps`` only).
    """

    snapshots: int = 0
    deltas_applied: int = 0
    stale_skipped: int = 0
    gaps: int = 0
    ignored_while_unsynced: int = 0
    crossed: int = 0
    empty_snapshots: int = 0
    resumed: int = 0


class OrderBook:
    """One symbol's book. Feed every ``BookSnapshot`` / ``BookDelta`` of one topic to ``apply``.

    Best-price churn: whenever an applied event leaves the book usable with a best bid or best
    ask different from the last usable state, the event's ``receive_ts`` is recorded once (an
    event that moves both sides is one change). The first usable state ever is not a change. A
    book that becomes usable again (snapshot after a gap, un-crossing delta, ...) is compared
    with the last usable best prices from before the outage: same prices, no change; different,
    one change at the event that restored it. Moves while unusable are unknown and not counted.
    Changes older than ``churn_window_us`` before the latest ``receive_ts`` seen are pruned.
    """

    __slots__ = (
        "_ask_prices",
        "_ask_sizes",
        "_bid_prices",
        "_bid_sizes",
        "_change_head",
        "_change_ts",
        "_latest_ts",
        "_prev_best_ask",
        "_prev_best_bid",
        "_shadow",
        "_shadow_run",
        "churn_window_us",
        "last_update_ts",
        "max_levels",
        "seq",
        "stats",
        "status",
        "symbol",
        "update_id",
        "valid_since",
    )

    def __init__(
        self,
        symbol: str,
        churn_window_us: int = DEFAULT_CHURN_WINDOW_US,
        max_levels: int | None = None,
    ) -> None:
        if churn_window_us <= 0:
            raise ValueError(f"churn_window_us must be positive, got {churn_window_us}")
        if max_levels is not None and max_levels < 1:
            raise ValueError(f"max_levels must be >= 1 or None, got {max_levels}")
        self.symbol = symbol
        self.churn_window_us = churn_window_us
        self.max_levels = max_levels
        self.status = BookStatus.NEVER_SYNCED
        self.update_id: int | None = None
        self.seq: int | None = None
        self.last_update_ts: int | None = None  # receive_ts of the last applied event
        self.valid_since: int | None = None
        self.stats = BookStats()
        self._bid_sizes: dict[float, float] = {}
        self._ask_sizes: dict[float, float] = {}
        self._bid_prices: SortedList = SortedList()  # ascending; best bid is the last
        self._ask_prices: SortedList = SortedList()  # ascending; best ask is the first
        self._prev_best_bid: float | None = None  # best prices of the last usable state
        self._prev_best_ask: float | None = None
        # Change times, ascending; entries before _change_head are pruned (compacted lazily so
        # pruning is amortised O(1) and queries can bisect a plain list).
        self._change_ts: list[int] = []
        self._change_head = 0
        self._latest_ts: int | None = None
        # (bid sizes, bid prices, ask sizes, ask prices, u, seq) kept aside; see the docstring
        self._shadow: (
            tuple[dict[float, float], SortedList, dict[float, float], SortedList, int, int | None]
            | None
        ) = None
        self._shadow_run = 0

    # ----------------------------------------------------------------------------- updates

    def apply(self, event: BookSnapshot | BookDelta) -> BookUpdate:
        """Apply one snapshot or delta and report what happened (see the module docstring).

        Raises ``ValueError`` for another symbol's event: routing is the caller's job, and
        mixing two books would corrupt both silently.
        """
        if event.symbol != self.symbol:
            raise ValueError(f"event for {event.symbol!r} applied to the {self.symbol!r} book")
        ts = event.receive_ts
        if self._latest_ts is None or ts > self._latest_ts:
            self._latest_ts = ts
            self._prune_changes(ts - self.churn_window_us)

        if isinstance(event, BookSnapshot):
            return self._apply_snapshot(event)
        return self._apply_delta(event)

    def _apply_snapshot(self, event: BookSnapshot) -> BookUpdate:
        self.stats.snapshots += 1
        last_u = self.update_id
        if (
            last_u is not None
            and event.update_id > last_u + 1
            and self.status in (BookStatus.SYNCED, BookStatus.EMPTY, BookStatus.CROSSED)
        ):
            self._keep_shadow(last_u)
        else:
            self._shadow = None
        _replace_side(self._bid_sizes, self._bid_prices, event.bids)
        _replace_side(self._ask_sizes, self._ask_prices, event.asks)
        self.update_id = event.update_id
        self.seq = event.seq
        self.last_update_ts = event.receive_ts
        update = self._after_change(event.receive_ts, BookUpdate.SNAPSHOT_APPLIED)
        if update is BookUpdate.SIDE_EMPTY:
            self.stats.empty_snapshots += 1
            return BookUpdate.EMPTY_SNAPSHOT
        return update

    def _apply_delta(self, event: BookDelta) -> BookUpdate:
        status = self.status
        u = event.update_id
        shadow = self._shadow
        in_sequence = status is not BookStatus.NEVER_SYNCED and status is not BookStatus.OUT_OF_SYNC
        if (
            shadow is not None
            and u == shadow[4] + 1
            and not (in_sequence and u == (self.update_id or 0) + 1)
        ):
            resumed = self._advance_shadow(event, not in_sequence)
            if resumed is not None:
                return resumed
            self.stats.stale_skipped += 1
            return BookUpdate.STALE_SKIPPED
        if not in_sequence:
            self.stats.ignored_while_unsynced += 1
            return BookUpdate.WAITING_FOR_SNAPSHOT
        last_u = self.update_id or 0  # always set here: a snapshot was applied
        if u <= last_u:
            self.stats.stale_skipped += 1
            return BookUpdate.STALE_SKIPPED
        if u > last_u + 1:
            self.stats.gaps += 1
            # Nothing held is trustworthy for the new sequence; the state is kept aside in case
            # this u was the bad one and the old sequence goes on.
            self._keep_shadow(last_u)
            self._set_status(BookStatus.OUT_OF_SYNC, event.receive_ts)
            return BookUpdate.GAP_DETECTED
        self._shadow = None

        self.stats.deltas_applied += 1
        if event.bids:
            _apply_levels(self._bid_sizes, self._bid_prices, event.bids)
        if event.asks:
            _apply_levels(self._ask_sizes, self._ask_prices, event.asks)
        self.update_id = u
        self.seq = event.seq
        self.last_update_ts = event.receive_ts
        return self._after_change(event.receive_ts, BookUpdate.DELTA_APPLIED)

    def _keep_shadow(self, last_u: int) -> None:
        """Move the current levels aside (the book continues with empty sides)."""
        self._shadow = (
            self._bid_sizes,
            self._bid_prices,
            self._ask_sizes,
            self._ask_prices,
            last_u,
            self.seq,
        )
        self._shadow_run = 0
        self._bid_sizes, self._bid_prices = {}, SortedList()
        self._ask_sizes, self._ask_prices = {}, SortedList()

    def _advance_shadow(self, event: BookDelta, promote_now: bool) -> BookUpdate | None:
        """Apply a delta that continues the shadow's sequence; promote the shadow to be the
        book when that is proven. Returns the update when promoted, else None."""
        shadow = self._shadow
        assert shadow is not None
        bid_sizes, bid_prices, ask_sizes, ask_prices, _, _ = shadow
        if event.bids:
            _apply_levels(bid_sizes, bid_prices, event.bids)
        if event.asks:
            _apply_levels(ask_sizes, ask_prices, event.asks)
        self._shadow = (bid_sizes, bid_prices, ask_sizes, ask_prices, event.update_id, event.seq)
        self._shadow_run += 1
        if not promote_now and self._shadow_run < SHADOW_PROMOTE_RUN:
            return None
        self._shadow = None
        self._bid_sizes, self._bid_prices = bid_sizes, bid_prices
        self._ask_sizes, self._ask_prices = ask_sizes, ask_prices
        self.update_id = event.update_id
        self.seq = event.seq
        self.last_update_ts = event.receive_ts
        self.stats.resumed += 1
        self.stats.deltas_applied += 1
        return self._after_change(event.receive_ts, BookUpdate.DELTA_APPLIED)

    def _after_change(self, ts: int, ok: BookUpdate) -> BookUpdate:
        """Trim, classify the content, track best-price changes. Returns ``ok`` when usable."""
        max_levels = self.max_levels
        if max_levels is not None:
            if len(self._bid_prices) > max_levels:
                # Worst bids are the lowest prices, at the front.
                _trim(self._bid_sizes, self._bid_prices, 0, len(self._bid_prices) - max_levels)
            if len(self._ask_prices) > max_levels:
                _trim(self._ask_sizes, self._ask_prices, max_levels, len(self._ask_prices))
        bid_prices = self._bid_prices
        ask_prices = self._ask_prices
        if not bid_prices or not ask_prices:
            self._set_status(BookStatus.EMPTY, ts)
            return BookUpdate.SIDE_EMPTY
        best_bid = bid_prices[-1]
        best_ask = ask_prices[0]
        if best_bid >= best_ask:
            if self.status is not BookStatus.CROSSED:
                self.stats.crossed += 1
            self._set_status(BookStatus.CROSSED, ts)
            return BookUpdate.CROSSED
        self._set_status(BookStatus.SYNCED, ts)
        if best_bid != self._prev_best_bid or best_ask != self._prev_best_ask:
            if self._prev_best_bid is not None:
                self._record_change(ts)
            self._prev_best_bid = best_bid
            self._prev_best_ask = best_ask
        return ok

    def _set_status(self, status: BookStatus, ts: int) -> None:
        if status is self.status:
            return
        if status is BookStatus.SYNCED:
            self.valid_since = ts
        elif self.status is BookStatus.SYNCED:
            self.valid_since = None
        self.status = status

    def _record_change(self, ts: int) -> None:
        changes = self._change_ts
        # Receive stamps could step back (wall clock adjusted); clamping keeps the list sorted
        # so queries can bisect it.
        if changes and ts < changes[-1]:
            ts = changes[-1]
        changes.append(ts)

    def _prune_changes(self, cutoff: int) -> None:
        changes = self._change_ts
        head = self._change_head
        if head < len(changes) and changes[head] < cutoff:
            head = bisect_left(changes, cutoff, head)
            if head > 64 and head * 2 > len(changes):
                del changes[:head]
                head = 0
            self._change_head = head

    # ----------------------------------------------------------------------------- reads

    @property
    def usable(self) -> bool:
        return self.status is BookStatus.SYNCED

    def best_bid(self) -> float | None:
        if self.status is not BookStatus.SYNCED:
            return None
        return self._bid_prices[-1]

    def best_ask(self) -> float | None:
        if self.status is not BookStatus.SYNCED:
            return None
        return self._ask_prices[0]

    def mid(self) -> float | None:
        if self.status is not BookStatus.SYNCED:
            return None
        return (self._bid_prices[-1] + self._ask_prices[0]) / 2.0

    def spread(self) -> float | None:
        if self.status is not BookStatus.SYNCED:
            return None
        return self._ask_prices[0] - self._bid_prices[-1]

    def top_bids(self, n: int) -> list[Level]:
        """Up to ``n`` bid levels, highest price first; ``[]`` when unusable."""
        if self.status is not BookStatus.SYNCED or n <= 0:
            return []
        sizes = self._bid_sizes
        return [(p, sizes[p]) for p in islice(reversed(self._bid_prices), n)]

    def top_asks(self, n: int) -> list[Level]:
        """Up to ``n`` ask levels, lowest price first; ``[]`` when unusable."""
        if self.status is not BookStatus.SYNCED or n <= 0:
            return []
        sizes = self._ask_sizes
        return [(p, sizes[p]) for p in islice(self._ask_prices, n)]

    @property
    def bid_depth_levels(self) -> int:
        """Number of bid levels held (whatever the status; 0 after a gap)."""
        return len(self._bid_prices)

    @property
    def ask_depth_levels(self) -> int:
        """Number of ask levels held (whatever the status; 0 after a gap)."""
        return len(self._ask_prices)

    def depth_levels(self) -> tuple[int, int]:
        """``(bid levels, ask levels)`` held."""
        return len(self._bid_prices), len(self._ask_prices)

    def top_of_book(self) -> tuple[float | None, float | None]:
        """Best bid and best ask held, whatever the status (a crossed book's prices are what
        the quality monitor reports). Features must use ``best_bid`` / ``best_ask``."""
        bid = self._bid_prices[-1] if self._bid_prices else None
        ask = self._ask_prices[0] if self._ask_prices else None
        return bid, ask

    def held_levels(self) -> tuple[list[Level], list[Level]]:
        """Every level held, best first, whatever the status: for inspection and tests only.
        Features must use ``top_bids`` / ``top_asks``, which respect ``usable``."""
        bid_sizes = self._bid_sizes
        ask_sizes = self._ask_sizes
        return (
            [(p, bid_sizes[p]) for p in reversed(self._bid_prices)],
            [(p, ask_sizes[p]) for p in self._ask_prices],
        )

    def best_changes_between(self, t0: int, t1: int) -> int:
        """Best-price changes with receive time in ``[t0, t1)``. O(log n).

        Only the last ``churn_window_us`` before the latest event are kept; an older ``t0``
        silently counts from the pruning horizon.
        """
        if t1 <= t0:
            return 0
        changes = self._change_ts
        head = self._change_head
        return bisect_left(changes, t1, head) - bisect_left(changes, t0, head)


def _replace_side(sizes: dict[float, float], prices: SortedList, levels: list[Level]) -> None:
    sizes.clear()
    for price, size in levels:
        # A zero size has no meaning in a snapshot; keeping it would leave a phantom level.
        if size:
            sizes[price] = size
        else:
            sizes.pop(price, None)
    prices.clear()
    prices.update(sizes)


def _apply_levels(sizes: dict[float, float], prices: SortedList, levels: list[Level]) -> None:
    for price, size in levels:
        if size:
            if price not in sizes:
                prices.add(price)
            sizes[price] = size
        elif sizes.pop(price, None) is not None:
            prices.remove(price)


def _trim(sizes: dict[float, float], prices: SortedList, start: int, stop: int) -> None:
    for price in prices[start:stop]:
        del sizes[price]
    del prices[start:stop]
