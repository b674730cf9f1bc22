"""The live service over RabbitMQ: message -> vector latency, compute per vector, ingest rate.

Set-up. The real runtime (``Runtime(Settings(rabbitmq_url=...))``: 10 symbols, 1 s vectors, raw
store on, unique queue and exchange names deleted afterwards) runs in this process. Two helper
processes play the rest of the world, so their CPU is not charged to the service's event loop:
- the *gateway* publishes ws-gateway envelopes (contract §1.5-1.7: ``orderbook.50`` deltas from
  ``BookSim`` and trades at the touch, 3:1, round-robin over the symbols, stamped at publish
  time) into the input queues, paced or as fast as it can;
- the *reader* is a model consumer: its own queue bound to the features exchange, stamping each
  vector on receipt.
The machine is small (2 CPUs shared by the service, RabbitMQ and both helpers); every figure is
wall time.

Latency. A message the service receives at r is in the first vector with close time t > r. Each
message carries its feed index in ``trace_id`` and a vector's ``trace_id`` names the last event
it includes, so message i of a symbol is taken to be in the first vector of that symbol whose t
is after the publish time *and* whose running maximum index is >= i (both are necessary). Then
- service latency = receipt by the reader - max(publish time, t): from the moment the vector
  could first exist to its delivery. Baseline: a bare publish -> consume round trip of a tiny
  message on a plain queue (same broker, same run).
- publish -> vector = receipt - publish time, mostly the wait for the next 1 s boundary. Baseline:
  that wait alone (next whole second - publish time), i.e. an infinitely fast service.
- compute = the vectors' own ``computation_latency_ms``. Baseline: ``orjson.dumps`` of the same
  features, timed here afterwards.

Ingest. N messages are pre-published (under ws-gateway's 100,000-message queue limit), then the
runtime starts; rate = messages processed between 5 % and 95 % of N / the time in between.
Baseline: a bare aio-pika consumer (no parsing, ack each message, same prefetch) draining the
same N messages from the same queues. Only the default (raw store on) is measured: ``Runtime``
always wires its ``RawWriter`` into the live engine and has no setting to leave it out.

The service's own publish of each vector (broker confirm included) is timed by wrapping the bus
instance's ``publish``; it is reported in a note, as it explains most of the service latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import os
import random
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.bench_book import BookSim, price_text, size_text
from benchmarks.common import Result, percentiles, result
from feature_service.market.timeutil import format_iso_us

URL_ENV = "FEATURE_SERVICE_BENCH_RABBITMQ_URL"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
SYMBOLS: tuple[str, ...] = (
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "DOGEUSDT",
    "ADAUSDT",
    "AVAXUSDT",
    "LINKUSDT",
    "DOTUSDT",
    "LTCUSDT",
)
INPUT_KINDS = ("orderbook", "trade", "kline", "ticker", "funding")
BOOK_SHARE = 0.75  # of the messages after each symbol's snapshot; the rest are trades
EXCHANGE_LAG_US = 4_000  # exchange time -> gateway publish, as stamped in the envelope
GATEWAY_LAG_US = 300  # gateway receive -> publish
TRACE_PREFIX = "00000000-0000-4000-8000-"
US_PER_S = 1_000_000

SLO_P95_MS = 70.0  # SC-001: feature latency <= 70 ms at p95, receipt to delivery
P99_GOAL_MS = SLO_P95_MS / 2  # "well under" the SLO, read as half of it
COMPUTE_GOAL_MS = 5.0
INGEST_GOAL = 20_000.0


def rabbitmq_url() -> str:
    return os.environ.get(URL_ENV, DEFAULT_URL)


# --------------------------------------------------------------------------- the feed


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One ws-gateway message, pre-serialised except for its times (stamped at publish)."""

    kind: str  # input queue kind: "orderbook" or "trade"
    head: bytes  # '{"event_id":..,"event_type":..,"topic":..,"timestamp":"'
    payload: bytes  # the payload JSON; a trade's without its leading '{' and "T"
    tail: bytes  # ',"trace_id":"..."}'
    headers: dict[str, str]  # AMQP headers ws-gateway sets: event_type, topic, trace_id

    def body(self, now_us: int) -> bytes:
        exchange_us = now_us - EXCHANGE_LAG_US
        if self.kind == "trade":
            payload = b'{"T":%d,%s' % (exchange_us // 1_000, self.payload)
        else:
            payload = self.payload
        return b"".join(
            (
                self.head,
                _iso(exchange_us),
                b'","received_at":"',
                _iso(now_us - GATEWAY_LAG_US),
                b'","payload":',
                payload,
                self.tail,
            )
        )


def _iso(us: int) -> bytes:
    return format_iso_us(us).encode()


def trace_id_of(index: int) -> str:
    return f"{TRACE_PREFIX}{index:012x}"


def index_of_trace(trace_id: str | None) -> int:
    """The feed index a trace id carries; -1 for any other id (or none)."""
    if not trace_id or not trace_id.startswith(TRACE_PREFIX):
        return -1
    return int(trace_id[len(TRACE_PREFIX) :], 16)


class _SymbolFeed:
    """One symbol's book (``BookSim``) and trades at its touch, as Bybit payloads."""

    def __init__(self, symbol: str, rng: random.Random) -> None:
        self.symbol = symbol
        self.rng = rng
        self.sim = BookSim(rng)
        self.book_topic = f"orderbook.50.{symbol}"
        self.trade_topic = f"publicTrade.{symbol}"
        self.seq = 8_000_000_000
        self.trade_seq = 9_000_000_000

    def _book(
        self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], u: int, kind: str
    ) -> tuple[str, str, bytes]:
        self.seq += self.rng.randint(1, 40)
        return (
            "orderbook",
            self.book_topic,
            orjson.dumps(
                {
                    "s": self.symbol,
                    "b": [[price_text(t), size_text(lots)] for t, lots in bids],
                    "a": [[price_text(t), size_text(lots)] for t, lots in asks],
                    "u": u,
                    "seq": self.seq,
                    "topic": self.book_topic,
                    "type": kind,
                }
            ),
        )

    def snapshot(self) -> tuple[str, str, bytes]:
        bids, asks, u = self.sim.snapshot()
        return self._book(bids, asks, u, "snapshot")

    def next(self) -> tuple[str, str, bytes]:
        rng = self.rng
        if rng.random() < BOOK_SHARE:
            bids, asks, u = self.sim.step()
            return self._book(bids, asks, u, "delta")
        buy = rng.random() < 0.5
        tick = self.sim.best_ask_tick() if buy else self.sim.best_bid_tick()
        self.trade_seq += 1
        lots = min(int(rng.lognormvariate(2.7, 1.6)) + 1, 10_000)
        rest = orjson.dumps(
            {
                "s": self.symbol,
                "S": "Buy" if buy else "Sell",
                "v": size_text(lots),
                "p": price_text(tick),
                "L": "PlusTick" if buy else "MinusTick",
                "i": f"{rng.getrandbits(64):016x}",
                "BT": False,
                "RPI": False,
                "seq": self.trade_seq,
                "topic": self.trade_topic,
            }
        )
        return "trade", self.trade_topic, rest[1:]


