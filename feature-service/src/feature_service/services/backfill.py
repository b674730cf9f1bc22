"""Backfill of history from Bybit REST into the raw store, one (data type, day) at a time.

Rows are written through ``RawWriterSync`` as the live path writes them (a ws-gateway envelope
in ``raw``, the typed columns), labelled ``source=backfill``, so the dataset builder and
``compute`` cannot tell them from recorded data. **Known time**: a candle's receive time is its
close (start + interval), the earliest moment a live service could have had it, never its start;
a funding record's receive time is its ``fundingRateTimestamp``. A day lives in the folder of
those receive times (the raw store's rule), so the candle opening at 23:59 belongs to the next
day.

Per day: skip it when already complete (any source); else fetch explicit ``[start, end]``
windows of at most 1000 bars, de-duplicate across pages, drop the unclosed last bar, keep only
candles not stored yet, write, then validate the saved files (``backfill_validate``); a day
that fails is deleted and fetched again (``max_day_attempts``).

REST has no history of trades, order books or tickers (only the present): those data types are
reported as unavailable with the way to get them (the public archives, ``feature-service
import``), never faked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feature_service.adapters.clients.bybit_rest import (
    INTERVAL_MS,
    KLINE_MAX_LIMIT,
    BybitRestClient,
    FundingRecord,
)
from feature_service.adapters.rawstore.layout import (
    US_PER_DAY,
    Kind,
    day_name,
    day_number,
    day_of,
    day_start_us,
)
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.logging import get_logger
from feature_service.market.events import US_PER_MS, Funding, Kline, MarketEvent
from feature_service.services.backfill_validate import DayInvalid, day_keys, validate_saved_day

log = get_logger(__name__)

HISTORY_TYPES = ("klines", "funding")
PRESENT_ONLY = {
    "trades": "Bybit REST serves only the latest 60 (spot) / 1000 (linear) trades, no history: "
    "import the public trade archives with `feature-service import bybit-trades FILE...`",
    "orderbook": "Bybit REST serves only the current order book, no history: import the "
    "public order book archives with `feature-service import bybit-orderbook FILE...`",
    "ticker": "Bybit REST serves only the current ticker, no history; ticker features stay "
    "null over backfilled periods",
}
DATA_TYPES = (*HISTORY_TYPES, *PRESENT_ONLY)
# Registry input_sources -> backfill data types ("clock" needs no data).
SOURCE_TO_TYPE = {"kline": "klines", "funding": "funding", "trades": "trades"}
SOURCE_TO_TYPE |= {"orderbook": "orderbook", "ticker": "ticker"}
WriteFn = Callable[[Sequence[MarketEvent]], list[Path]]


def required_data_types(registry: Any) -> list[str]:
    """Data types the registry's features read (T256), in ``DATA_TYPES`` order."""
    wanted = {
        SOURCE_TO_TYPE[s]
        for f in getattr(registry, "features", ())
        for s in f.input_sources
        if s in SOURCE_TO_TYPE
    }
    return [t for t in DATA_TYPES if t in wanted] or list(HISTORY_TYPES)


def parse_data_types(names: Iterable[str] | None, registry: Any = None) -> list[str]:
    if not names:
        return required_data_types(registry)
    aliases = {"kline": "klines", "trade": "trades", "tickers": "ticker", "book": "orderbook"}
    out = []
    for name in names:
        key = aliases.get(name.strip().lower(), name.strip().lower())
        if key not in DATA_TYPES:
            raise ValueError(f"unknown data type {name!r}; expected some of {list(DATA_TYPES)}")
        if key not in out:
            out.append(key)
    return out


