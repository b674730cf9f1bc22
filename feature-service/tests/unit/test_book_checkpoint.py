"""Book checkpoints: restore + the deltas that followed == the live book, for every checkpoint
of random streams with gaps, stale updates, resnapshots, crossings and empty sides."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_service.book import OrderBook
from feature_service.book.checkpoint import BookCheckpoint, restore_book, take_checkpoint
from feature_service.market.events import BookDelta, BookSnapshot
from tests.unit.test_orderbook_properties import SYMBOL, _event, ops_strategy


def _stream(ops: list[tuple], start_u: int) -> list[BookSnapshot | BookDelta]:
    """The ops as events, u walked like the exchange would (gaps and stale steps included)."""
    events: list[BookSnapshot | BookDelta] = []
    ts, u = 1_000, start_u
    for kind, du, bids, asks, dt in ops:
        ts += dt
        u = (1 if du is None else max(1, u + du)) if kind == "snapshot" else max(1, u + du)
        events.append(_event(kind, u, list(bids), list(asks), ts))
    return events


def _reads(book: OrderBook, ts: int) -> tuple:
    return (
        book.status,
        book.usable,
        book.update_id,
        book.seq,
        book.valid_since,
        book.held_levels(),
        book.best_bid(),
        book.best_ask(),
        book.mid(),
        book.top_bids(5),
        book.top_asks(5),
        tuple(book.best_changes_between(ts - w, ts + 1) for w in (0, 10, 30, 60, 10**9)),
    )


@settings(max_examples=200, deadline=None)
@given(
    ops=ops_strategy,
    start_u=st.integers(1, 1_000),
    window=st.sampled_from([15, 100, 10**9]),
    max_levels=st.one_of(st.none(), st.integers(1, 4)),
)
def test_restore_plus_following_deltas_is_the_live_book(
    ops: list[tuple], start_u: int, window: int, max_levels: int | None
) -> None:
    events = _stream(ops, start_u)
    live = OrderBook(SYMBOL, churn_window_us=window, max_levels=max_levels)
    checkpoints: list[tuple[int, BookCheckpoint]] = []
    for i, event in enumerate(events):
        live.apply(event)
        # A checkpoint after every event, through its serialised form, as stored.
        cp = take_checkpoint(live, event.receive_ts, topic=event.topic, depth=50)
        checkpoints.append((i, BookCheckpoint.from_json(cp.to_json())))
    final = _reads(live, events[-1].receive_ts)
    for i, cp in checkpoints:
        book = restore_book(cp, churn_window_us=window, max_levels=max_levels)
        assert _reads(book, events[i].receive_ts) == _reads_at(events, i, window, max_levels)
        for event in events[i + 1 :]:
            book.apply(event)
        assert _reads(book, events[-1].receive_ts) == final


def _reads_at(events: list, i: int, window: int, max_levels: int | None) -> tuple:
    book = OrderBook(SYMBOL, churn_window_us=window, max_levels=max_levels)
    for event in events[: i + 1]:
        book.apply(event)
    return _reads(book, events[i].receive_ts)


def test_checkpoint_json_round_trip_keeps_every_field() -> None:
    book = OrderBook(SYMBOL)
    book.apply(_event("snapshot", 10, [(100.0, 1.0), (99.5, 2.0)], [(101.0, 1.5)], 5))
    book.apply(_event("delta", 11, [(100.5, 1.0)], [], 7))
    cp = take_checkpoint(book, 7, topic="orderbook.50.ETHUSDT", depth=50)
    back = BookCheckpoint.from_json(cp.to_json())
    assert back == cp
    assert back.bids == [(100.5, 1.0), (100.0, 1.0), (99.5, 2.0)]
    assert back.changes == [7] and back.valid_since == 5 and back.update_id == 11
