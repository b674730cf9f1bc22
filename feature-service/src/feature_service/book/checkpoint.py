"""Book checkpoints: the full state of an ``OrderBook`` as plain data, and back.

A checkpoint is derived data. It holds everything the book's reads depend on -- levels,
sequence (``u``/``seq``), status, ``valid_since``, the last usable best prices and the
best-price change times still inside the churn window -- so restoring it and applying the
deltas that followed gives exactly the book the live engine had (a property test checks it
across gaps and resnapshots). Counters (``stats``) are observability, not state, and restart
at zero.

This module reads and writes the book's private fields on purpose: it is the book's own
serialisation, kept beside it so the book's hot path stays free of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sortedcontainers import SortedList

from feature_service.book.orderbook import BookStatus, OrderBook
from feature_service.market.events import Level

FORMAT_VERSION = 1


@dataclass(slots=True, kw_only=True)
class BookCheckpoint:
    symbol: str
    taken_at: int  # receive time of the event after which it was taken
    update_id: int | None
    seq: int | None
    status: str
    valid_since: int | None
    last_update_ts: int | None
    latest_ts: int | None
    prev_best_bid: float | None
    prev_best_ask: float | None
    bids: list[Level]  # best first
    asks: list[Level]  # best first
    changes: list[int] = field(default_factory=list)  # best-price change times, ascending
    topic: str | None = None
    depth: int | None = None
    # The mid as of the whole second at or before taken_at (what the engine's 1 s grid holds for
    # it: the book before the first event of that second), so a replay starting here records
    # that second as the live grid did, not with the book after the checkpoint's event.
    boundary_mid: float | None = None
    # The levels a far-ahead u moved aside (``OrderBook._keep_shadow``), with their u, seq and
    # the run of deltas applied to them: the old sequence may still resume after the checkpoint.
    shadow: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"format": FORMAT_VERSION}
        for name in self.__slots__:  # type: ignore[attr-defined]
            doc[name] = getattr(self, name)
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes | str) -> BookCheckpoint:
        doc = orjson.loads(raw)
        if doc.pop("format", None) != FORMAT_VERSION:
            raise ValueError("unknown book checkpoint format")
        doc["bids"] = [(float(p), float(s)) for p, s in doc["bids"]]
        doc["asks"] = [(float(p), float(s)) for p, s in doc["asks"]]
        shadow = doc.get("shadow")
        if shadow is not None:
            shadow["bids"] = [(float(p), float(s)) for p, s in shadow["bids"]]
            shadow["asks"] = [(float(p), float(s)) for p, s in shadow["asks"]]
        return cls(**doc)


def take_checkpoint(
    book: OrderBook,
    taken_at: int,
    *,
    topic: str | None = None,
    depth: int | None = None,
    boundary_mid: float | None = None,
) -> BookCheckpoint:
    bids, asks = book.held_levels()
    changes = book._change_ts[book._change_head :]
    latest = book._latest_ts
    if latest is not None:
        # Only what best_changes_between can still count: later pruning would drop the rest.
        cutoff = latest - book.churn_window_us
        changes = [t for t in changes if t >= cutoff]
    return BookCheckpoint(
        symbol=book.symbol,
        taken_at=taken_at,
        update_id=book.update_id,
        seq=book.seq,
        status=book.status.value,
        valid_since=book.valid_since,
        last_update_ts=book.last_update_ts,
        latest_ts=latest,
        prev_best_bid=book._prev_best_bid,
        prev_best_ask=book._prev_best_ask,
        bids=bids,
        asks=asks,
        changes=list(changes),
        topic=topic,
        depth=depth,
        boundary_mid=boundary_mid,
        shadow=_shadow_of(book),
    )


def _shadow_of(book: OrderBook) -> dict[str, Any] | None:
    if book._shadow is None:
        return None
    bid_sizes, bid_prices, ask_sizes, ask_prices, update_id, seq = book._shadow
    return {
        "bids": [(p, bid_sizes[p]) for p in reversed(bid_prices)],
        "asks": [(p, ask_sizes[p]) for p in ask_prices],
        "update_id": update_id,
        "seq": seq,
        "run": book._shadow_run,
    }


def restore_book(
    checkpoint: BookCheckpoint,
    *,
    churn_window_us: int | None = None,
    max_levels: int | None = None,
    into: OrderBook | None = None,
) -> OrderBook:
    """A book equal (for every read) to the one the checkpoint was taken of; ``into`` reuses an
    existing book object (its symbol must match)."""
    if into is None:
        kwargs: dict[str, Any] = {"max_levels": max_levels}
        if churn_window_us is not None:
            kwargs["churn_window_us"] = churn_window_us
        book = OrderBook(checkpoint.symbol, **kwargs)
    else:
        if into.symbol != checkpoint.symbol:
            raise ValueError(f"checkpoint of {checkpoint.symbol!r} restored into {into.symbol!r}")
        book = into
    book.status = BookStatus(checkpoint.status)
    book.update_id = checkpoint.update_id
    book.seq = checkpoint.seq
    book.valid_since = checkpoint.valid_since
    book.last_update_ts = checkpoint.last_update_ts
    book._latest_ts = checkpoint.latest_ts
    book._prev_best_bid = checkpoint.prev_best_bid
    book._prev_best_ask = checkpoint.prev_best_ask
    book._bid_sizes.clear()
    book._ask_sizes.clear()
    book._bid_sizes.update(checkpoint.bids)
    book._ask_sizes.update(checkpoint.asks)
    book._bid_prices.clear()
    book._ask_prices.clear()
    book._bid_prices.update(book._bid_sizes)
    book._ask_prices.update(book._ask_sizes)
    book._change_ts = list(checkpoint.changes)
    book._change_head = 0
    shadow = checkpoint.shadow
    if shadow is None:
        book._shadow = None
        book._shadow_run = 0
    else:
        bid_sizes = dict(shadow["bids"])
        ask_sizes = dict(shadow["asks"])
        book._shadow = (
            bid_sizes,
            SortedList(bid_sizes),
            ask_sizes,
            SortedList(ask_sizes),
            shadow["update_id"],
            shadow["seq"],
        )
        book._shadow_run = shadow["run"]
    return book
