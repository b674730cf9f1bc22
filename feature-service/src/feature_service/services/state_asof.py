"""State as of any moment T, from the raw store: the one function behind warm start, period
rebuilds (datasets), ``validate-identity`` and their tests.

``state_as_of(raw_root, symbols, t_us)`` returns a ``FeatureEngine`` holding, per symbol,
exactly the state an engine that had consumed every stored event before T would hold (wherever
the store has what the lookbacks need, see ``engine/warmup.py``), with every boundary before T
already closed: the first vector it emits is the one at the first boundary >= T.

Per symbol:
- the book from the last checkpoint (``orderbook/checkpoints``) or snapshot at or before
  ``T - book lookback``, then the deltas after it; with neither in the last
  ``max_days_back`` days, from the first checkpoint or snapshot after that point (the book is
  unknown until then, as it was live);
- trades of the longest trade window, confirmed candles of the candle lookback;
- the last funding rate and next funding time (ticker or funding stream), however old.

Everything goes through the ingest boundary, so duplicates are dropped exactly as live.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from feature_service.adapters.rawstore.layout import (
    Kind,
)
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.seek import last_row_before
from feature_service.book.checkpoint import BookCheckpoint, restore_book
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.engine.warmup import Lookbacks, Warmup
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.ingest import IngestBoundary
from feature_service.logging import get_logger
from feature_service.market.events import US_PER_S, Kline, MarketEvent, Trade
from feature_service.market.parsing import parse_message

log = get_logger(__name__)

BOOK_KINDS = (Kind.ORDERBOOK_SNAPSHOTS, Kind.ORDERBOOK_DELTAS)
# A snapshot of the REST depth source (``"feed": "rest"`` in its body; the parser refuses any
# other feed): stored next to the stream's snapshots, but never the stream book's start.
REST_FEED_RE = re.compile(r'"feed"\s*:')


@dataclass(slots=True)
class WarmReport:
    t_us: int
    symbols: list[str]
    book_from: dict[str, str] = field(default_factory=dict)  # symbol -> checkpoint|snapshot|none
    events: int = 0
    elapsed_s: float = 0.0
    # What a dataset's ``reference_price`` holds at T (dataset_rows.spill_rows): the last
    # trade price, and the last confirmed candle close, received before T.
    last_trade_price: dict[str, float] = field(default_factory=dict)
    last_candle_close: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "t_us": self.t_us,
            "symbols": self.symbols,
            "book_from": self.book_from,
            "events": self.events,
            "elapsed_s": round(self.elapsed_s, 3),
            "last_trade_price": self.last_trade_price,
            "last_candle_close": self.last_candle_close,
        }


def _first_row_from(root: Path, kind: Kind, symbol: str, from_us: int, to_us: int):
    for row in RawReader(root).iter_rows([kind], [symbol], from_us, to_us):
        if not REST_FEED_RE.search(row["raw"]):
            return row["receive_ts"], row["raw"], row["part"]
    return None


def _seed_events(root: Path, symbol: str, before_us: int) -> list[MarketEvent]:
    """The messages that set the last funding rate and next funding time before ``before_us``."""
    found: list[tuple[int, str, int]] = []
    for kind, column in (
        (Kind.TICKER, "funding_rate"),
        (Kind.TICKER, "next_funding_time"),
        (Kind.FUNDING, "funding_rate"),
        (Kind.FUNDING, "next_funding_time"),
    ):
        row = last_row_before(root, kind, symbol, before_us, not_null=column, max_days_back=7)
        if row is not None and row not in found:
            found.append(row)
    # The REST depth book (depth_source=rest) is its latest REST snapshot, however old: live
    # keeps it (stale after 10 s, ``features/depth.py``) until the next poll.
    row = last_row_before(
        root, Kind.ORDERBOOK_SNAPSHOTS, symbol, before_us, raw=(REST_FEED_RE.pattern, True)
    )
    if row is not None:
        found.append(row)
    found.sort(key=lambda r: r[0])
    return [parse_message(raw, receive_ts=ts)[part] for ts, raw, part in found]


def _last_trade_price(root: Path, symbol: str, before_us: int, days: int) -> float | None:
    row = last_row_before(root, Kind.TRADES, symbol, before_us, max_days_back=days)
    if row is None:
        return None
    ts, raw, part = row
    return parse_message(raw, receive_ts=ts)[part].price  # type: ignore[union-attr]


def _merged(streams: list[Iterator[MarketEvent]]) -> Iterator[MarketEvent]:
    """Receive-time merge of per-kind streams (order among equal times of different kinds
    cannot change any vector: all of them apply before the next boundary)."""
    return heapq.merge(*streams, key=lambda e: e.receive_ts)


def state_as_of(
    raw_root: Path | str,
    symbols: Iterable[str],
    t_us: int,
    *,
    engine: FeatureEngine | None = None,
    boundary: IngestBoundary | None = None,
    lookbacks: Lookbacks | None = None,
    max_days_back: int = 3,
) -> tuple[FeatureEngine, WarmReport]:
    """A FeatureEngine (``engine`` if given, else a default one) at state as of ``t_us``."""
    started = time.perf_counter()
    root = Path(raw_root)
    engine = engine or FeatureEngine()
    boundary = boundary or IngestBoundary()
    lookbacks = lookbacks or Lookbacks.default()
    wanted = sorted(set(symbols))
    report = WarmReport(t_us, wanted)
    book_start, trade_start, candle_start = lookbacks.starts(t_us)
    reader = RawReader(root, typed=True)
    for symbol in wanted:
        checkpoint: BookCheckpoint | None = None
        cp = last_row_before(
            root, Kind.ORDERBOOK_CHECKPOINTS, symbol, book_start + 1, max_days_back=max_days_back
        )
        snap = last_row_before(
            root,
            Kind.ORDERBOOK_SNAPSHOTS,
            symbol,
            book_start + 1,
            raw=(REST_FEED_RE.pattern, False),
            max_days_back=max_days_back,
        )
        if cp is None and snap is None:
            # Nothing before: the first checkpoint or snapshot after (the book is unknown until
            # then, exactly as it was live).
            cp = _first_row_from(root, Kind.ORDERBOOK_CHECKPOINTS, symbol, book_start, t_us)
            snap = _first_row_from(root, Kind.ORDERBOOK_SNAPSHOTS, symbol, book_start, t_us)
            if cp is not None and snap is not None:
                cp, snap = (cp, None) if cp[0] <= snap[0] else (None, snap)
        if cp is not None and (snap is None or cp[0] >= snap[0]):
            checkpoint = BookCheckpoint.from_json(cp[1])
            book_from, report.book_from[symbol] = cp[0], "checkpoint"
        elif snap is not None:
            book_from, report.book_from[symbol] = snap[0], "snapshot"
        else:
            book_from, report.book_from[symbol] = book_start, "none"
        fine_start = min(book_from, trade_start)
        warm = Warmup(engine, t_us, fine_start_us=fine_start, lookbacks=lookbacks)
        # The last funding values from before the fine phase (possibly hours old), applied
        # first: later ticker / funding messages overwrite them, as live.
        for event in _seed_events(root, symbol, fine_start):
            warm.feed(event)

        streams = [
            boundary.replay(reader.iter_keyed_events(kinds, [symbol], start, t_us))
            for kinds, start in (
                ((Kind.KLINES,), candle_start),
                ((Kind.TICKER, Kind.FUNDING), fine_start),
                ((Kind.TRADES,), trade_start),
                (BOOK_KINDS, book_from),
            )
        ]
        # The checkpoint joins at the whole second it was taken in, before any event of that
        # second: the grid then records that second's mid as live did (see BookCheckpoint).
        restore_at = None if checkpoint is None else book_from - book_from % US_PER_S
        last_trade: float | None = None
        last_close: float | None = None
        for event in _merged(streams):
            if restore_at is not None and event.receive_ts >= restore_at:
                _restore(engine, checkpoint, restore_at)  # type: ignore[arg-type]
                restore_at = None
            warm.feed(event)
            report.events += 1
            kind = type(event)
            if kind is Trade:
                last_trade = event.price  # type: ignore[union-attr]
            elif kind is Kline and event.confirmed:  # type: ignore[union-attr]
                last_close = event.close  # type: ignore[union-attr]
        if restore_at is not None:
            _restore(engine, checkpoint, restore_at)  # type: ignore[arg-type]
        warm.finish()
        if last_trade is None:
            # No trade in the trade window: the last one before it, however old (3 days).
            last_trade = _last_trade_price(root, symbol, trade_start, max_days_back)
        if last_trade is not None:
            report.last_trade_price[symbol] = last_trade
        if last_close is not None:
            report.last_candle_close[symbol] = last_close
    report.elapsed_s = time.perf_counter() - started
    log.info("state_as_of", **report.as_dict())
    return engine, report


def _restore(engine: FeatureEngine, checkpoint: BookCheckpoint, second_us: int) -> None:
    state = engine.ensure_state(checkpoint.symbol)
    restore_book(checkpoint, into=state.book)
    state.stream_depth = checkpoint.depth
    state.mids.record(second_us, checkpoint.boundary_mid)


def rebuild_period(
    raw_root: Path | str,
    symbol: str,
    start_us: int,
    end_us: int,
    *,
    intervals_s: Iterable[int] = (1, 3, 15, 60),
    plan: FeaturePlan | None = None,
) -> list[FeatureVector]:
    """Every vector with a close time in ``[start_us, end_us)``, rebuilt from the raw store
    (with ``plan``, default the bundled one): state as of ``start_us``, then the stored events
    of the period, then the boundaries the live timer would close before ``end_us``."""
    boundary = IngestBoundary()
    plan = plan or BUNDLED_PLAN
    engine, _ = state_as_of(
        raw_root,
        [symbol],
        start_us,
        engine=FeatureEngine(intervals_s=intervals_s, plan=plan),
        boundary=boundary,
        lookbacks=Lookbacks.for_plan(plan),
    )
    out: list[FeatureVector] = []
    reader = RawReader(Path(raw_root), typed=True)
    for event in boundary.replay(reader.iter_keyed_events(None, [symbol], start_us, end_us)):
        out += engine.process(event)
    out += engine.advance_to(end_us - 1)
    return [v for v in out if start_us <= v.timestamp < end_us]