def days_between(start: dt.date, end: dt.date) -> list[str]:
    """Day names from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [
        day_name(n) for n in range(day_number(start.isoformat()), day_number(end.isoformat()) + 1)
    ]


@dataclass(slots=True)
class DayOutcome:
    data_type: str
    day: str
    status: str  # stored | complete | failed
    rows: int = 0
    attempts: int = 0
    missing: int = 0  # expected but not served by the exchange
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data_type": self.data_type, "day": self.day, "status": self.status}
        out |= {"rows": self.rows, "attempts": self.attempts}
        if self.missing:
            out["missing"] = self.missing
        if self.problems:
            out["problems"] = self.problems
        return out


# -- conversions --------------------------------------------------------------------------------
def kline_event(symbol: str, interval: str, k: Any, category: str) -> Kline:
    step_us = INTERVAL_MS[interval] * US_PER_MS
    start = k.start_ms * US_PER_MS
    close_time = start + step_us
    return Kline(
        symbol=symbol,
        topic=f"kline.{interval}.{symbol}",
        exchange_ts=close_time,
        gateway_ts=None,
        receive_ts=close_time,  # known time: the candle exists only once it has closed
        event_id=f"bybit-rest:{category}:kline.{interval}.{symbol}:{k.start_ms}",
        interval=interval,
        start=start,
        end=close_time - US_PER_MS,
        open=float(k.open),
        high=float(k.high),
        low=float(k.low),
        close=float(k.close),
        volume=float(k.volume),
        turnover=float(k.turnover),
        confirmed=True,
    )


def funding_events(symbol: str, records: Sequence[FundingRecord], category: str) -> list[Funding]:
    """Ascending records -> events. ``next_funding_time`` assumes the interval seen so far
    continues (what was announced at that moment), never the next record's actual time."""
    out: list[Funding] = []
    for i, rec in enumerate(records):
        ts = rec.timestamp_ms * US_PER_MS
        gap = ts - records[i - 1].timestamp_ms * US_PER_MS if i else None
        out.append(
            Funding(
                symbol=symbol,
                topic=f"fundingRate.{symbol}",
                exchange_ts=ts,
                gateway_ts=None,
                receive_ts=ts,
                event_id=f"bybit-rest:{category}:funding.{symbol}:{rec.timestamp_ms}",
                funding_rate=float(rec.funding_rate),
                next_funding_time=None if gap is None else ts + gap,
                funding_rate_ts=ts,
            )
        )
    return out


