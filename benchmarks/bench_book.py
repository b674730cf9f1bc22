"""Order book: delta applications per second, and the full ingest path per message.

Input: a synthetic Bybit ``orderbook.50`` stream (see ``BookSim``), wrapped in ws-gateway
envelopes exactly as the service consumes them, and -- as a cross-check on a market model
written by someone else -- the book messages of the bundled sample recording.

Rows (baseline: ``orjson.loads`` of the same message bytes, the floor of any consumer):
- ``book.apply``: ``OrderBook.apply`` on pre-built events.
- ``book.ingest``: ``parse_message(bytes, receive_ts=...)`` + ``apply`` per message.
The three passes run interleaved 500 messages at a time (``compare_chunked``), a fresh book per
repeat, and every book is checked to be in sync afterwards.
"""

from __future__ import annotations

import gzip
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from benchmarks.common import Result, Step, best, compare_chunked, result
from feature_service.book.orderbook import BookStatus, OrderBook
from feature_service.market.events import BookDelta, MarketEvent
from feature_service.market.parsing import parse_message
from feature_service.market.timeutil import format_iso_us

SYMBOL = "BTCUSDT"
DEPTH = 50
BOOK_TOPIC = f"orderbook.{DEPTH}.{SYMBOL}"
STEP_US = 20_000  # orderbook.50 pushes every 20 ms
START_US = 1_738_026_000_000_000  # 2025-01-28T01:00:00Z, a whole hour
START_TICK = 1_000_000  # 100,000.0 USDT at the 0.1 tick of BTCUSDT linear

Change = tuple[int, int]  # (price in ticks, size in lots of 0.001); 0 lots deletes


# --------------------------------------------------------------------------- synthetic book


class _Side:
    """One side in "distance from the touch" keys: a bid's key is ``-tick`` and an ask's is
    ``tick``, so on both sides ascending keys run best first and one code path serves both."""

    __slots__ = ("keys", "sign", "sizes")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # tick = sign * key
        self.keys: list[int] = []  # ascending: best first
        self.sizes: dict[int, int] = {}  # key -> lots

    def tick(self, key: int) -> int:
        return self.sign * key


class BookSim:
    """An integer-tick 50-level book that emits Bybit-like ``orderbook.50`` deltas.

    Each delta spends a budget of 1-8 level changes on: size updates (mostly near the touch),
    inserts into gaps near the touch and deletes near it (each paired with the level leaving or
    entering at the 50th place, as Bybit's top-50 view does), the touch being traded through,
    and a wide spread being closed one tick at a time. Changes are sent as the net difference
    per price, so every delta lists a price at most once, like Bybit's. ``u`` is contiguous.
    Tuned to look like BTCUSDT: ~4 levels per delta, the spread one tick ~80 % of the time, the
    touch moving ~8 times a second, both sides always 50 levels deep.
    """

    def __init__(self, rng: random.Random, depth: int = DEPTH, mid_tick: int = START_TICK) -> None:
        self.rng = rng
        self.depth = depth
        self.bids = _Side(-1)
        self.asks = _Side(1)
        self.update_id = 1_000_000
        for side, best_key in ((self.bids, -(mid_tick - 1)), (self.asks, mid_tick)):
            key = best_key
            for rank in range(depth):
                side.keys.append(key)
                side.sizes[key] = self._lots(rank)
                key += self._gap()

    # -- draws ---------------------------------------------------------------------------------
    def _gap(self) -> int:
        r = self.rng.random()
        return 1 if r < 0.7 else (2 if r < 0.9 else 3)

    def _lots(self, rank: int) -> int:
        # Log-normal level sizes (median ~1.5 BTC), a little deeper away from the touch.
        lots = int(self.rng.lognormvariate(7.3 + 0.01 * rank, 1.1)) + 1
        return min(lots, 250_000)

    def _rank(self, n: int) -> int:
        # Geometric: most activity sits at the first few levels, as on a real book.
        rank = 0
        while rank < n - 1 and self.rng.random() > 0.35:
            rank += 1
        return rank

    # -- state ---------------------------------------------------------------------------------
    def best_bid_tick(self) -> int:
        return self.bids.tick(self.bids.keys[0])

    def best_ask_tick(self) -> int:
        return self.asks.tick(self.asks.keys[0])

    def spread_ticks(self) -> int:
        return self.best_ask_tick() - self.best_bid_tick()

    def levels(self, side: _Side) -> list[Change]:
        return [(side.tick(k), side.sizes[k]) for k in side.keys]

    def snapshot(self) -> tuple[list[Change], list[Change], int]:
        """Both sides best first, and the ``u`` the next delta follows."""
        return self.levels(self.bids), self.levels(self.asks), self.update_id

    # -- one delta -----------------------------------------------------------------------------
    def step(self) -> tuple[list[Change], list[Change], int]:
        """Mutate the book by one delta; returns ``(bid changes, ask changes, u)``."""
        orig: dict[tuple[int, int], int] = {}
        budget = self.rng.randint(1, 8)
        used = 0
        while used < budget:
            used += self._op(orig, budget - used)
        bids: list[Change] = []
        asks: list[Change] = []
        for (sign, key), before in orig.items():
            side = self.bids if sign < 0 else self.asks
            after = side.sizes.get(key, 0)
            if after != before:
                (bids if sign < 0 else asks).append((side.tick(key), after))
        if not bids and not asks:
            return self.step()  # every change cancelled out; a real stream sends nothing then
        self.update_id += 1
        return bids, asks, self.update_id

    def _set(self, orig: dict[tuple[int, int], int], side: _Side, key: int, lots: int) -> None:
        orig.setdefault((side.sign, key), side.sizes.get(key, 0))
        keys = side.keys
        if lots:
            if key not in side.sizes:
                _insort(keys, key)
            side.sizes[key] = lots
        else:
            del side.sizes[key]
            keys.remove(key)

    def _op(self, orig: dict[tuple[int, int], int], room: int) -> int:
        """Apply one operation; returns how many level changes it cost."""
        rng = self.rng
        side = self.bids if rng.random() < 0.5 else self.asks
        keys = side.keys
        r = rng.random()
        if room < 2:
            pass  # only a size update fits
        elif r < 0.30:
            if self.spread_ticks() > 1:
                # A wide spread is closed quickly, one tick at a time, as makers step in front.
                self._set(orig, side, keys[0] - 1, self._lots(0))
                self._set(orig, side, keys[-1], 0)
                return 2
        elif r < 0.33:  # the touch is traded through
            self._set(orig, side, keys[0], 0)
            self._set(orig, side, keys[-1] + self._gap(), self._lots(self.depth))
            return 2
        elif r < 0.50:  # new level in a gap near the touch; the 50th drops out
            # The first free tick from a random distance on: without filling the gaps the
            # top of the book would thin out and every trade-through would open a wide spread.
            key = keys[0] + 1 + self._rank(12)
            sizes = side.sizes
            while key in sizes:
                key += 1
            if key < keys[-1]:
                self._set(orig, side, key, self._lots(self._rank(self.depth)))
                self._set(orig, side, keys[-1], 0)
                return 2
        elif r < 0.65:  # a level near the touch is cancelled; a 51st moves up
            rank = 1 + self._rank(self.depth - 1)
            self._set(orig, side, keys[rank], 0)
            self._set(orig, side, keys[-1] + self._gap(), self._lots(self.depth))
            return 2
        rank = self._rank(self.depth)
        key = keys[rank]
        old = side.sizes[key]
        lots = self._lots(rank)
        self._set(orig, side, key, lots if lots != old else old + 1)
        return 1


