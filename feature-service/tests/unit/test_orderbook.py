"""OrderBook: every state and transition, checked by hand-computed values."""

from __future__ import annotations

import pytest

from feature_service.book import BookStats, BookStatus, BookUpdate, OrderBook
from feature_service.market.events import Level
from tests.fixtures.events import book_delta as delta
from tests.fixtures.events import book_snapshot as snap

SYMBOL = "BTCUSDT"
S = 1_000_000  # one second in microseconds


BIDS: list[Level] = [(100.0, 1.0), (99.5, 2.0), (99.0, 3.0)]
ASKS: list[Level] = [(100.5, 1.5), (101.0, 2.5), (102.0, 3.5)]


def synced_book(u: int = 10, ts: int = 1 * S, **kwargs: int) -> OrderBook:
    book = OrderBook(SYMBOL, **kwargs)  # type: ignore[arg-type]
    assert book.apply(snap(u, list(BIDS), list(ASKS), ts)) is BookUpdate.SNAPSHOT_APPLIED
    return book


def assert_unusable_reads(book: OrderBook) -> None:
    assert not book.usable
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.mid() is None
    assert book.spread() is None
    assert book.top_bids(5) == []
    assert book.top_asks(5) == []
    assert book.valid_since is None


# --------------------------------------------------------------------------- initial state


def test_new_book_is_never_synced_and_unusable() -> None:
    book = OrderBook(SYMBOL)
    assert book.status is BookStatus.NEVER_SYNCED
    assert_unusable_reads(book)
    assert book.update_id is None
    assert book.seq is None
    assert book.last_update_ts is None
    assert book.depth_levels() == (0, 0)
    assert book.stats == BookStats()
    assert book.churn_window_us == 300_000_000


def test_delta_before_any_snapshot_is_ignored_and_counted() -> None:
    book = OrderBook(SYMBOL)
    assert book.apply(delta(5, [(100.0, 1.0)], [(101.0, 1.0)])) is BookUpdate.WAITING_FOR_SNAPSHOT
    assert book.apply(delta(6, [(100.0, 1.0)])) is BookUpdate.WAITING_FOR_SNAPSHOT
    assert book.status is BookStatus.NEVER_SYNCED
    assert book.stats.ignored_while_unsynced == 2
    assert book.stats.deltas_applied == 0
    assert book.depth_levels() == (0, 0)
    assert book.update_id is None


def test_constructor_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        OrderBook(SYMBOL, churn_window_us=0)
    with pytest.raises(ValueError):
        OrderBook(SYMBOL, max_levels=0)


def test_event_for_another_symbol_raises() -> None:
    book = OrderBook(SYMBOL)
    with pytest.raises(ValueError, match="ETHUSDT"):
        book.apply(snap(1, list(BIDS), list(ASKS), symbol="ETHUSDT"))
    assert book.status is BookStatus.NEVER_SYNCED


# --------------------------------------------------------------------------- snapshot


def test_snapshot_makes_book_synced_with_exact_values() -> None:
    book = OrderBook(SYMBOL)
    update = book.apply(snap(10, list(BIDS), list(ASKS), ts=7 * S, seq=555))
    assert update is BookUpdate.SNAPSHOT_APPLIED
    assert update.applied
    assert book.status is BookStatus.SYNCED
    assert book.usable
    assert book.best_bid() == 100.0
    assert book.best_ask() == 100.5
    assert book.mid() == 100.25
    assert book.spread() == 0.5
    assert book.update_id == 10
    assert book.seq == 555
    assert book.last_update_ts == 7 * S
    assert book.valid_since == 7 * S
    assert book.depth_levels() == (3, 3)
    assert book.bid_depth_levels == 3
    assert book.ask_depth_levels == 3
    assert book.stats.snapshots == 1