# -- the backfiller -----------------------------------------------------------------------------
class Backfiller:
    """Runs inside one event loop (a worker thread's, or the CLI's); blocking file work is
    small per day (one part file), so it runs inline in that loop, never in the live one."""

    def __init__(
        self,
        client: BybitRestClient,
        raw_root: Path,
        *,
        category: str | None = None,
        interval: str = "1",
        now_ms: Callable[[], int] | None = None,
        write: WriteFn | None = None,
        max_day_attempts: int = 3,
    ) -> None:
        if interval not in INTERVAL_MS:
            raise ValueError(f"unsupported kline interval {interval!r}")
        self.client = client
        self.raw_root = Path(raw_root)
        self.category = category or client.category
        self.interval = interval
        self._now_ms = now_ms or (lambda: int(dt.datetime.now(dt.UTC).timestamp() * 1000))
        self._write = write or self._write_parts
        self.max_day_attempts = max_day_attempts
        self.requests = 0

    def _write_parts(self, events: Sequence[MarketEvent]) -> list[Path]:
        writer = RawWriterSync(self.raw_root, source="backfill")
        return [part.path for part in writer.write_events(events)]

    # -- klines ------------------------------------------------------------------------------
    def kline_day_complete(self, symbol: str, day: str) -> bool:
        return not self._missing_starts(symbol, day)[0]

    def _missing_starts(self, symbol: str, day: str) -> tuple[list[int], int]:
        """Candle starts (ms) whose close falls in ``day`` and before now, not stored yet."""
        step = INTERVAL_MS[self.interval]
        lo = day_start_us(day) // US_PER_MS
        hi = min(lo + US_PER_DAY // US_PER_MS, self._now_ms() + 1)
        first = -(-(lo - step) // step) * step
        wanted = [s for s in range(first, hi - step, step) if lo <= s + step < hi]
        have = {k // US_PER_MS for k in day_keys(self.raw_root, Kind.KLINES, day, symbol)}
        return [s for s in wanted if s not in have], len(wanted)

    async def klines_day(self, symbol: str, day: str) -> DayOutcome:
        outcome = DayOutcome("klines", day, "complete")
        for attempt in range(1, self.max_day_attempts + 1):
            missing, _total = self._missing_starts(symbol, day)
            if not missing:
                return outcome
            outcome.attempts = attempt
            events = await self._fetch_klines(symbol, missing)
            outcome.missing = len(missing) - len(events)
            if not events:  # the exchange has nothing for these minutes (before listing)
                outcome.status = "stored"
                return outcome
            if self._save(outcome, Kind.KLINES, symbol, day, events):
                return outcome
        outcome.status = "failed"
        return outcome

    async def _fetch_klines(self, symbol: str, starts: list[int]) -> list[Kline]:
        step = INTERVAL_MS[self.interval]
        wanted = set(starts)
        now = self._now_ms()
        got: dict[int, Any] = {}
        for w_start, w_end in _windows(starts, step):
            page = await self.client.get_klines(
                symbol, self.interval, w_start, w_end, limit=KLINE_MAX_LIMIT,
                category=self.category,
            )  # fmt: skip
            self.requests += 1
            for k in page:
                # Unclosed bar (close after now) and bars outside the window are dropped.
                if k.start_ms in wanted and k.start_ms + step <= now:
                    got.setdefault(k.start_ms, k)
        return [kline_event(symbol, self.interval, got[s], self.category) for s in sorted(got)]

    # -- funding -----------------------------------------------------------------------------
    async def funding_days(self, symbol: str, days: Sequence[str]) -> list[DayOutcome]:
        """Funding history of ``days`` (paged backwards by ``endTime``), stored per day."""
        if not days:
            return []
        lo = day_start_us(days[0]) // US_PER_MS
        hi = min(day_start_us(days[-1]) // US_PER_MS + 86_400_000, self._now_ms() + 1)
        records: dict[int, FundingRecord] = {}
        end = hi - 1
        while end >= lo:
            page = await self.client.get_funding_history(
                symbol, end_ms=end, limit=200, category=self.category
            )
            self.requests += 1
            older = [r for r in page if r.timestamp_ms <= end]
            for r in older:
                if r.timestamp_ms >= lo:
                    records.setdefault(r.timestamp_ms, r)
            if len(page) < 200 or not older:
                break
            end = min(r.timestamp_ms for r in older) - 1
        ordered = [records[t] for t in sorted(records)]
        events = funding_events(symbol, ordered, self.category)
        by_day: dict[str, list[Funding]] = {d: [] for d in days}
        for ev in events:
            by_day.setdefault(day_of(ev.receive_ts), []).append(ev)
        outcomes = []
        for day in days:
            outcomes.append(self._funding_day(symbol, day, by_day.get(day, [])))
        return outcomes

    def _funding_day(self, symbol: str, day: str, events: list[Funding]) -> DayOutcome:
        outcome = DayOutcome("funding", day, "complete")
        for attempt in range(1, self.max_day_attempts + 1):
            have = set(day_keys(self.raw_root, Kind.FUNDING, day, symbol))
            todo = [e for e in events if e.funding_rate_ts not in have]
            if not todo:
                return outcome
            outcome.attempts = attempt
            if self._save(outcome, Kind.FUNDING, symbol, day, todo):
                return outcome
        outcome.status = "failed"
        return outcome

    # -- save + validate ---------------------------------------------------------------------
    def _save(
        self, outcome: DayOutcome, kind: Kind, symbol: str, day: str, events: list[Any]
    ) -> bool:
        paths = self._write(events)
        try:
            validate_saved_day(self.raw_root, kind, day, symbol, paths, events)
        except DayInvalid as exc:
            log.warning(
                "backfill_day_invalid", kind=kind.value, symbol=symbol, day=day,
                attempt=outcome.attempts, problems=exc.problems,
            )  # fmt: skip
            outcome.problems = exc.problems
            for path in paths:
                path.unlink(missing_ok=True)  # only what this attempt wrote
            return False
        outcome.status, outcome.rows = "stored", len(events)
        return True


def _windows(starts: list[int], step: int) -> list[tuple[int, int]]:
    """Explicit ``[start, end]`` request windows of at most 1000 bars covering the sorted
    ``starts``; stretches without a missing candle are not requested."""
    windows: list[tuple[int, int]] = []
    i = 0
    while i < len(starts):
        limit = starts[i] + (KLINE_MAX_LIMIT - 1) * step
        j = i
        while j + 1 < len(starts) and starts[j + 1] <= limit:
            j += 1
        windows.append((starts[i], starts[j]))
        i = j + 1
    return windows
