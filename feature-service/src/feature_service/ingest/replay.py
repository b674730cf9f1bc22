"""Offline inputs through the ingest boundary: recordings and raw-store replays."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from feature_service.ingest.boundary import IngestBoundary
from feature_service.market.errors import MessageRejected
from feature_service.market.events import MarketEvent
from feature_service.market.recording import PathLike, RecordingError, iter_lines


class KeyedSource(Protocol):
    def iter_keyed_events(
        self,
        kinds: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
    ) -> Iterator[tuple[str, MarketEvent]]: ...


def recording_events(
    path: PathLike,
    boundary: IngestBoundary,
    *,
    on_error: Callable[[RecordingError], None] | None = None,
) -> Iterator[MarketEvent]:
    """A recording's events in file order, duplicate lines skipped (and counted by the
    boundary's sequencer), timed by the recorded clocks. A malformed line raises
    ``RecordingError`` unless ``on_error`` takes it."""
    lines = iter_lines(path)
    while True:
        try:
            line_no, line = next(lines)
        except StopIteration:
            return
        except RecordingError as error:  # a truncated gzip stream: nothing readable after it
            if on_error is None:
                raise
            on_error(error)
            return
        try:
            fresh = boundary.ingest(line)[1]
        except MessageRejected as exc:
            error = RecordingError(path, line_no, exc)
            if on_error is None:
                raise error from exc
            on_error(error)
            continue
        yield from fresh


def stored_events(
    source: KeyedSource,
    boundary: IngestBoundary,
    *,
    symbols: Iterable[str] | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    kinds: Iterable[str] | None = None,
) -> Iterator[MarketEvent]:
    """Raw-store events of ``[start_us, end_us)`` in live order, through the boundary."""
    keyed = source.iter_keyed_events(kinds, symbols, start_us, end_us)
    return boundary.replay(keyed)