def test_snapshot_order_does_not_matter_and_zero_sizes_are_dropped() -> None:
    book = OrderBook(SYMBOL)
    book.apply(
        snap(
            1,
            [(99.0, 3.0), (100.0, 1.0), (98.0, 0.0), (99.5, 2.0)],
            [(102.0, 3.5), (100.5, 1.5), (100.0, 0.0), (101.0, 2.5)],
        )
    )
    assert book.top_bids(10) == BIDS
    assert book.top_asks(10) == ASKS
    assert book.best_ask() == 100.5  # the zero-size 100.0 ask would have crossed the book


def test_snapshot_replaces_the_whole_book() -> None:
    book = synced_book()
    book.apply(delta(11, [(99.8, 7.0)]))
    book.apply(snap(12, [(90.0, 1.0)], [(91.0, 2.0)], ts=2 * S))
    assert book.top_bids(10) == [(90.0, 1.0)]
    assert book.top_asks(10) == [(91.0, 2.0)]
    assert book.update_id == 12


def test_snapshot_with_lower_u_is_applied_not_stale() -> None:
    book = synced_book(u=500)
    update = book.apply(snap(300, [(50.0, 1.0)], [(51.0, 1.0)], ts=2 * S))
    assert update is BookUpdate.SNAPSHOT_APPLIED
    assert book.update_id == 300
    assert book.best_bid() == 50.0
    assert book.stats.stale_skipped == 0


