"""Feature vectors: compute time per vector (p50 / p99) and the engine's cost per event.

Input: a synthetic BTCUSDT market, built as the ws-gateway envelopes the service consumes and
parsed once up front: 1500 confirmed 1 m klines of history, then ``minutes`` of live traffic --
the ``orderbook.50`` stream of ``bench_book`` (a delta every 20 ms), public trades at 10-20 per
second (aggressive orders filling one to several makers at the touch), 100 ms ticker deltas,
klines (unconfirmed every 2 s, confirmed at each minute end) and one funding message a minute.
Only the last minute of trades is inside any window, but an hour of them keeps eviction busy.

Rows:
- ``features.vector p50/p99``: ``SymbolState.on_time(t); compute(t).complete()`` at every 1 s
  close (the first minutes, while the windows fill, are left out). Baseline: ``orjson.dumps`` of
  the resulting 48-value dict, the unavoidable cost of shipping a vector, timed right after each
  vector so both see the same machine.
- ``features.vector budget headroom``: the spec's 70 ms per-vector budget / p99 of the wall
  time (the budget is a latency; CPU time would flatter a shared machine).
- ``engine.process``: ``FeatureEngine.process`` per event over the whole stream, vectors for the
  1 s, 3 s, 15 s and 1 m intervals included. ``engine.ingest`` adds ``parse_message``.
  Baseline: ``orjson.loads`` of the same envelopes, interleaved 500 messages at a time.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchmarks.bench_book import (
    START_US,
    SYMBOL,
    BookSim,
    Wire,
    book_messages,
    parse_all,
    price_text,
    size_text,
)
from benchmarks.common import (
    Result,
    Step,
    best,
    compare_chunked,
    cpu_clock_cost_ns,
    cpu_clock_ns,
    gc_paused,
    percentiles,
    result,
)
from feature_service.engine.core import FeatureEngine
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.features.state import SymbolState
from feature_service.ingest import IngestBoundary
from feature_service.market.events import US_PER_S, MarketEvent
from feature_service.market.parsing import parse_message

BUDGET_MS = 70.0  # the spec's budget for one vector (FeatureEngine's slow-computation warning)
MINUTE_US = 60 * US_PER_S
TRADE_TOPIC = f"publicTrade.{SYMBOL}"
TICKER_TOPIC = f"tickers.{SYMBOL}"
KLINE_TOPIC = f"kline.1.{SYMBOL}"
FUNDING_TOPIC = f"fundingRate.{SYMBOL}"
FUNDING_INTERVAL_MS = 8 * 3_600_000

Message = tuple[int, bytes]  # (service receive time, envelope bytes)


# --------------------------------------------------------------------------- synthetic market


def _turnover_text(tick_lots: int) -> str:
    # tick (0.1 USDT) x lot (0.001 BTC) = 1e-4 USDT
    return f"{tick_lots // 10_000}.{tick_lots % 10_000:04d}"


def _kline_payload(
    start_us: int,
    o: int,
    h: int,
    lo: int,
    c: int,
    lots: int,
    turnover: int,
    confirm: bool,
    ts_ms: int,
) -> dict[str, Any]:
    start_ms = start_us // 1_000
    return {
        "start": start_ms,
        "end": start_ms + 59_999,
        "interval": "1",
        "open": price_text(o),
        "close": price_text(c),
        "high": price_text(h),
        "low": price_text(lo),
        "volume": size_text(lots),
        "turnover": _turnover_text(turnover),
        "confirm": confirm,
        "timestamp": ts_ms,
        "topic": KLINE_TOPIC,
    }


def history_klines(
    n: int, last_close_tick: int, seed: int, end_us: int = START_US
) -> list[Message]:
    """``n`` confirmed 1 m candles ending at ``end_us``, a random walk (~0.07 % per minute)
    whose last close is ``last_close_tick``; volumes log-normal around 45 BTC."""
    rng = random.Random(seed)
    wire = Wire(random.Random(seed + 1))
    steps = [rng.gauss(0.0, 7e-4) for _ in range(n)]
    level = math.log(last_close_tick) - sum(steps)
    out: list[Message] = []
    close = round(math.exp(level))
    for i, step in enumerate(steps):
        start = end_us - (n - i) * MINUTE_US
        open_ = close
        level += step
        close = round(math.exp(level)) if i < n - 1 else last_close_tick
        wick = abs(close - open_) // 2 + 1
        high = max(open_, close) + rng.randint(0, wick)
        low = min(open_, close) - rng.randint(0, wick)
        lots = int(rng.lognormvariate(math.log(45_000), 0.5)) + 1
        turnover = lots * (open_ + close) // 2
        ts_ms = (start + MINUTE_US) // 1_000 + rng.randint(5, 15)
        payload = _kline_payload(start, open_, high, low, close, lots, turnover, True, ts_ms)
        out.append(wire.envelope("kline", KLINE_TOPIC, ts_ms * 1_000, payload))
    return out


@dataclass(slots=True)
class _Candle:
    start: int
    open: int
    high: int
    low: int
    close: int
    lots: int = 0
    turnover: int = 0


@dataclass
class _Flow:
    """Everything but the book, following the book's touch step by step (``on_step``)."""

    rng: random.Random
    mean_trades_per_s: float = 15.0
    fills_p: float = 0.55  # fills per aggressive order ~ Geometric(p): mean 1.8
    trades: list[Message] = field(default_factory=list)
    tickers: list[Message] = field(default_factory=list)
    klines: list[Message] = field(default_factory=list)
    funding: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        seed = self.rng.getrandbits(32)
        self._wires = {name: Wire(random.Random(seed + i)) for i, name in enumerate("TKLF")}
        self._next_order_us = START_US
        self._activity = 0.0  # log of the trade-rate multiplier, kept within 10-20 trades/s
        self._trade_seq = 9_000_000_000
        self._candle: _Candle | None = None
        self._last_tick: int | None = None
        self._volume_24h = 82_000_000  # lots
        self._tickers_sent = 0

    def on_step(self, ts: int, sim: BookSim) -> None:
        if ts % US_PER_S == 0:
            bound = math.log(4 / 3)
            self._activity = min(bound, max(-bound, 0.9 * self._activity + self.rng.gauss(0, 0.1)))
        bid, ask = sim.best_bid_tick(), sim.best_ask_tick()
        if self._candle is None:
            self._candle = _Candle(START_US, ask, ask, ask, ask)
        # Trades strictly before ts: one at exactly a minute end belongs to the next candle.
        while self._next_order_us < ts:
            self._order(self._next_order_us, bid, ask)
            rate = self.mean_trades_per_s * math.exp(self._activity) * self.fills_p
            self._next_order_us += 1 + int(self.rng.expovariate(rate) * US_PER_S)
        if ts % 100_000 == 0:
            self._ticker(ts, sim)
        if ts % MINUTE_US == 0:
            self._close_candle(ts)
            self._funding(ts)
        elif ts % (2 * US_PER_S) == 0:
            self._kline(ts, confirm=False)

    def _order(self, at_us: int, bid: int, ask: int) -> None:
        rng = self.rng
        buy = rng.random() < 0.5
        tick = ask if buy else bid
        fills = 1
        while fills < 6 and rng.random() > self.fills_p:
            fills += 1
        ms = at_us // 1_000
        candle = self._candle
        assert candle is not None
        for _ in range(fills):
            lots = min(int(rng.lognormvariate(math.log(15), 1.6)) + 1, 10_000)
            self._trade_seq += 1
            payload = {
                "T": ms,
                "s": SYMBOL,
                "S": "Buy" if buy else "Sell",
                "v": size_text(lots),
                "p": price_text(tick),
                "L": "PlusTick" if buy else "MinusTick",
                "i": f"{rng.getrandbits(64):016x}",
                "BT": False,
                "RPI": False,
                "seq": self._trade_seq,
                "topic": TRADE_TOPIC,
            }
            self.trades.append(self._wires["T"].envelope("trade", TRADE_TOPIC, ms * 1_000, payload))
            candle.high = max(candle.high, tick)
            candle.low = min(candle.low, tick)
            candle.close = tick
            candle.lots += lots
            candle.turnover += lots * tick
            self._volume_24h += lots
        self._last_tick = tick

    def _ticker(self, ts: int, sim: BookSim) -> None:
        bid, ask = sim.best_bid_tick(), sim.best_ask_tick()
        payload: dict[str, Any] = {
            "symbol": SYMBOL,
            "bid1Price": price_text(bid),
            "bid1Size": size_text(sim.bids.sizes[-bid]),
            "ask1Price": price_text(ask),
            "ask1Size": size_text(sim.asks.sizes[ask]),
        }
        if self._last_tick is not None:
            payload["lastPrice"] = price_text(self._last_tick)
            payload["volume24h"] = size_text(self._volume_24h)
        if self._tickers_sent % 10 == 0:  # Bybit refreshes these about once a second
            payload["markPrice"] = price_text((bid + ask) // 2)
            payload["indexPrice"] = price_text((bid + ask) // 2 - 3)
            payload["openInterest"] = "58218.059"
            payload["fundingRate"] = "0.0001"
            payload["nextFundingTime"] = str(_next_funding_ms(ts))
        self._tickers_sent += 1
        payload["topic"] = TICKER_TOPIC
        self.tickers.append(self._wires["K"].envelope("ticker", TICKER_TOPIC, ts, payload))

    def _kline(self, ts: int, confirm: bool) -> None:
        c = self._candle
        assert c is not None
        ts_ms = ts // 1_000 + (self.rng.randint(5, 15) if confirm else 0)
        payload = _kline_payload(
            c.start, c.open, c.high, c.low, c.close, c.lots, c.turnover, confirm, ts_ms
        )
        self.klines.append(self._wires["L"].envelope("kline", KLINE_TOPIC, ts_ms * 1_000, payload))

    def _close_candle(self, ts: int) -> None:
        self._kline(ts, confirm=True)
        c = self._candle
        assert c is not None
        self._candle = _Candle(ts, c.close, c.close, c.close, c.close)

    def _funding(self, ts: int) -> None:
        next_ms = _next_funding_ms(ts)
        payload = {
            "symbol": SYMBOL,
            "fundingRate": "0.0001",
            "fundingRateTimestamp": str(next_ms - FUNDING_INTERVAL_MS),
            "nextFundingTime": str(next_ms),
            "topic": FUNDING_TOPIC,
        }
        self.funding.append(self._wires["F"].envelope("funding", FUNDING_TOPIC, ts, payload))


def _next_funding_ms(ts_us: int) -> int:
    ms = ts_us // 1_000
    return (ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


@dataclass(slots=True)
class Market:
    history: list[Message]  # confirmed 1 m klines before the live part
    live: list[Message]  # every topic, in service receive order
    trades: int
    minutes: int


def synth_market(minutes: int, history: int = 1500, seed: int = 11) -> Market:
    flow = _Flow(random.Random(seed))
    steps = minutes * 60 * US_PER_S // 20_000
    book = book_messages(steps, seed=seed, on_step=flow.on_step)
    # History ends where the live part starts: the first trade prices sit near 100,000.
    past = history_klines(history, last_close_tick=1_000_000, seed=seed + 2)
    streams = [book.messages, flow.trades, flow.tickers, flow.klines, flow.funding]
    live = list(heapq.merge(*streams, key=lambda m: m[0]))
    return Market(history=past, live=live, trades=len(flow.trades), minutes=minutes)


# --------------------------------------------------------------------------- measurement


def _warm_state(history: list[MarketEvent]) -> SymbolState:
    state = SymbolState(SYMBOL)
    for event in history:
        state.apply(event)
    return state


DUMPS_PER_CLOSE = 20  # one dumps call is ~1.5 µs: a batch keeps the clock's cost out of it


@dataclass(slots=True)
class VectorPass:
    """One pass over the stream: per-close microseconds of the vector (CPU and wall) and of its
    baseline (CPU)."""

    vector_us: list[float]
    vector_wall_us: list[float]
    dumps_us: list[float]
    features: dict[str, Any]


def vector_pass(history: list[MarketEvent], events: list[MarketEvent]) -> VectorPass:
    """Time ``on_time(t); compute(t).complete()`` at every 1 s close, and right after it
    ``orjson.dumps`` of the result: the baseline is sampled at the same moments as the vector,
    so whatever the neighbours do to the caches weighs on both alike."""
    state = _warm_state(history)
    apply = state.apply
    on_time = state.on_time
    compute = state.compute
    dumps = orjson.dumps
    batch = range(DUMPS_PER_CLOSE)
    cpu = cpu_clock_ns
    wall = time.perf_counter_ns
    vector_ns: list[int] = []
    wall_ns: list[int] = []
    dumps_ns: list[int] = []
    features: dict[str, Any] = {}
    next_close = (events[0].receive_ts // US_PER_S + 1) * US_PER_S
    with gc_paused():
        for event in events:
            receive_ts = event.receive_ts
            while receive_ts >= next_close:
                w0 = wall()
                c0 = cpu()
                on_time(next_close)
                features = compute(next_close).complete()
                c1 = cpu()
                w1 = wall()
                for _ in batch:
                    dumps(features)
                dumps_ns.append(cpu() - c1)
                vector_ns.append(c1 - c0)
                wall_ns.append(w1 - w0)
                next_close += US_PER_S
            apply(event)
    # Each CPU interval holds one clock call, each wall interval two of them.
    cost = cpu_clock_cost_ns()
    return VectorPass(
        vector_us=[max(ns - cost, 1.0) / 1_000 for ns in vector_ns],
        vector_wall_us=[max(ns - 2 * cost, 1.0) / 1_000 for ns in wall_ns],
        dumps_us=[max(ns - cost, 1.0) / 1_000 / DUMPS_PER_CLOSE for ns in dumps_ns],
        features=features,
    )


def measure_vector(
    history: list[MarketEvent], events: list[MarketEvent], market: Market, passes: int
) -> list[Result]:
    """Percentiles of the pass with the lowest CPU p99."""
    figures: list[tuple[float, ...]] = []
    features: dict[str, Any] = {}
    for _ in range(passes):
        run = vector_pass(history, events)
        skip = min(300, len(run.vector_us) // 4)  # the windows (5 min of mids) still filling
        p50, p99 = percentiles(run.vector_us[skip:])
        w50, w99 = percentiles(run.vector_wall_us[skip:])
        b50, b99 = percentiles(run.dumps_us[skip:])
        figures.append((p99, p50, w50, w99, b50, b99, len(run.vector_us) - skip))
        features = run.features
    if len(features) != len(FEATURE_NAMES):
        raise RuntimeError(f"vector has {len(features)} values, expected {len(FEATURE_NAMES)}")
    p99, p50, w50, w99, b50, b99, kept = min(figures)
    nulls = sum(v is None for v in features.values())
    rate = market.trades / (market.minutes * 60)
    note = (
        f"{int(kept):,} closes, best of {passes} passes; {len(features)} values, {nulls} null; "
        f"{rate:.1f} trades/s over {market.minutes} min"
    )
    return [
        result("features.vector p50", p50, "µs", "orjson.dumps(vector) p50", b50, note),
        result("features.vector p99", p99, "µs", "orjson.dumps(vector) p99", b99, note),
        Result(
            name="features.vector budget headroom",
            value=BUDGET_MS * 1_000 / w99,
            unit="x",
            note=(
                f"{BUDGET_MS:.0f} ms budget / wall p99 {w99:.1f} µs "
                f"(wall p50 {w50:.1f} µs, CPU p99 {p99:.1f} µs)"
            ),
        ),
    ]


def measure_engine(
    history: list[MarketEvent], events: list[MarketEvent], market: Market, repeat: int
) -> list[Result]:
    warmup = 1
    # One pre-warmed state per pass, built outside the timed section (1500 klines each).
    states = [_warm_state(history) for _ in range(3 * (warmup + repeat))]
    engines: list[FeatureEngine] = []

    def new_engine() -> FeatureEngine:
        state = states.pop()
        engine = FeatureEngine(intervals_s=(1, 3, 15, 60), state_factory=lambda _symbol: state)
        engines.append(engine)
        return engine

    live = market.live
    if len(live) != len(events):  # envelopes: one event per message, so chunks line up
        raise RuntimeError(f"{len(live)} messages gave {len(events)} events")
    bodies = [body for _, body in live]
    loads = orjson.loads

    def loads_pass() -> Step:
        def step(i: int, j: int) -> None:
            for body in bodies[i:j]:
                loads(body)

        return step

    def process_pass() -> Step:
        process = new_engine().process

        def step(i: int, j: int) -> None:
            for event in events[i:j]:
                process(event)

        return step

    def ingest_pass() -> Step:
        process = new_engine().process
        parse = parse_message

        def step(i: int, j: int) -> None:
            for receive_ts, body in live[i:j]:
                for event in parse(body, receive_ts=receive_ts):
                    process(event)

        return step

    def boundary_pass() -> Step:
        # What LiveEngine.ingest runs: stamp + parse + dedup (IngestBoundary) + process.
        process = new_engine().process
        boundary = IngestBoundary()
        stamp, ingest = boundary.stamp, boundary.ingest

        def step(i: int, j: int) -> None:
            for receive_ts, body in live[i:j]:
                for event in ingest(body, stamp(receive_ts))[1]:
                    process(event)

        return step

    passes: dict[str, Callable[[], Step]] = {
        "loads": loads_pass,
        "process": process_pass,
        "ingest": ingest_pass,
        "boundary": boundary_pass,
    }
    times = compare_chunked(passes, len(events), repeat=repeat, warmup=warmup)
    seconds = market.minutes * 60
    for engine in engines:  # every run must have closed every second: otherwise it timed less
        if engine.events_processed != len(events) or engine.vectors_emitted < seconds:
            raise RuntimeError(
                f"engine run incomplete: {engine.events_processed} events, "
                f"{engine.vectors_emitted} vectors"
            )
    n = len(events)
    loads_us = best(times["loads"]) / n * 1e6
    process_us = best(times["process"]) / n * 1e6
    ingest_us = best(times["ingest"]) / n * 1e6
    boundary_us = best(times["boundary"]) / n * 1e6
    vectors = engines[-1].vectors_emitted
    note = f"{n:,} events, {vectors:,} vectors (1s/3s/15s/1m); best of {repeat}"
    baseline = "orjson.loads(envelope)"
    return [
        result("engine.process", process_us, "µs/event", baseline, loads_us, note),
        result("engine.process rate", 1e6 / process_us, "events/s", baseline, 1e6 / loads_us, note),
        result(
            "engine.ingest (parse + process)",
            1e6 / ingest_us,
            "events/s",
            baseline,
            1e6 / loads_us,
            note,
        ),
        result(
            "engine.ingest through IngestBoundary (+ sequencer dedup)",
            1e6 / boundary_us,
            "events/s",
            "engine.ingest without the sequencer",
            1e6 / ingest_us,
            f"{note}; cost {100 * (boundary_us / ingest_us - 1):+.1f}% (issue 8 allows +10%)",
        ),
    ]


def measure(
    *, minutes: int, repeat: int, passes: int = 1, history: int = 1500, seed: int = 11
) -> list[Result]:
    market = synth_market(minutes, history=history, seed=seed)
    history_events = parse_all(market.history)
    events = parse_all(market.live)
    return measure_vector(history_events, events, market, passes) + measure_engine(
        history_events, events, market, repeat
    )


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(minutes=6, repeat=2, passes=2)
    return measure(minutes=60, repeat=3, passes=3)