def _insort(keys: list[int], key: int) -> None:
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    keys.insert(lo, key)


# --------------------------------------------------------------------------- the wire


def price_text(tick: int) -> str:
    return f"{tick // 10}.{tick % 10}0"


def size_text(lots: int) -> str:
    if not lots:
        return "0"  # what Bybit sends for a deleted level
    return f"{lots // 1000}.{lots % 1000:03d}"


def _levels_json(changes: list[Change]) -> list[list[str]]:
    return [[price_text(t), size_text(lots)] for t, lots in changes]


@dataclass(slots=True)
class Wire:
    """ws-gateway's hop: stamps the gateway and service receive times (monotonic per topic, like
    one queue) and wraps a payload into the envelope the service consumes."""

    rng: random.Random
    last_service_us: int = 0

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def envelope(
        self, event_type: str, topic: str, exchange_us: int, payload: dict[str, Any]
    ) -> tuple[int, bytes]:
        """``(service receive time, envelope bytes)`` of one message sent at ``exchange_us``."""
        gateway_us = exchange_us + 2_000 + int(self.rng.expovariate(1 / 2_500))
        service_us = max(
            gateway_us + 200 + int(self.rng.expovariate(1 / 800)), self.last_service_us + 1
        )
        self.last_service_us = service_us
        body = orjson.dumps(
            {
                "event_id": self._uuid(),
                "event_type": event_type,
                "topic": topic,
                "timestamp": format_iso_us(exchange_us),
                "received_at": format_iso_us(gateway_us),
                "payload": payload,
                "trace_id": self._uuid(),
            }
        )
        return service_us, body


def book_payload(
    bids: list[Change], asks: list[Change], u: int, seq: int, kind: str
) -> dict[str, Any]:
    return {
        "s": SYMBOL,
        "b": _levels_json(bids),
        "a": _levels_json(asks),
        "u": u,
        "seq": seq,
        "topic": BOOK_TOPIC,
        "type": kind,
    }


@dataclass(slots=True)
class BookStream:
    """The snapshot and ``n`` deltas as (service receive time, envelope bytes), 20 ms apart."""

    messages: list[tuple[int, bytes]]
    sim: BookSim