def build_feed(n: int, seed: int = 3, symbols: Sequence[str] = SYMBOLS) -> list[FeedMessage]:
    """``n`` messages, round-robin over ``symbols`` (message i is ``symbols[i % len]``); each
    symbol's first message is its book snapshot. ``trace_id`` carries i."""
    rng = random.Random(seed)
    feeds = [_SymbolFeed(s, random.Random(rng.getrandbits(32))) for s in symbols]
    out: list[FeedMessage] = []
    for i in range(n):
        feed = feeds[i % len(feeds)]
        kind, topic, payload = feed.snapshot() if i < len(feeds) else feed.next()
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        trace_id = trace_id_of(i)
        head = (
            f'{{"event_id":"{event_id}","event_type":"{kind}","topic":"{topic}","timestamp":"'
        ).encode()
        out.append(
            FeedMessage(
                kind=kind,
                head=head,
                payload=payload,
                tail=f',"trace_id":"{trace_id}"}}'.encode(),
                headers={"event_type": kind, "topic": topic, "trace_id": trace_id},
            )
        )
    return out


# --------------------------------------------------------------------------- matching


@dataclass(slots=True)
class Vectors:
    """The 1 s vectors the reader received, one entry each."""

    symbol: np.ndarray  # index into SYMBOLS
    t_us: np.ndarray  # close time
    received_us: np.ndarray  # reader's wall clock at receipt
    last_index: np.ndarray  # feed index of the last included message (-1: unknown)
    compute_ms: np.ndarray
    features: list[dict[str, Any]]