def test_u1_restart_snapshot_resets_the_sequence() -> None:
    book = synced_book(u=1000)
    assert book.apply(snap(1, [(100.0, 4.0)], [(101.0, 4.0)], ts=2 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    assert book.update_id == 1
    assert book.apply(delta(2, [(100.5, 1.0)], ts=3 * S)) is BookUpdate.DELTA_APPLIED
    assert book.best_bid() == 100.5
    # The old sequence is gone: 1001 is now a gap, not the next update.
    assert book.apply(delta(1001, [(100.6, 1.0)], ts=4 * S)) is BookUpdate.GAP_DETECTED
    assert book.stats.gaps == 1


def test_depth1_snapshot_repeated_with_same_u_is_applied() -> None:
    book = OrderBook(SYMBOL)
    assert book.apply(snap(77, [(100.0, 1.0)], [(100.1, 2.0)], ts=1 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    # Keep-alive resend 3 s later with the same u, and a changed size under the same u.
    assert book.apply(snap(77, [(100.0, 1.0)], [(100.1, 2.0)], ts=4 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    assert book.apply(snap(77, [(100.0, 1.5)], [(100.1, 2.0)], ts=5 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    assert book.status is BookStatus.SYNCED
    assert book.top_bids(5) == [(100.0, 1.5)]
    assert book.stats.snapshots == 3
    assert book.stats.stale_skipped == 0
    assert book.last_update_ts == 5 * S
    assert book.valid_since == 1 * S  # usable all along
    # A new top replaces the old one; nothing of the previous level survives.
    book.apply(snap(78, [(100.05, 3.0)], [(100.2, 1.0)], ts=6 * S))
    assert book.top_bids(5) == [(100.05, 3.0)]
    assert book.top_asks(5) == [(100.2, 1.0)]


# --------------------------------------------------------------------------- deltas


def test_delta_inserts_updates_and_deletes_levels() -> None:
    book = synced_book(u=10)
    update = book.apply(
        delta(
            11,
            bids=[(100.2, 0.7), (99.5, 5.0), (99.0, 0.0)],  # insert new best, update, delete
            asks=[(101.0, 0.0), (101.5, 9.0)],  # delete, insert
            ts=2 * S,
            seq=900,
        )
    )
    assert update is BookUpdate.DELTA_APPLIED
    assert book.top_bids(10) == [(100.2, 0.7), (100.0, 1.0), (99.5, 5.0)]
    assert book.top_asks(10) == [(100.5, 1.5), (101.5, 9.0), (102.0, 3.5)]
    assert book.best_bid() == 100.2
    assert book.spread() == pytest.approx(0.3)
    assert book.update_id == 11
    assert book.seq == 900
    assert book.last_update_ts == 2 * S
    assert book.stats.deltas_applied == 1


def test_deleting_a_missing_level_is_harmless() -> None:
    book = synced_book(u=10)
    assert book.apply(delta(11, [(42.0, 0.0)], [(4242.0, 0.0)])) is BookUpdate.DELTA_APPLIED
    assert book.top_bids(10) == BIDS
    assert book.top_asks(10) == ASKS
    assert book.update_id == 11


def test_empty_delta_advances_the_sequence() -> None:
    book = synced_book(u=10)
    assert book.apply(delta(11)) is BookUpdate.DELTA_APPLIED
    assert book.update_id == 11
    assert book.apply(delta(12)) is BookUpdate.DELTA_APPLIED


def test_later_entry_for_the_same_price_in_one_delta_wins() -> None:
    book = synced_book(u=10)
    book.apply(delta(11, [(99.0, 8.0), (99.0, 0.0), (98.0, 1.0), (98.0, 2.0)]))
    assert book.top_bids(10) == [(100.0, 1.0), (99.5, 2.0), (98.0, 2.0)]


@pytest.mark.parametrize("stale_u", [10, 9, 1])
def test_stale_or_duplicate_delta_is_skipped_and_book_unchanged(stale_u: int) -> None:
    book = synced_book(u=10, ts=1 * S)
    update = book.apply(delta(stale_u, [(100.0, 0.0)], [(100.4, 1.0)], ts=2 * S))
    assert update is BookUpdate.STALE_SKIPPED
    assert not update.applied
    assert book.status is BookStatus.SYNCED
    assert book.top_bids(10) == BIDS
    assert book.top_asks(10) == ASKS
    assert book.update_id == 10
    assert book.last_update_ts == 1 * S
    assert book.stats.stale_skipped == 1
    assert book.stats.deltas_applied == 0


def test_stale_delta_is_skipped_while_crossed_or_empty() -> None:
    book = synced_book(u=10)
    book.apply(delta(11, asks=[(100.5, 0.0), (101.0, 0.0), (102.0, 0.0)]))
    assert book.status is BookStatus.EMPTY
    assert book.apply(delta(11, asks=[(101.0, 1.0)])) is BookUpdate.STALE_SKIPPED
    assert book.status is BookStatus.EMPTY
    assert book.ask_depth_levels == 0


# --------------------------------------------------------------------------- gaps


def test_gap_makes_book_out_of_sync_until_next_snapshot() -> None:
    book = synced_book(u=10, ts=1 * S)
    update = book.apply(delta(12, [(100.1, 1.0)], ts=2 * S))
    assert update is BookUpdate.GAP_DETECTED
    assert not update.applied
    assert book.status is BookStatus.OUT_OF_SYNC
    assert_unusable_reads(book)
    assert book.depth_levels() == (0, 0)  # nothing held is trusted any more
    assert book.held_levels() == ([], [])
    assert book.update_id == 10
    assert book.last_update_ts == 1 * S
    assert book.stats.gaps == 1

    # Deltas are ignored, even those that would continue the gapped sequence.
    assert book.apply(delta(13, [(100.2, 1.0)], ts=3 * S)) is BookUpdate.WAITING_FOR_SNAPSHOT
    assert book.apply(delta(14, [(100.2, 1.0)], ts=3 * S)) is BookUpdate.WAITING_FOR_SNAPSHOT
    assert book.stats.ignored_while_unsynced == 2
    assert book.stats.gaps == 1
    assert book.status is BookStatus.OUT_OF_SYNC

    # Recovery: the next snapshot, whatever its u.
    assert book.apply(snap(20, [(99.0, 1.0)], [(99.5, 1.0)], ts=4 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    assert book.status is BookStatus.SYNCED
    assert book.valid_since == 4 * S
    assert book.mid() == 99.25
    assert book.apply(delta(21, [(99.1, 1.0)], ts=5 * S)) is BookUpdate.DELTA_APPLIED
    assert book.best_bid() == 99.1


def test_gap_while_empty_or_crossed_is_still_a_gap() -> None:
    book = OrderBook(SYMBOL)
    book.apply(snap(5, [], []))
    assert book.apply(delta(7, [(1.0, 1.0)])) is BookUpdate.GAP_DETECTED
    assert book.status is BookStatus.OUT_OF_SYNC

    crossed = OrderBook(SYMBOL)
    crossed.apply(snap(5, [(101.0, 1.0)], [(100.0, 1.0)]))
    assert crossed.status is BookStatus.CROSSED
    assert crossed.apply(delta(9)) is BookUpdate.GAP_DETECTED
    assert crossed.status is BookStatus.OUT_OF_SYNC


# --------------------------------------------------------------------------- empty sides


def test_empty_snapshot_leaves_book_explicitly_unavailable() -> None:
    book = synced_book(u=10)
    update = book.apply(snap(11, [], [], ts=2 * S))
    assert update is BookUpdate.EMPTY_SNAPSHOT
    assert update.applied
    assert book.status is BookStatus.EMPTY
    assert_unusable_reads(book)
    assert book.depth_levels() == (0, 0)
    assert book.update_id == 11
    assert book.stats.empty_snapshots == 1
    assert book.stats.snapshots == 2


@pytest.mark.parametrize(
    ("bids", "asks", "held"),
    [([(100.0, 1.0)], [], (1, 0)), ([], [(100.5, 1.0)], (0, 1))],
)
def test_one_sided_snapshot_is_empty(bids: list[Level], asks: list[Level], held: tuple) -> None:
    book = OrderBook(SYMBOL)
    assert book.apply(snap(3, bids, asks)) is BookUpdate.EMPTY_SNAPSHOT
    assert book.status is BookStatus.EMPTY
    assert_unusable_reads(book)
    assert book.depth_levels() == held
    assert book.stats.empty_snapshots == 1


def test_delta_filling_the_missing_side_makes_book_usable() -> None:
    book = OrderBook(SYMBOL)
    book.apply(snap(3, [(100.0, 1.0)], [], ts=1 * S))
    assert book.apply(delta(4, [(99.0, 1.0)], ts=2 * S)) is BookUpdate.SIDE_EMPTY
    assert book.status is BookStatus.EMPTY
    assert book.apply(delta(5, asks=[(100.5, 2.0)], ts=3 * S)) is BookUpdate.DELTA_APPLIED
    assert book.status is BookStatus.SYNCED
    assert book.valid_since == 3 * S
    assert book.top_bids(5) == [(100.0, 1.0), (99.0, 1.0)]
    assert book.mid() == 100.25


def test_delta_removing_the_last_level_of_a_side_empties_the_book() -> None:
    book = synced_book(u=10, ts=1 * S)
    update = book.apply(delta(11, bids=[(100.0, 0.0), (99.5, 0.0), (99.0, 0.0)], ts=2 * S))
    assert update is BookUpdate.SIDE_EMPTY
    assert update.applied
    assert book.status is BookStatus.EMPTY
    assert_unusable_reads(book)
    assert book.depth_levels() == (0, 3)
    assert book.last_update_ts == 2 * S
    assert book.stats.empty_snapshots == 0
    assert book.stats.deltas_applied == 1


# --------------------------------------------------------------------------- crossed


def test_crossing_delta_then_uncrossing_delta() -> None:
    book = synced_book(u=10, ts=1 * S)
    # A bid above the best ask crosses the book.
    assert book.apply(delta(11, [(100.7, 1.0)], ts=2 * S)) is BookUpdate.CROSSED
    assert book.status is BookStatus.CROSSED
    assert_unusable_reads(book)
    assert book.stats.crossed == 1
    # Still crossed after another update: same episode, counted once.
    assert book.apply(delta(12, [(100.8, 1.0)], ts=3 * S)) is BookUpdate.CROSSED
    assert book.stats.crossed == 1
    # Remove both offending bids: un-crossed, usable again.
    assert book.apply(delta(13, [(100.7, 0.0), (100.8, 0.0)], ts=4 * S)) is (
        BookUpdate.DELTA_APPLIED
    )
    assert book.status is BookStatus.SYNCED
    assert book.valid_since == 4 * S
    assert book.best_bid() == 100.0
    # A second crossing is a second episode.
    assert book.apply(delta(14, asks=[(99.9, 1.0)], ts=5 * S)) is BookUpdate.CROSSED
    assert book.stats.crossed == 2


def test_locked_book_counts_as_crossed() -> None:
    book = synced_book(u=10)
    assert book.apply(delta(11, [(100.5, 1.0)])) is BookUpdate.CROSSED
    assert book.status is BookStatus.CROSSED


def test_crossed_snapshot_then_clean_snapshot() -> None:
    book = OrderBook(SYMBOL)
    assert book.apply(snap(1, [(101.0, 1.0)], [(100.0, 1.0)], ts=1 * S)) is BookUpdate.CROSSED
    assert book.status is BookStatus.CROSSED
    assert book.stats.crossed == 1
    assert book.stats.snapshots == 1
    assert book.apply(snap(2, [(99.0, 1.0)], [(100.0, 1.0)], ts=2 * S)) is (
        BookUpdate.SNAPSHOT_APPLIED
    )
    assert book.status is BookStatus.SYNCED
    assert book.valid_since == 2 * S
    assert book.mid() == 99.5


# --------------------------------------------------------------------------- reads


def test_top_n_is_best_first_and_bounded() -> None:
    book = OrderBook(SYMBOL)
    bids = [(100.0 - i, float(i + 1)) for i in range(8)]
    asks = [(101.0 + i, float(10 + i)) for i in range(8)]
    book.apply(snap(1, list(reversed(bids)), list(reversed(asks))))
    assert book.top_bids(3) == [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)]
    assert book.top_asks(3) == [(101.0, 10.0), (102.0, 11.0), (103.0, 12.0)]
    assert book.top_bids(100) == bids
    assert book.top_asks(100) == asks
    assert book.top_bids(0) == []
    assert book.top_asks(-1) == []
    assert book.held_levels() == (bids, asks)


def test_max_levels_trims_the_worst_levels() -> None:
    book = OrderBook(SYMBOL, max_levels=2)
    book.apply(snap(1, list(BIDS), list(ASKS)))
    assert book.top_bids(10) == [(100.0, 1.0), (99.5, 2.0)]
    assert book.top_asks(10) == [(100.5, 1.5), (101.0, 2.5)]
    # A new best pushes the worst out; a new worst is dropped at once.
    book.apply(delta(2, bids=[(100.2, 1.0), (90.0, 1.0)], asks=[(100.4, 4.0)]))
    assert book.top_bids(10) == [(100.2, 1.0), (100.0, 1.0)]
    assert book.top_asks(10) == [(100.4, 4.0), (100.5, 1.5)]
    assert book.depth_levels() == (2, 2)


def test_valid_since_survives_snapshots_while_usable() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(snap(11, [(100.0, 1.0)], [(101.0, 1.0)], ts=2 * S))
    book.apply(delta(12, [(100.1, 1.0)], ts=3 * S))
    assert book.valid_since == 1 * S
    book.apply(delta(13, [(101.0, 1.0)], ts=4 * S))  # locked -> crossed
    assert book.valid_since is None
    book.apply(delta(14, [(101.0, 0.0)], ts=5 * S))
    assert book.valid_since == 5 * S


def test_update_applied_flags() -> None:
    applied = {u for u in BookUpdate if u.applied}
    assert applied == {
        BookUpdate.SNAPSHOT_APPLIED,
        BookUpdate.DELTA_APPLIED,
        BookUpdate.EMPTY_SNAPSHOT,
        BookUpdate.SIDE_EMPTY,
        BookUpdate.CROSSED,
    }


# --------------------------------------------------------------------------- churn


def test_churn_counts_best_price_changes_in_half_open_windows() -> None:
    book = synced_book(u=10, ts=1 * S)  # first usable state: not a change
    book.apply(delta(11, [(100.1, 1.0)], ts=2 * S))  # best bid up: change @2s
    book.apply(delta(12, [(99.0, 9.0)], ts=3 * S))  # deeper level: no change
    book.apply(delta(13, [(100.1, 5.0)], ts=4 * S))  # size at the touch only: no change
    book.apply(delta(14, asks=[(100.4, 1.0)], ts=5 * S))  # best ask down: change @5s
    book.apply(delta(15, [(100.2, 1.0)], [(100.3, 1.0)], ts=6 * S))  # both: one change @6s
    book.apply(delta(16, asks=[(100.3, 0.0)], ts=6 * S))  # ask back to 100.4: change @6s
    assert book.best_changes_between(0, 100 * S) == 4
    assert book.best_changes_between(2 * S, 5 * S) == 1  # [2s, 5s): 2s in, 5s out
    assert book.best_changes_between(2 * S + 1, 5 * S + 1) == 1
    assert book.best_changes_between(5 * S, 6 * S) == 1
    assert book.best_changes_between(6 * S, 6 * S + 1) == 2
    assert book.best_changes_between(0, 2 * S) == 0
    assert book.best_changes_between(6 * S, 2 * S) == 0


def test_stale_and_ignored_events_record_no_change() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(delta(10, [(100.3, 1.0)], ts=2 * S))  # stale
    book.apply(delta(12, [(100.3, 1.0)], ts=3 * S))  # gap
    book.apply(delta(13, [(100.4, 1.0)], ts=4 * S))  # ignored
    assert book.best_changes_between(0, 100 * S) == 0


def test_reestablishing_snapshot_counts_only_if_best_prices_moved() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(delta(12, ts=2 * S))  # gap
    # Back with the same best prices (sizes differ): no change.
    book.apply(snap(20, [(100.0, 9.0)], [(100.5, 9.0)], ts=3 * S))
    assert book.best_changes_between(0, 100 * S) == 0
    book.apply(snap(21, [], [], ts=4 * S))  # empty
    # Back with a different best bid: one change, at the re-establishing event.
    book.apply(snap(22, [(100.1, 1.0)], [(100.5, 1.0)], ts=5 * S))
    assert book.best_changes_between(0, 100 * S) == 1
    assert book.best_changes_between(5 * S, 5 * S + 1) == 1


def test_moves_while_crossed_are_not_counted_individually() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(delta(11, [(101.0, 1.0)], ts=2 * S))  # crossed
    book.apply(delta(12, [(101.5, 1.0)], ts=3 * S))  # still crossed
    book.apply(delta(13, [(101.0, 0.0), (101.5, 0.0)], ts=4 * S))  # back to 100.0 / 100.5
    assert book.best_changes_between(0, 100 * S) == 0
    book.apply(delta(14, [(101.0, 1.0)], ts=5 * S))  # crossed
    book.apply(delta(15, [(101.0, 0.0), (100.2, 1.0)], ts=6 * S))  # back, bid now 100.2
    assert book.best_changes_between(0, 100 * S) == 1
    assert book.best_changes_between(6 * S, 7 * S) == 1


def test_churn_history_is_pruned_to_the_window() -> None:
    window = 10 * S
    book = OrderBook(SYMBOL, churn_window_us=window)
    book.apply(snap(1, [(100.0, 1.0)], [(1000.0, 1.0)], ts=0))
    for i in range(1, 200):  # one best-bid change per second
        book.apply(delta(i + 1, [(100.0 + i, 1.0)], ts=i * S))
    latest = 199 * S
    # Kept: changes with ts >= latest - window, i.e. seconds 189..199.
    assert book.best_changes_between(0, latest + 1) == 11
    assert book.best_changes_between(latest - 5 * S, latest + 1) == 6
    assert len(book._change_ts) - book._change_head == 11  # memory is bounded too
    assert len(book._change_ts) < 100


def test_churn_pruning_follows_any_event_time() -> None:
    book = OrderBook(SYMBOL, churn_window_us=10 * S)
    book.apply(snap(1, [(100.0, 1.0)], [(200.0, 1.0)], ts=0))
    book.apply(delta(2, [(101.0, 1.0)], ts=1 * S))
    assert book.best_changes_between(0, 100 * S) == 1
    # A much later stale delta still moves the horizon.
    book.apply(delta(2, ts=50 * S))
    assert book.best_changes_between(0, 100 * S) == 0


def test_churn_history_stays_sorted_when_receive_time_steps_back() -> None:
    book = synced_book(u=10, ts=10 * S)
    book.apply(delta(11, [(100.1, 1.0)], ts=12 * S))
    book.apply(delta(12, [(100.2, 1.0)], ts=11 * S))  # clock stepped back: kept at 12 s
    assert book.best_changes_between(12 * S, 13 * S) == 2
    assert book.best_changes_between(11 * S, 12 * S) == 0


# --------------------------------------------------------------------------- far-ahead u (issue 9)


def test_one_delta_with_a_far_ahead_u_does_not_block_the_valid_sequence() -> None:
    book = synced_book(u=10, ts=1 * S)
    bid_before = book.best_bid()
    assert book.apply(delta(10**9, [(100.2, 5.0)], ts=2 * S)) is BookUpdate.GAP_DETECTED
    assert book.status is BookStatus.OUT_OF_SYNC
    assert_unusable_reads(book)
    # The valid stream goes on from 10: the book resumes, without the bad delta's level.
    assert book.apply(delta(11, [(100.1, 1.0)], ts=3 * S)) is BookUpdate.DELTA_APPLIED
    assert book.status is BookStatus.SYNCED
    assert book.update_id == 11
    assert book.best_bid() == 100.1 and bid_before != 100.1
    assert (100.2, 5.0) not in book.held_levels()[0]
    assert book.apply(delta(12, [(100.15, 1.0)], ts=4 * S)) is BookUpdate.DELTA_APPLIED
    assert book.stats.resumed == 1


def test_a_snapshot_with_a_far_ahead_u_is_overruled_by_the_contiguous_sequence() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(snap(10**9, [(1.0, 1.0)], [(2.0, 1.0)], ts=2 * S))  # a corrupted u
    assert book.update_id == 10**9
    # Deltas 11, 12 are "stale" against it; the third contiguous one proves the old sequence.
    assert book.apply(delta(11, [(100.1, 1.0)], ts=3 * S)) is BookUpdate.STALE_SKIPPED
    assert book.apply(delta(12, [(100.11, 1.0)], ts=4 * S)) is BookUpdate.STALE_SKIPPED
    assert book.apply(delta(13, [(100.12, 1.0)], ts=5 * S)) is BookUpdate.DELTA_APPLIED
    assert book.update_id == 13
    assert book.best_bid() == 100.12
    assert book.apply(delta(14, ts=6 * S)) is BookUpdate.DELTA_APPLIED


def test_a_real_resync_snapshot_drops_the_kept_state() -> None:
    book = synced_book(u=10, ts=1 * S)
    book.apply(snap(500, [(90.0, 1.0)], [(91.0, 1.0)], ts=2 * S))
    assert book.apply(delta(501, [(90.5, 1.0)], ts=3 * S)) is BookUpdate.DELTA_APPLIED
    # The old sequence is gone for good now.
    assert book.apply(delta(11, ts=4 * S)) is BookUpdate.STALE_SKIPPED
    assert book.apply(delta(12, ts=5 * S)) is BookUpdate.STALE_SKIPPED
    assert book.apply(delta(13, ts=6 * S)) is BookUpdate.STALE_SKIPPED
    assert book.best_bid() == 90.5
    assert book.stats.resumed == 0