def book_messages(
    n_deltas: int,
    seed: int = 7,
    start_us: int = START_US,
    on_step: Callable[[int, BookSim], None] | None = None,
) -> BookStream:
    """A snapshot at ``start_us`` then ``n_deltas`` deltas. ``on_step(exchange_us, sim)`` runs
    after every step (other streams use it to follow the touch)."""
    rng = random.Random(seed)
    sim = BookSim(rng)
    wire = Wire(random.Random(seed + 1))
    seq = 8_000_000_000
    bids, asks, u = sim.snapshot()
    out = [
        wire.envelope(
            "orderbook", BOOK_TOPIC, start_us, book_payload(bids, asks, u, seq, "snapshot")
        )
    ]
    for i in range(1, n_deltas + 1):
        bids, asks, u = sim.step()
        seq += rng.randint(1, 40)
        ts = start_us + i * STEP_US
        out.append(
            wire.envelope("orderbook", BOOK_TOPIC, ts, book_payload(bids, asks, u, seq, "delta"))
        )
        if on_step is not None:
            on_step(ts, sim)
    return BookStream(out, sim)


def parse_all(messages: list[tuple[int, bytes]]) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for receive_ts, body in messages:
        out.extend(parse_message(body, receive_ts=receive_ts))
    return out


def sample_book_lines(limit: int | None) -> list[bytes]:
    """The bundled sample's orderbook lines (a snapshot first), as recorded."""
    from feature_service.sample.generator import default_sample_path

    def lines() -> Iterator[bytes]:
        with gzip.open(default_sample_path(), "rb") as fh:
            for line in fh:
                if b'"event_type":"orderbook"' in line:
                    yield line

    return list(islice(lines(), limit))


# --------------------------------------------------------------------------- measurement


def _check_book(book: OrderBook, events: list[Any]) -> None:
    # A benchmark of a book that fell out of sync would time the early-return path instead.
    deltas = sum(isinstance(e, BookDelta) for e in events)
    if book.status is not BookStatus.SYNCED or book.stats.deltas_applied != deltas:
        raise RuntimeError(f"book not in sync after the run: {book.status}, {book.stats}")


def _measure_stream(
    label: str,
    bodies: list[bytes],
    receive_ts: list[int | None],
    events: list[Any],
    repeat: int,
    note: str,
) -> list[Result]:
    if len(events) != len(bodies):  # envelopes: one event per message, so chunks line up
        raise RuntimeError(f"{len(bodies)} messages gave {len(events)} events")
    loads = orjson.loads
    books: list[OrderBook] = []

    def new_book() -> OrderBook:
        book = OrderBook(SYMBOL)
        books.append(book)
        return book

    def loads_pass() -> Step:
        def step(i: int, j: int) -> None:
            for body in bodies[i:j]:
                loads(body)

        return step

    def apply_pass() -> Step:
        apply = new_book().apply

        def step(i: int, j: int) -> None:
            for event in events[i:j]:
                apply(event)

        return step

    def ingest_pass() -> Step:
        apply = new_book().apply
        parse = parse_message

        def step(i: int, j: int) -> None:
            for body, rts in zip(bodies[i:j], receive_ts[i:j], strict=True):
                for event in parse(body, receive_ts=rts):
                    apply(event)

        return step

    n = len(bodies)
    times = compare_chunked(
        {"loads": loads_pass, "apply": apply_pass, "ingest": ingest_pass}, n, repeat=repeat
    )
    for book in books:
        _check_book(book, events)
    base = n / best(times["loads"])
    baseline = "orjson.loads(same bytes)"
    detail = f"{note}; best of {repeat}"
    return [
        result(f"book.apply ({label})", n / best(times["apply"]), "msgs/s", baseline, base, detail),
        result(
            f"book.ingest ({label})",
            n / best(times["ingest"]),
            "msgs/s",
            baseline,
            base,
            f"parse_message + apply; {detail}",
        ),
    ]


def measure(
    *, n_deltas: int, repeat: int, sample_messages: int | None = 0, seed: int = 7
) -> list[Result]:
    """Synthetic ``n_deltas`` (plus one snapshot); ``sample_messages`` book lines of the bundled
    sample (``None`` = all of them, 0 = skip)."""
    stream = book_messages(n_deltas, seed=seed)
    bodies = [body for _, body in stream.messages]
    rts: list[int | None] = [ts for ts, _ in stream.messages]
    events = parse_all(stream.messages)
    changes = sum(len(e.bids) + len(e.asks) for e in events[1:])  # type: ignore[union-attr]
    avg_bytes = sum(map(len, bodies)) / len(bodies)
    out = _measure_stream(
        "synthetic orderbook.50",
        bodies,
        rts,
        events,
        repeat,
        f"{n_deltas:,} deltas, {changes / max(n_deltas, 1):.1f} levels/delta, "
        f"{avg_bytes:.0f} B/msg",
    )
    if sample_messages != 0:
        lines = sample_book_lines(sample_messages)
        sample_events = [e for line in lines for e in parse_message(line)]
        changes = sum(len(e.bids) + len(e.asks) for e in sample_events[1:])  # type: ignore[union-attr]
        out += _measure_stream(
            "bundled sample",
            lines,
            [None] * len(lines),  # replay: the recorded service_received_at is the clock
            sample_events,
            repeat,
            f"{len(lines):,} msgs, {changes / max(len(lines) - 1, 1):.1f} levels/delta",
        )
    return out


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(n_deltas=5_000, repeat=3, sample_messages=5_000)
    return measure(n_deltas=50_000, repeat=7, sample_messages=None)