def parse_vectors(received: Sequence[tuple[int, bytes]], symbols: Sequence[str]) -> Vectors:
    position = {s: i for i, s in enumerate(symbols)}
    rows: list[tuple[int, int, int, int, float]] = []
    features: list[dict[str, Any]] = []
    for received_us, body in received:
        doc = orjson.loads(body)
        if doc["interval"] != "1s" or doc["symbol"] not in position:
            continue
        rows.append(
            (
                position[doc["symbol"]],
                doc["timestamp_us"],
                received_us,
                index_of_trace(doc["trace_id"]),
                float(doc["computation_latency_ms"]),
            )
        )
        features.append(doc["features"])
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    return Vectors(
        symbol=np.asarray(columns[0], dtype=np.int64),
        t_us=np.asarray(columns[1], dtype=np.int64),
        received_us=np.asarray(columns[2], dtype=np.int64),
        last_index=np.asarray(columns[3], dtype=np.int64),
        compute_ms=np.asarray(columns[4], dtype=np.float64),
        features=features,
    )


@dataclass(slots=True)
class Matched:
    service_us: np.ndarray  # receipt - max(publish, t)
    raw_us: np.ndarray  # receipt - publish
    boundary_wait_us: np.ndarray  # next whole second - publish (an infinitely fast service)
    unmatched: int  # messages no received vector includes (published too late, or lost)


