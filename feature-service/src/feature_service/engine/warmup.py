"""Engine state as of a moment T from an ordered event stream, emitting nothing before T.

How far back each input matters (``Lookbacks``, derived from what the feature families read):
- book: the 1 s mid grid must hold the 301 s before T and its return sums are recomputed at
  whole multiples of their span (``windows/mids.py``), so the book is needed from
  ``T - (301 + 300 + 2) s``; the checkpoint or snapshot it starts from also carries the churn
  history and how long the book has been usable;
- trades: the longest trade window (60 s);
- candles: the ``KlineHistory`` ring (1,500 confirmed candles) plus one recompute period of its
  rolling sums (``windows/klines.py``), so every window the candle features read holds the
  same candles, summed in the same order, as a run that never stopped;
- funding / ticker: the last values, whenever they came.

Two phases, so a day of candles costs no vector computations: events before ``fine_start``
(the earliest of the book and trade starts) are applied straight to the symbol's state (no
clock, no boundaries; old trades are skipped); from ``fine_start`` on, events go through
``FeatureEngine.process`` exactly as live, and the vectors are discarded. ``finish`` closes the
boundaries before T, so the first vector the engine emits afterwards is the one at the first
boundary >= T, computed from exactly the state an uninterrupted run had.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from feature_service.engine.core import FeatureEngine
from feature_service.features import orderflow, price
from feature_service.features.library import FeaturePlan
from feature_service.features.state import KLINE_MIN_LEN, SymbolState
from feature_service.market.events import US_PER_S, MarketEvent, Trade
from feature_service.windows.klines import ONE_MINUTE_US, RESYNC_CANDLES

KLINE_HISTORY = KLINE_MIN_LEN  # SymbolState keeps at least this many candles
LONGEST_RETURN_S = 300  # volatility_5m: its return sums are recomputed at multiples of 300 s


@dataclass(frozen=True, slots=True)
class Lookbacks:
    book_us: int
    trades_us: int
    candles_us: int

    @classmethod
    def default(cls) -> Lookbacks:
        return cls(
            book_us=(price.MID_HORIZON_S + LONGEST_RETURN_S + 2) * US_PER_S,
            trades_us=max(*price.TRADE_SPANS_US, *orderflow.TRADE_SPANS_US),
            candles_us=(KLINE_HISTORY + RESYNC_CANDLES + 2) * ONE_MINUTE_US,
        )

    @classmethod
    def for_plan(cls, plan: FeaturePlan) -> Lookbacks:
        """What ``plan`` reads: a version adding ``vwap_300s`` or a longer volatility horizon
        needs more trades or mids than the bundled one, and warms from that much. Normalised
        features also need their window of 1 s closes, computed from an exact state."""
        req = plan.requirements
        book_s = req.mid_horizon_s + max(req.mid_return_spans_s, default=0) + 2
        norm_s = max((n.lookback_s for n in plan.normalization.values()), default=0)
        kline_len = max(KLINE_HISTORY, req.kline_len + 1)
        return cls(
            book_us=(book_s + norm_s) * US_PER_S,
            trades_us=max(req.trade_spans_us, default=US_PER_S) + norm_s * US_PER_S,
            candles_us=(kline_len + RESYNC_CANDLES + 2) * ONE_MINUTE_US,
        )

    def starts(self, t_us: int) -> tuple[int, int, int]:
        """(book, trades, candles) start times for state as of ``t_us``."""
        return t_us - self.book_us, t_us - self.trades_us, t_us - self.candles_us


class Warmup:
    """Feed events (receive order, all before ``t_us``), then ``finish()``."""

    def __init__(
        self,
        engine: FeatureEngine,
        t_us: int,
        *,
        fine_start_us: int | None = None,
        lookbacks: Lookbacks | None = None,
    ) -> None:
        self.engine = engine
        self.t_us = t_us
        self.lookbacks = lookbacks or Lookbacks.default()
        book_start, trade_start, _ = self.lookbacks.starts(t_us)
        self.trade_start_us = trade_start
        self.fine_start_us = (
            min(book_start, trade_start) if fine_start_us is None else fine_start_us
        )
        self.applied = 0
        self.processed = 0
        self.discarded_vectors = 0

    def state(self, symbol: str) -> SymbolState:
        return self.engine.ensure_state(symbol)

    def feed(self, event: MarketEvent) -> None:
        t = event.receive_ts
        if t >= self.t_us:
            raise ValueError(f"warm-up event at {t} is not before T = {self.t_us}")
        if t < self.fine_start_us:
            if type(event) is Trade and t < self.trade_start_us:
                return  # outside every trade window at T
            # Coarse phase: state only; no mids, no boundaries (nothing here is time-driven).
            self.state(event.symbol).apply(event)
            self.applied += 1
            return
        self.discarded_vectors += len(self.engine.process(event))
        self.processed += 1

    def finish(self) -> None:
        """Close every boundary before T (as the live timer would have), emitting nothing."""
        if self.t_us > 0:
            self.discarded_vectors += len(self.engine.advance_to(self.t_us - 1))


def after_warmup(
    events: Iterable[MarketEvent], warmup: Warmup, end_us: int | None = None
) -> Iterator[MarketEvent]:
    """Feed the events before ``warmup.t_us`` to the warm-up, close it, then yield the events
    of ``[T, end_us)`` (``compute --from/--to`` on a recording: the state as of T comes from
    the recording's own earlier lines)."""
    t = warmup.t_us
    finished = False
    for event in events:
        ts = event.receive_ts
        if not finished:
            if ts < t:
                warmup.feed(event)
                continue
            warmup.finish()
            finished = True
        if end_us is not None and ts >= end_us:
            return
        yield event
    if not finished:
        warmup.finish()
