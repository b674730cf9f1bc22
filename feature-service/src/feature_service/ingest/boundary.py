"""The ingest boundary: the one way in to the feature engine.

Live consumption (``LiveEngine.ingest``), ``compute`` on a recording, the offline rebuild,
``validate-identity`` and dataset builds all hand their input to an ``IngestBoundary`` before
``FeatureEngine``: the venue adapter parses, the sequencer drops duplicates and (live) stamps
monotonic receive times. A redelivered or duplicated message therefore changes nothing, live
or offline.

Two entry points:
- ``ingest(body, receive_ts)``: a message body (live, recordings). Returns every event of the
  message and the ones that are not duplicates, because the live path still
  hands duplicates to the raw store (the reader drops them again) before acknowledging: it
  returns ``(events, fresh)``.
- ``accept(event, key)``: an event already parsed, with its stored ``message_key`` (raw store
  replays).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from feature_service.ingest.sequencer import Sequencer
from feature_service.ingest.venue import Body, BybitAdapter, VenueAdapter
from feature_service.market.events import MarketEvent
from feature_service.market.keys import message_key

Ingested = tuple[list[MarketEvent], list[MarketEvent]]
"""``(events, fresh)``: every event of a message, and those that are not duplicates (the same
list object when none is, so the common case allocates nothing)."""

_NONE: list[MarketEvent] = []


class IngestBoundary:
    __slots__ = ("_accept", "_parse", "sequencer", "venue")

    def __init__(
        self, venue: VenueAdapter | None = None, sequencer: Sequencer | None = None
    ) -> None:
        self.venue: VenueAdapter = venue or BybitAdapter()
        self.sequencer = sequencer or Sequencer()
        # Bound once: ingest runs per consumed message.
        self._parse = self.venue.parse
        self._accept = self.sequencer.accept

    def stamp(self, now_us: int) -> int:
        return self.sequencer.stamp(now_us)

    def ingest(self, body: Body, receive_ts: int | None = None) -> Ingested:
        """Parse one message; returns ``(events, fresh)`` (raises ``MessageRejected``)."""
        events = self._parse(body, receive_ts)
        accept = self._accept
        if len(events) == 1:
            event = events[0]
            if accept(event, event.event_id or message_key(None, body)):
                return events, events
            return events, _NONE
        base = None
        fresh: list[MarketEvent] = []
        for part, event in enumerate(events):
            if event.event_id:
                key = message_key(event.event_id, body, part)
            else:
                if base is None:
                    base = message_key(None, body)
                key = base if part == 0 else f"{base}#{part}"
            if accept(event, key):
                fresh.append(event)
        return events, fresh if len(fresh) < len(events) else events

    def forget(self, body: Body, events: list[MarketEvent]) -> None:
        """Undo ``ingest`` for these events of ``body`` (their handling failed before they were
        applied, so the broker's redelivery must be applied, not dropped)."""
        for part, event in enumerate(events):
            self.sequencer.forget(event, message_key(event.event_id, body, part))

    def accept(self, event: MarketEvent, key: str) -> bool:
        return self.sequencer.accept(event, key)

    def replay(self, keyed: Iterable[tuple[str, MarketEvent]]) -> Iterator[MarketEvent]:
        """The events of ``(key, event)`` pairs that are not duplicates, in order."""
        accept = self.sequencer.accept
        for key, event in keyed:
            if accept(event, key):
                yield event

    @property
    def duplicates(self) -> int:
        return self.sequencer.duplicates
