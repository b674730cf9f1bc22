"""Live book checkpoints: when the engine's book of a symbol is usable, its full state is
written to the raw store (kind ``orderbook/checkpoints``) every ``every_s`` seconds of receive
time and at the first book event of each UTC day.

Bybit sends a book snapshot only on (re)subscribe, so without checkpoints a replay of any later
period would have to start from that snapshot, hours or days back. With them, state as of T
starts from the last checkpoint before T (``services/state_asof.py``).

The check runs after every applied book event, on the engine's thread: one comparison unless a
checkpoint is due. Writing is the raw writer's (asynchronous, batched) job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from feature_service.book.checkpoint import BookCheckpoint, take_checkpoint
from feature_service.book.orderbook import OrderBook
from feature_service.engine.core import FeatureEngine
from feature_service.market.events import US_PER_S, BookDelta, BookSnapshot

US_PER_DAY = 86_400 * US_PER_S


class CheckpointSink(Protocol):
    def __call__(self, checkpoint: BookCheckpoint, body: bytes) -> object: ...


class BookCheckpointer:
    __slots__ = ("_book_of", "_due", "_every_us", "_mid_of", "_sink", "written")

    def __init__(
        self,
        books: FeatureEngine | Callable[[str], OrderBook | None],
        sink: CheckpointSink | Callable[[BookCheckpoint, bytes], object],
        *,
        every_s: float = 60.0,
    ) -> None:
        """``books``: the engine whose books are checkpointed, or a lookup symbol -> book
        (``storage import`` keeps books of its own)."""
        if every_s <= 0:
            raise ValueError("checkpoint cadence must be positive")
        self._mid_of: Callable[[str, int], float | None] | None = None
        if isinstance(books, FeatureEngine):
            states = books.states

            def book_of(symbol: str) -> OrderBook | None:
                state = states.get(symbol)
                return None if state is None else state.book

            def mid_of(symbol: str, second_us: int) -> float | None:
                return states[symbol].mids.at(second_us)

            self._book_of = book_of
            self._mid_of = mid_of
        else:
            self._book_of = books
        self._sink = sink
        self._every_us = int(every_s * US_PER_S)
        self._due: dict[str, int] = {}  # symbol -> receive time from which the next one is due
        self.written = 0

    def after(self, event: BookSnapshot | BookDelta, boundary_mid: float | None = None) -> None:
        """Call after the engine applied ``event``. ``boundary_mid``: the mid as of the whole
        second at or before it (read from the engine's grid when checkpointing an engine)."""
        t = event.receive_ts
        due = self._due.get(event.symbol)
        if due is not None and t < due:
            return
        book = self._book_of(event.symbol)
        if book is None or not book.usable:
            return  # only usable books: the next usable event takes it
        if self._mid_of is not None:
            boundary_mid = self._mid_of(event.symbol, t - t % US_PER_S)
        checkpoint = take_checkpoint(
            book, t, topic=event.topic, depth=event.depth, boundary_mid=boundary_mid
        )
        self._sink(checkpoint, checkpoint.to_json())
        self.written += 1
        # Next: one cadence later, or the first event of the next UTC day, whichever is first.
        self._due[event.symbol] = min(t + self._every_us, (t // US_PER_DAY + 1) * US_PER_DAY)
