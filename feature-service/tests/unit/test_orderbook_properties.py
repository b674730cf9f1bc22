"""OrderBook against a naive dict model of the same rules, on random event sequences.

The model is deliberately slow and obvious: plain dicts, full sorts, a status recomputed from
scratch after every event, every change time kept forever. Sequences mix snapshots (u = 1
restarts, repeated u, lower u, empty sides) and deltas with u steps that include duplicates,
stale updates and gaps; prices overlap between the sides so crossing happens too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_service.book import BookStats, BookStatus, BookUpdate, OrderBook
from feature_service.market.events import BookDelta, BookSnapshot, Level
from tests.fixtures.events import book_delta, book_snapshot

SYMBOL = "ETHUSDT"


@dataclass
class Model:
    max_levels: int | None
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    u: int | None = None
    baseline: bool = False  # a snapshot was applied and no gap followed
    gap: bool = False
    status: BookStatus = BookStatus.NEVER_SYNCED
    valid_since: int | None = None
    last_usable_best: tuple[float, float] | None = None
    changes: list[int] = field(default_factory=list)
    stats: BookStats = field(default_factory=BookStats)
    # the state kept aside before a gap or a jumped snapshot: bids, asks, u; and its run
    shadow: tuple[dict[float, float], dict[float, float], int] | None = None
    shadow_run: int = 0

    def snapshot(self, u: int, bids: list[Level], asks: list[Level], ts: int) -> BookUpdate:
        self.stats.snapshots += 1
        in_sequence = self.baseline
        if in_sequence and self.u is not None and u > self.u + 1:
            self.shadow, self.shadow_run = (self.bids, self.asks, self.u), 0
        else:
            self.shadow = None
        self.bids = {}
        for p, s in bids:
            self.bids[p] = s
        self.asks = {}
        for p, s in asks:
            self.asks[p] = s
        self.bids = {p: s for p, s in self.bids.items() if s != 0}
        self.asks = {p: s for p, s in self.asks.items() if s != 0}
        self.u = u
        self.baseline = True
        self.gap = False
        result = self._settle(ts, BookUpdate.SNAPSHOT_APPLIED)
        if result is BookUpdate.SIDE_EMPTY:
            self.stats.empty_snapshots += 1
            return BookUpdate.EMPTY_SNAPSHOT
        return result

    def delta(self, u: int, bids: list[Level], asks: list[Level], ts: int) -> BookUpdate:
        next_in_book = self.baseline and self.u is not None and u == self.u + 1
        if self.shadow is not None and u == self.shadow[2] + 1 and not next_in_book:
            s_bids, s_asks, _ = self.shadow
            for side, levels in ((s_bids, bids), (s_asks, asks)):
                for p, s in levels:
                    if s == 0:
                        side.pop(p, None)
                    else:
                        side[p] = s
            self.shadow = (s_bids, s_asks, u)
            self.shadow_run += 1
            if self.baseline and self.shadow_run < 3:
                self.stats.stale_skipped += 1
                return BookUpdate.STALE_SKIPPED
            self.shadow = None
            self.bids, self.asks, self.u = s_bids, s_asks, u
            self.baseline, self.gap = True, False
            self.stats.resumed += 1
            self.stats.deltas_applied += 1
            return self._settle(ts, BookUpdate.DELTA_APPLIED)
        if not self.baseline:
            self.stats.ignored_while_unsynced += 1
            return BookUpdate.WAITING_FOR_SNAPSHOT
        assert self.u is not None
        if u <= self.u:
            self.stats.stale_skipped += 1
            return BookUpdate.STALE_SKIPPED
        if u != self.u + 1:
            self.stats.gaps += 1
            self.baseline = False
            self.gap = True
            self.shadow, self.shadow_run = (self.bids, self.asks, self.u), 0
            self.bids, self.asks = {}, {}
            self._set_status(BookStatus.OUT_OF_SYNC, ts)
            return BookUpdate.GAP_DETECTED
        self.shadow = None
        self.stats.deltas_applied += 1
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, s in levels:
                if s == 0:
                    side.pop(p, None)
                else:
                    side[p] = s
        self.u = u
        return self._settle(ts, BookUpdate.DELTA_APPLIED)

    def _settle(self, ts: int, ok: BookUpdate) -> BookUpdate:
        if self.max_levels is not None:
            keep_b = sorted(self.bids, reverse=True)[: self.max_levels]
            keep_a = sorted(self.asks)[: self.max_levels]
            self.bids = {p: self.bids[p] for p in keep_b}
            self.asks = {p: self.asks[p] for p in keep_a}
        if not self.bids or not self.asks:
            self._set_status(BookStatus.EMPTY, ts)
            return BookUpdate.SIDE_EMPTY
        best = (max(self.bids), min(self.asks))
        if best[0] >= best[1]:
            if self.status is not BookStatus.CROSSED:
                self.stats.crossed += 1
            self._set_status(BookStatus.CROSSED, ts)
            return BookUpdate.CROSSED
        self._set_status(BookStatus.SYNCED, ts)
        if self.last_usable_best is not None and best != self.last_usable_best:
            self.changes.append(ts)
        self.last_usable_best = best
        return ok

    def _set_status(self, status: BookStatus, ts: int) -> None:
        if status is BookStatus.SYNCED and self.status is not BookStatus.SYNCED:
            self.valid_since = ts
        if status is not BookStatus.SYNCED:
            self.valid_since = None
        self.status = status

    def sorted_levels(self) -> tuple[list[Level], list[Level]]:
        return (
            sorted(self.bids.items(), key=lambda kv: -kv[0]),
            sorted(self.asks.items()),
        )

    def changes_between(self, t0: int, t1: int, latest: int, window: int) -> int:
        horizon = latest - window
        return sum(1 for c in self.changes if t0 <= c < t1 and c >= horizon)


# Half-tick grid, exact in binary floating point. Bid and ask ranges overlap so random deltas
# cross the book now and then.
bid_price = st.integers(180, 210).map(lambda k: k * 0.5)
ask_price = st.integers(200, 230).map(lambda k: k * 0.5)
size = st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.0])
positive_size = st.sampled_from([0.25, 1.0, 3.0])

snapshot_op = st.tuples(
    st.just("snapshot"),
    st.one_of(st.integers(-3, 5), st.just(None)),  # u relative to the last u; None = u 1
    st.lists(st.tuples(bid_price, positive_size), max_size=8),
    st.lists(st.tuples(ask_price, positive_size), max_size=8),
    st.integers(0, 20),  # receive-time step
)
delta_op = st.tuples(
    st.just("delta"),
    st.sampled_from([-2, -1, 0, 1, 1, 1, 1, 1, 1, 2, 3]),
    st.lists(st.tuples(bid_price, size), max_size=5),
    st.lists(st.tuples(ask_price, size), max_size=5),
    st.integers(0, 20),
)
ops_strategy = st.lists(
    st.one_of(delta_op, delta_op, delta_op, snapshot_op), min_size=1, max_size=120
)


def _event(
    kind: str, u: int, bids: list[Level], asks: list[Level], ts: int
) -> BookSnapshot | BookDelta:
    build = book_snapshot if kind == "snapshot" else book_delta
    return build(u, bids, asks, ts, symbol=SYMBOL)


@settings(max_examples=400, deadline=None)
@given(
    ops=ops_strategy,
    max_levels=st.one_of(st.none(), st.integers(1, 4)),
    window=st.sampled_from([15, 100, 10**9]),
    start_u=st.integers(1, 1_000),
)
def test_book_matches_naive_model(
    ops: list[tuple], max_levels: int | None, window: int, start_u: int
) -> None:
    book = OrderBook(SYMBOL, churn_window_us=window, max_levels=max_levels)
    model = Model(max_levels=max_levels)
    ts = 1_000
    exchange_u = start_u  # the u the generator walks; deltas before any snapshot use it too
    for kind, du, bids, asks, dt in ops:
        ts += dt
        base = model.u if model.u is not None else exchange_u
        if kind == "snapshot":
            u = 1 if du is None else max(1, base + du)
            expected = model.snapshot(u, bids, asks, ts)
        else:
            u = max(1, base + du)
            expected = model.delta(u, bids, asks, ts)
        exchange_u = u

        got = book.apply(_event(kind, u, list(bids), list(asks), ts))

        assert got is expected
        assert book.status is model.status
        # Every gap is detected, and only gaps make the book OUT_OF_SYNC.
        assert (book.status is BookStatus.OUT_OF_SYNC) == model.gap
        assert book.held_levels() == model.sorted_levels()
        assert book.depth_levels() == (len(model.bids), len(model.asks))
        assert book.update_id == model.u
        assert book.valid_since == model.valid_since
        assert book.usable == (model.status is BookStatus.SYNCED)
        if book.usable:
            bids_sorted, asks_sorted = model.sorted_levels()
            assert book.best_bid() == bids_sorted[0][0]
            assert book.best_ask() == asks_sorted[0][0]
            assert book.mid() == (bids_sorted[0][0] + asks_sorted[0][0]) / 2
            assert book.top_bids(3) == bids_sorted[:3]
            assert book.top_asks(3) == asks_sorted[:3]
        else:
            assert book.best_bid() is None
            assert book.mid() is None
            assert book.top_bids(3) == []
        for t0, t1 in ((0, ts + 1), (ts - 30, ts + 1), (ts - 10, ts - 2), (ts, ts + 1)):
            assert book.best_changes_between(t0, t1) == model.changes_between(t0, t1, ts, window)

    assert book.stats == model.stats


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from([0, 1, 1, 1, 2, 5]), min_size=1, max_size=60),
    start_u=st.integers(1, 10_000),
)
def test_gap_detected_exactly_when_a_delta_skips_an_update_id(
    steps: list[int], start_u: int
) -> None:
    """Clean book, only u steps vary (never back): status is OUT_OF_SYNC from the first skip
    onwards (deltas only go forward here, so the state kept aside is never resumed)."""
    book = OrderBook(SYMBOL)
    book.apply(_event("snapshot", start_u, [(100.0, 1.0)], [(101.0, 1.0)], 0))
    u = start_u
    skipped = False
    for i, step in enumerate(steps, start=1):
        u += step
        result = book.apply(_event("delta", u, [(100.0, float(i))], [], i))
        if skipped:
            assert result is BookUpdate.WAITING_FOR_SNAPSHOT
        elif step == 0:
            assert result is BookUpdate.STALE_SKIPPED
        elif step == 1:
            assert result is BookUpdate.DELTA_APPLIED
            assert book.top_bids(1) == [(100.0, float(i))]
        else:
            assert result is BookUpdate.GAP_DETECTED
            skipped = True
        assert (book.status is BookStatus.OUT_OF_SYNC) == skipped
    assert book.stats.gaps == (1 if skipped else 0)