def match_messages(publish_us: np.ndarray, n_symbols: int, vectors: Vectors) -> Matched:
    """Pair every published message with the first vector that includes it (module docstring)."""
    service: list[np.ndarray] = []
    raw: list[np.ndarray] = []
    waits: list[np.ndarray] = []
    unmatched = 0
    for s in range(n_symbols):
        index = np.arange(s, len(publish_us), n_symbols, dtype=np.int64)
        published = publish_us[index]
        mine = vectors.symbol == s
        order = np.argsort(vectors.t_us[mine], kind="stable")
        t = vectors.t_us[mine][order]
        received = vectors.received_us[mine][order]
        covered = np.maximum.accumulate(vectors.last_index[mine][order]) if len(t) else t
        first = np.maximum(
            np.searchsorted(t, published, side="right"),  # t > publish time
            np.searchsorted(covered, index, side="left"),  # includes index i
        )
        ok = first < len(t)
        unmatched += int((~ok).sum())
        j = first[ok]
        p = published[ok]
        service.append(received[j] - np.maximum(p, t[j]))
        raw.append(received[j] - p)
        waits.append((p // US_PER_S + 1) * US_PER_S - p)
    return Matched(
        service_us=np.concatenate(service) if service else np.empty(0, np.int64),
        raw_us=np.concatenate(raw) if raw else np.empty(0, np.int64),
        boundary_wait_us=np.concatenate(waits) if waits else np.empty(0, np.int64),
        unmatched=unmatched,
    )


def crossing_rate(samples: Sequence[tuple[float, int]], total: int) -> float:
    """Messages per second between the first sample at >= 5 % of ``total`` and the first at
    >= 95 % (``(seconds, count)`` samples in time order): the steady state, without start-up
    and the last stragglers."""
    lo, hi = 0.05 * total, 0.95 * total
    start = next((s for s in samples if s[1] >= lo), None)
    end = next((s for s in samples if s[1] >= hi), None)
    if start is None or end is None or end[0] <= start[0]:
        raise ValueError(f"samples do not span 5-95 % of {total}")
    return (end[1] - start[1]) / (end[0] - start[0])


# --------------------------------------------------------------------------- helper processes


def _child(target: Callable[..., Any], pipe: Connection, *args: Any) -> None:
    try:
        asyncio.run(target(pipe, *args))
    except BaseException:
        with contextlib.suppress(Exception):
            pipe.send(("error", traceback.format_exc()))
        raise


def gateway_process(pipe: Connection, url: str, feed_size: int, seed: int) -> None:
    _child(_gateway, pipe, url, feed_size, seed)


def reader_process(pipe: Connection, url: str) -> None:
    _child(_reader, pipe, url)


async def _recv(pipe: Connection) -> tuple[Any, ...]:
    return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # type: ignore[no-any-return]


async def _gateway(pipe: Connection, url: str, feed_size: int, seed: int) -> None:
    import aio_pika
    import aiormq

    feed = build_feed(feed_size, seed)
    connection = await aio_pika.connect(url)
    try:
        # Without confirms, like ws-gateway (fire and forget); the raw channel skips aio-pika's
        # Message objects, so the publisher keeps up at the higher rate on this small machine.
        channel = await (await connection.channel(publisher_confirms=False)).get_underlay_channel()
        properties = aiormq.spec.Basic.Properties
        pipe.send(("ready", len(feed)))
        while True:
            command, *args = await _recv(pipe)
            if command == "stop":
                return
            queues, n, rate = args
            sent = np.empty(n, dtype=np.int64)
            per_kind: Counter[str] = Counter()
            clock = time.time_ns
            perf = time.perf_counter
            started = perf()
            for i, msg in enumerate(feed[:n]):
                if rate is not None:
                    ahead = started + i / rate - perf()
                    if ahead > 0.0005:
                        await asyncio.sleep(ahead)
                now = clock() // 1_000
                body = msg.body(now)
                sent[i] = now
                await channel.basic_publish(
                    body,
                    exchange="",
                    routing_key=queues[msg.kind],
                    properties=properties(delivery_mode=2, headers=msg.headers),
                )
                per_kind[msg.kind] += 1
            pipe.send(("published", sent, dict(per_kind)))
    finally:
        await connection.close()


async def _reader(pipe: Connection, url: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        pipe.send(("ready",))
        while True:
            command, *args = await _recv(pipe)
            if command == "stop":
                return
            queue_name, exchange = args
            await _listen(pipe, connection, queue_name, exchange)
    finally:
        await connection.close()


async def _listen(pipe: Connection, connection: Any, queue_name: str, exchange: str | None) -> None:
    """Record ``(receipt µs, body)`` of every message on a queue until told to "collect".
    With an exchange: a private queue bound to it; without: an existing plain queue."""
    channel = await connection.channel()
    if exchange is None:
        queue = await channel.declare_queue(queue_name, passive=True)
    else:
        queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
        await queue.bind(exchange)
    received: list[tuple[int, bytes]] = []
    clock = time.time_ns

    async def on_message(message: Any) -> None:
        received.append((clock() // 1_000, message.body))

    tag = await queue.consume(on_message, no_ack=True)
    pipe.send(("listening",))
    await _recv(pipe)  # "collect"
    await queue.cancel(tag)
    if exchange is not None:
        await queue.delete(if_unused=False, if_empty=False)
    await channel.close()
    pipe.send(("collected", received))


class Helper:
    """A helper process driven by ``(command, *args)`` tuples over a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process with threads and an event loop
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()
        child.close()

    async def reply(self, limit_s: float) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.pipe.poll, limit_s):
            raise TimeoutError(f"helper process silent for {limit_s} s")
        try:
            answer: tuple[Any, ...] = self.pipe.recv()
        except EOFError:
            self.process.join(5)
            raise RuntimeError(f"helper process exited ({self.process.exitcode})") from None
        if answer[0] == "error":
            raise RuntimeError(f"helper process failed:\n{answer[1]}")
        return answer

    async def call(self, *command: Any, limit_s: float = 60.0) -> tuple[Any, ...]:
        self.pipe.send(command)
        return await self.reply(limit_s)

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.pipe.send(("stop",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.pipe.close()


# --------------------------------------------------------------------------- broker plumbing


@dataclass
class Names:
    """Unique names for one run; everything is deleted afterwards."""

    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")

    def input(self, kind: str) -> str:
        return f"{self.prefix}.ws-gateway.{kind}"

    @property
    def queues(self) -> dict[str, str]:
        return {kind: self.input(kind) for kind in INPUT_KINDS}

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def features(self) -> str:
        return f"{self.prefix}.features.live"

    @property
    def reader(self) -> str:
        return f"{self.prefix}.reader"

    def settings(self) -> dict[str, str]:
        values = {f"queue_{kind}": name for kind, name in self.queues.items()}
        values["dead_letter_queue"] = self.dead_letter
        values["features_exchange"] = self.features
        return values


class Admin:
    """This process's own broker connection: declarations, counts, clean-up."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> Admin:
        import aio_pika

        return cls(await aio_pika.connect(url))

    async def declare_inputs(self, names: Names) -> None:
        """The input queues exactly as ws-gateway declares them."""
        from feature_service.adapters.bus.topology import WS_GATEWAY_QUEUE_ARGUMENTS

        channel = await self.connection.channel()
        for name in names.queues.values():
            await channel.declare_queue(
                name, durable=True, arguments=dict(WS_GATEWAY_QUEUE_ARGUMENTS)
            )
        await channel.close()

    async def ready(self, queue: str) -> int:
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def wait_ready(self, expected: Mapping[str, int], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            counts = {q: await self.ready(q) for q in expected}
            if all(counts[q] >= n for q, n in expected.items()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"queues not filled: {counts}, expected {dict(expected)}")
            await asyncio.sleep(0.05)

    async def delete(self, queues: Sequence[str], exchanges: Sequence[str] = ()) -> None:
        channel = await self.connection.channel()
        try:
            for name in queues:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
            for name in exchanges:
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def cleanup(self, names: Names) -> None:
        queues = [*names.queues.values(), names.dead_letter, names.features, names.reader]
        await self.delete(queues, [names.features])

    async def close(self) -> None:
        await self.connection.close()


@contextlib.contextmanager
def quiet_service_logs() -> Iterator[None]:
    """Only warnings from the service while it runs here (its info lines would bury the table);
    the previous structlog configuration is restored afterwards."""
    import structlog

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**saved)


def _settings(url: str, names: Names, data_dir: Path) -> Any:
    from feature_service.config import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=url,
        data_dir=data_dir,
        symbols=list(SYMBOLS),
        intervals=[1],
        replay_enabled=False,
        **names.settings(),
    )


def _check_runtime(runtime: Any, processed: int) -> None:
    """A run whose messages were rejected or whose books fell out of sync timed something else."""
    from feature_service.book.orderbook import BookStatus

    rejected = sum(runtime.live.stats.rejected.values())
    if rejected or runtime.engine.events_processed != processed:
        raise RuntimeError(
            f"{runtime.engine.events_processed} events processed of {processed}, "
            f"{rejected} rejected: {dict(runtime.live.stats.rejected)}"
        )
    for symbol, state in runtime.engine.states.items():
        if state.book.status is not BookStatus.SYNCED:
            raise RuntimeError(f"{symbol} book {state.book.status}: {state.book.stats}")


async def stop_runtime(runtime: Any, limit_s: float = 60.0) -> None:
    """``runtime.stop()``, bounded: a shutdown that hangs fails the section, not the suite."""
    try:
        await asyncio.wait_for(runtime.stop(), limit_s)
    except TimeoutError:
        raise RuntimeError(f"Runtime.stop() did not finish within {limit_s:.0f} s") from None


async def _poll(predicate: Callable[[], bool], limit_s: float, every_s: float = 0.005) -> bool:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True


# --------------------------------------------------------------------------- runs


@dataclass(slots=True)
class LatencyRun:
    rate: float
    published: int
    achieved_rate: float
    drain_lag_s: float | None  # last publish -> everything processed; None: not within limit
    matched: Matched
    vectors: Vectors
    publish_ms: list[float]  # the service's publish of each vector, confirm included


def time_vector_publishes(runtime: Any, exchange: str) -> list[float]:
    """Wall ms of every publish to ``exchange`` by the runtime's bus. The service sends one
    vector at a time and awaits the broker's confirm before the next, so this is where a
    vector waits after it is computed. Wraps the bus instance's ``publish``; nothing else."""
    bus = runtime.bus
    inner = bus.publish
    out: list[float] = []

    async def publish(target: str, body: bytes, **kwargs: Any) -> None:
        started = time.perf_counter()
        await inner(target, body, **kwargs)
        if target == exchange:
            out.append((time.perf_counter() - started) * 1_000)

    bus.publish = publish
    return out


async def latency_run(
    url: str, admin: Admin, gateway: Helper, reader: Helper, rate: float, seconds: float
) -> LatencyRun:
    from feature_service.services.runtime import Runtime

    names = Names()
    n = int(rate * seconds)
    try:
        await admin.declare_inputs(names)
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            runtime = Runtime(_settings(url, names, Path(tmp)))
            publish_ms = time_vector_publishes(runtime, names.features)
            await runtime.start()
            try:
                await reader.call("listen", names.reader, names.features)
                _, sent, _ = await gateway.call(
                    "publish", names.queues, n, rate, limit_s=3 * seconds + 60
                )
                last_publish = time.monotonic()
                engine = runtime.engine
                drained = await _poll(lambda: engine.events_processed >= n, 60.0)
                lag = time.monotonic() - last_publish if drained else None
                # The boundary after the last message, its timer tick and the delivery.
                await asyncio.sleep(1.6)
                _, received = await reader.call("collect")
                _check_runtime(runtime, n)
            finally:
                await stop_runtime(runtime)
    finally:
        await admin.cleanup(names)
    vectors = parse_vectors(received, SYMBOLS)
    span_s = (sent[-1] - sent[0]) / US_PER_S if n > 1 else 0.0
    return LatencyRun(
        rate=rate,
        published=n,
        achieved_rate=(n - 1) / span_s if span_s > 0 else float("nan"),
        drain_lag_s=lag,
        matched=match_messages(sent, len(SYMBOLS), vectors),
        vectors=vectors,
        publish_ms=list(publish_ms),
    )


async def round_trip(url: str, admin: Admin, reader: Helper, n: int, rate: float) -> np.ndarray:
    """Bare publish -> receipt delays (µs) of tiny transient messages on a plain queue."""
    import aio_pika

    names = Names()
    queue = names.reader
    channel = await admin.connection.channel()
    try:
        await channel.declare_queue(queue, durable=False)
        await reader.call("listen", queue, None)
        exchange = channel.default_exchange
        started = time.perf_counter()
        for i in range(n):
            ahead = started + i / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
            now = time.time_ns() // 1_000
            await exchange.publish(aio_pika.Message(str(now).encode()), routing_key=queue)
        await asyncio.sleep(0.3)
        _, received = await reader.call("collect")
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
        await admin.delete([queue])
    if len(received) != n:
        raise RuntimeError(f"round trip: {len(received)} of {n} messages came back")
    return np.array([r - int(body) for r, body in received], dtype=np.int64)


@dataclass(slots=True)
class IngestRun:
    rate: float
    messages: int
    durable_after_s: float | None  # start -> every row on disk


async def _prepublish(admin: Admin, gateway: Helper, names: Names, n: int) -> dict[str, int]:
    await admin.declare_inputs(names)
    _, _, per_kind = await gateway.call("publish", names.queues, n, None, limit_s=300)
    await admin.wait_ready({names.input(k): c for k, c in per_kind.items()}, 60)
    return per_kind  # type: ignore[no-any-return]


async def ingest_run(url: str, admin: Admin, gateway: Helper, n: int) -> IngestRun:
    from feature_service.services.runtime import Runtime

    names = Names()
    try:
        await _prepublish(admin, gateway, names, n)
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            runtime = Runtime(_settings(url, names, Path(tmp)))
            engine = runtime.engine
            samples: list[tuple[float, int]] = []
            perf = time.perf_counter

            def done() -> bool:
                samples.append((perf(), engine.events_processed))
                return engine.events_processed >= n

            # Sampling starts before the runtime: its consumers are running before start()
            # returns, and a small N may be consumed by then.
            sampler = asyncio.create_task(_poll(done, 300.0, 0.002))
            started = perf()
            try:
                await runtime.start()
                if not await sampler:
                    raise RuntimeError(f"only {engine.events_processed} of {n} processed")
                writer = runtime.raw_writer
                durable = await _poll(
                    lambda: sum(writer.stats.rows_written.values()) >= n, 30.0, 0.01
                )
                durable_after = perf() - started if durable else None
                _check_runtime(runtime, n)
            finally:
                sampler.cancel()
                await stop_runtime(runtime)
    finally:
        await admin.cleanup(names)
    return IngestRun(crossing_rate(samples, n), n, durable_after)


async def bare_consume_run(url: str, admin: Admin, gateway: Helper, n: int, prefetch: int) -> float:
    """Rate of a bare aio-pika consumer (no parsing, ack each) draining ``n`` pre-published
    messages, one channel per queue with the service's prefetch."""
    import aio_pika

    names = Names()
    connection = await aio_pika.connect(url)
    try:
        per_kind = await _prepublish(admin, gateway, names, n)
        samples: list[tuple[float, int]] = []
        count = 0
        finished = asyncio.Event()
        perf = time.perf_counter
        marks = {int(0.05 * n) + 1, int(0.95 * n) + 1, n}

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count in marks:
                samples.append((perf(), count))
                if count >= n:
                    finished.set()

        consumers = []
        for kind in per_kind:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(names.input(kind), passive=True)
            consumers.append((queue, await queue.consume(on_message)))
        await asyncio.wait_for(finished.wait(), 300)
        for queue, tag in consumers:
            await queue.cancel(tag)
    finally:
        await connection.close()
        await admin.cleanup(names)
    return crossing_rate(samples, n)


# --------------------------------------------------------------------------- rows


def _dumps_us(features: list[dict[str, Any]], per_sample: int = 20) -> list[float]:
    """Wall µs of ``orjson.dumps`` per vector (batches of ``per_sample`` calls per figure)."""
    dumps = orjson.dumps
    out: list[float] = []
    for doc in features:
        started = time.perf_counter_ns()
        for _ in range(per_sample):
            dumps(doc)
        out.append((time.perf_counter_ns() - started) / per_sample / 1_000)
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def latency_rows(run: LatencyRun, rtt_us: np.ndarray) -> list[Result]:
    m = run.matched
    if len(m.service_us) == 0:
        raise RuntimeError(f"no message matched a vector at {run.rate:,.0f} msgs/s")
    tag = f"{run.rate:,.0f} msgs/s"
    s50, s95, s99 = (x / 1_000 for x in percentiles(m.service_us, (50, 95, 99)))
    r50, r99 = (x / 1_000 for x in percentiles(m.raw_us))
    w50, w99 = (x / 1_000 for x in percentiles(m.boundary_wait_us))
    b50, b99 = (x / 1_000 for x in percentiles(rtt_us))
    c50, c99 = percentiles(run.vectors.compute_ms)
    d50, d99 = (x / 1_000 for x in percentiles(_dumps_us(run.vectors.features)))
    lag = "not drained within 60 s" if run.drain_lag_s is None else f"{run.drain_lag_s:.2f} s"
    feed = (
        f"{run.published:,} msgs over {len(SYMBOLS)} symbols, published at "
        f"{run.achieved_rate:,.0f}/s; last processed {lag} after the last publish"
    )
    matched = f"{len(m.service_us):,} msgs matched ({m.unmatched} unmatched)"
    vectors = f"{len(run.vectors.t_us):,} vectors"
    pub50, pub99 = percentiles(run.publish_ms) if run.publish_ms else (math.nan, math.nan)
    publish = (
        f"service's publish of one vector (until its broker confirm; publishes are pipelined) "
        f"p50 {pub50:.2f} / p99 {pub99:.1f} ms"
    )
    slo = "SC-001 p95 <= 70 ms"
    return [
        result(
            f"live.latency service p50 ({tag})",
            s50,
            "ms",
            "bare RabbitMQ round trip p50",
            b50,
            f"wall; vector could exist -> reader has it; {matched}; {feed}",
        ),
        result(
            f"live.latency service p99 ({tag})",
            s99,
            "ms",
            "bare RabbitMQ round trip p99",
            b99,
            f"wall; p95 {s95:.1f} ms, {slo}: {_verdict(s95 <= SLO_P95_MS)}; goal p99 well "
            f"under {SLO_P95_MS:.0f} ms (< {P99_GOAL_MS:.0f}): {_verdict(s99 < P99_GOAL_MS)}; "
            f"{publish}",
        ),
        result(
            f"live.publish->vector p50 ({tag})",
            r50,
            "ms",
            "wait for next 1 s boundary p50",
            w50,
            f"wall; raw delay incl. the boundary wait; {matched}",
        ),
        result(
            f"live.publish->vector p99 ({tag})",
            r99,
            "ms",
            "wait for next 1 s boundary p99",
            w99,
            f"wall; {matched}",
        ),
        result(
            f"live.compute per vector p50 ({tag})",
            c50,
            "ms",
            "orjson.dumps(features) p50",
            d50,
            f"wall, service's computation_latency_ms; {vectors}",
        ),
        result(
            f"live.compute per vector p99 ({tag})",
            c99,
            "ms",
            "orjson.dumps(features) p99",
            d99,
            f"wall; goal < {COMPUTE_GOAL_MS:.0f} ms: {_verdict(c99 < COMPUTE_GOAL_MS)}; {vectors}",
        ),
    ]


def ingest_rows(run: IngestRun, bare_rate: float, prefetch: int) -> list[Result]:
    durable = (
        "not all durable within 30 s"
        if run.durable_after_s is None
        else f"all durable {run.durable_after_s:.1f} s after start"
    )
    goal = _verdict(run.rate >= INGEST_GOAL)
    return [
        result(
            "live.ingest sustained (raw store on)",
            run.rate,
            "msgs/s",
            "bare aio-pika consumer, ack each",
            bare_rate,
            f"wall; {run.messages:,} pre-published msgs, 5-95 % of them; prefetch {prefetch}; "
            f"{durable}; goal >= {INGEST_GOAL:,.0f}/s on one core: {goal}; "
            "raw store off: not measurable (Runtime always wires its RawWriter)",
        )
    ]


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True, slots=True)
class Sizes:
    rates: tuple[float, ...]
    seconds: float
    ingest_messages: int
    rtt_messages: int


FULL = Sizes(rates=(1_000.0, 10_000.0), seconds=10.0, ingest_messages=80_000, rtt_messages=600)
QUICK = Sizes(rates=(500.0, 2_000.0), seconds=1.5, ingest_messages=6_000, rtt_messages=100)


async def measure_async(sizes: Sizes, url: str | None = None) -> list[Result]:
    url = url or rabbitmq_url()
    feed_size = max([sizes.ingest_messages, *(int(r * sizes.seconds) for r in sizes.rates)])
    gateway = Helper(gateway_process, url, feed_size, 3)
    reader = Helper(reader_process, url)
    admin: Admin | None = None
    try:
        admin = await Admin.open(url)
        await reader.reply(60)
        await gateway.reply(300)  # builds the feed first
        rtt = await round_trip(url, admin, reader, sizes.rtt_messages, 200.0)
        rows: list[Result] = []
        for rate in sizes.rates:
            run = await latency_run(url, admin, gateway, reader, rate, sizes.seconds)
            rows += latency_rows(run, rtt)
        prefetch = _settings(url, Names(), Path(".")).prefetch
        ingest = await ingest_run(url, admin, gateway, sizes.ingest_messages)
        bare = await bare_consume_run(url, admin, gateway, sizes.ingest_messages, prefetch)
        rows += ingest_rows(ingest, bare, prefetch)
        return rows
    finally:
        if admin is not None:
            await admin.close()
        gateway.close()
        reader.close()


def measure(sizes: Sizes, url: str | None = None) -> list[Result]:
    # Generous: the expected run is ~3x the publishing time plus the ingest runs.
    limit_s = 8 * sizes.seconds * len(sizes.rates) + sizes.ingest_messages / 500 + 120

    async def bounded() -> list[Result]:
        async with asyncio.timeout(limit_s):
            return await measure_async(sizes, url)

    with quiet_service_logs():
        try:
            return asyncio.run(bounded())
        except TimeoutError:
            raise RuntimeError(f"live benchmark did not finish within {limit_s:.0f} s") from None


def run(quick: bool) -> list[Result]:
    return measure(QUICK if quick else FULL)
