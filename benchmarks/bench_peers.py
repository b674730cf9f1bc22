"""Peers a user would pick instead of our code, on the same inputs in the same run.

- Order book: the deltas of the synthetic ``orderbook.50`` stream (``bench_book``), applied by
  our ``OrderBook.apply`` (pre-parsed ``BookDelta`` events), by ``order-book`` (the C book
  cryptofeed uses; set / delete per level) and by nautilus_trader's ``OrderBook`` (L2, one
  ``OrderBookDeltas`` per message). Every input is built before timing; the three books must
  end with the same touch, or the row is not reported.
- Indicators per new 1 m bar: our incremental RSI(14), EMA(20), MACD(12, 26, 9) and
  Bollinger(20, 2) against TA-Lib recomputing them over the trailing window every bar (what a
  batch library does live), and against nautilus_trader's incremental indicators. The last
  values of ours and TA-Lib's must agree (ours follow TA-Lib's definitions).

Peers are optional (``pip install -e '.[bench]'``); a missing one is reported, not failed.
Ratios: cost of ours in units of the peer (< 1 = ours is faster).
"""

from __future__ import annotations

import importlib.util
import math
import random
from collections.abc import Callable
from typing import Any

from benchmarks.bench_book import SYMBOL, book_messages, parse_all
from benchmarks.common import Result, Step, best, compare_chunked, result
from feature_service.book.orderbook import OrderBook
from feature_service.features.indicators import Bollinger, Ema, Macd, RsiWilder
from feature_service.market.events import BookDelta, BookSnapshot

TALIB_WINDOW = 200  # bars TA-Lib recomputes over per new bar (MACD's 26 + 9 settle well inside)
INSTALL_HINT = {
    "nautilus_trader": "make bench-peers (its own venv: it pins pandas<3)",
}
DEFAULT_HINT = "pip install -e '.[bench]'"


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _missing(name: str, module: str) -> Result:
    return Result(
        name=name, value=math.nan, unit="", note=f"{module} not installed: {INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- order book


def _c_levels(events: list[Any]) -> list[tuple[list[tuple[float, float]], ...]]:
    return [(list(e.bids), list(e.asks)) for e in events]


def _c_book_pass(levels: list[tuple[list[tuple[float, float]], ...]], books: list[Any]) -> Step:
    from order_book import OrderBook as CBook

    book = CBook()
    books.append(book)
    bids, asks = book.bids, book.asks

    def step(i: int, j: int) -> None:
        for b, a in levels[i:j]:
            for price, size in b:
                if size:
                    bids[price] = size
                elif price in bids:
                    del bids[price]
            for price, size in a:
                if size:
                    asks[price] = size
                elif price in asks:
                    del asks[price]

    return step


def _nautilus_inputs(events: list[Any]) -> tuple[Any, list[Any]]:
    from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
    from nautilus_trader.model.enums import BookAction, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity

    iid = InstrumentId.from_str(f"{SYMBOL}-LINEAR.BYBIT")
    out = []
    seq = 0
    for e in events:
        ts = e.exchange_ts * 1000
        deltas = []
        for side, levels in ((OrderSide.BUY, e.bids), (OrderSide.SELL, e.asks)):
            for price, size in levels:
                seq += 1
                action = BookAction.UPDATE if size else BookAction.DELETE
                order = BookOrder(side, Price(price, 1), Quantity(size, 3), 0)
                deltas.append(OrderBookDelta(iid, action, order, 0, seq, ts, ts))
        out.append(OrderBookDeltas(iid, deltas))
    return iid, out


def _nautilus_pass(iid: Any, batches: list[Any], books: list[Any]) -> Step:
    from nautilus_trader.model.book import OrderBook as NBook
    from nautilus_trader.model.enums import BookType

    book = NBook(iid, BookType.L2_MBP)
    books.append(book)
    apply = book.apply_deltas

    def step(i: int, j: int) -> None:
        for batch in batches[i:j]:
            apply(batch)

    return step


def measure_book(n_deltas: int, repeat: int) -> list[Result]:
    events = parse_all(book_messages(n_deltas).messages)
    if not isinstance(events[0], BookSnapshot) or not all(
        isinstance(e, BookDelta) for e in events[1:]
    ):
        raise RuntimeError("expected one snapshot then deltas")
    ours: list[OrderBook] = []

    def ours_pass() -> Step:
        book = OrderBook(SYMBOL)
        ours.append(book)
        apply = book.apply

        def step(i: int, j: int) -> None:
            for event in events[i:j]:
                apply(event)

        return step

    factories: dict[str, Callable[[], Step]] = {"ours": ours_pass}
    c_books: list[Any] = []
    n_books: list[Any] = []
    if _have("order_book"):
        levels = _c_levels(events)
        factories["c"] = lambda: _c_book_pass(levels, c_books)
    if _have("nautilus_trader"):
        iid, batches = _nautilus_inputs(events)
        factories["nautilus"] = lambda: _nautilus_pass(iid, batches, n_books)
    n = len(events)
    times = compare_chunked(factories, n, repeat=repeat)
    touch = ours[-1].top_of_book()
    rate = n / best(times["ours"])
    changes = sum(len(e.bids) + len(e.asks) for e in events[1:]) / n_deltas
    note = f"{n_deltas:,} deltas, {changes:.1f} levels each; best of {repeat}"
    out = []
    if c_books:
        c = c_books[-1]
        c_touch = (c.bids.index(0)[0], c.asks.index(0)[0])
        if c_touch != touch:
            raise RuntimeError(f"C book touch {c_touch} != ours {touch}")
        peer = n / best(times["c"])
        out.append(
            result("peers.book.apply vs order-book (C)", rate, "msgs/s", "order-book", peer, note)
        )
    else:
        out.append(_missing("peers.book.apply vs order-book (C)", "order-book"))
    if n_books:
        nb = n_books[-1]
        n_touch = (float(nb.best_bid_price()), float(nb.best_ask_price()))
        if n_touch != touch:
            raise RuntimeError(f"nautilus touch {n_touch} != ours {touch}")
        peer = n / best(times["nautilus"])
        out.append(
            result(
                "peers.book.apply vs nautilus_trader",
                rate,
                "msgs/s",
                "nautilus OrderBook",
                peer,
                note,
            )
        )
    else:
        out.append(_missing("peers.book.apply vs nautilus_trader", "nautilus_trader"))
    return out


# --------------------------------------------------------------------------- indicators


def _closes(n: int, seed: int = 11) -> list[float]:
    rng = random.Random(seed)
    price, out = 100_000.0, []
    for _ in range(n):
        price *= math.exp(rng.gauss(0.0, 0.0008))
        out.append(round(price, 1))
    return out


def _ours_pass(closes: list[float], last: list[tuple[float, ...]]) -> Step:
    rsi, ema, macd, bb = RsiWilder(14), Ema(20), Macd(12, 26, 9), Bollinger(20, 2.0)

    def step(i: int, j: int) -> None:
        for close in closes[i:j]:
            rsi.update(close)
            ema.update(close)
            macd.update(close)
            bb.update(close)
            rsi.value, ema.value, macd.histogram, bb.bands()
        last[:] = [(rsi.value or 0.0, ema.value or 0.0, macd.histogram or 0.0)]

    return step


def _talib_pass(closes: list[float], last: list[tuple[float, ...]]) -> Step:
    import numpy as np
    import talib

    arr = np.asarray(closes, dtype=np.float64)

    def step(i: int, j: int) -> None:
        out = (0.0, 0.0, 0.0)
        for k in range(i, j):
            window = arr[max(0, k + 1 - TALIB_WINDOW) : k + 1]
            rsi = talib.RSI(window, 14)[-1]
            ema = talib.EMA(window, 20)[-1]
            hist = talib.MACD(window, 12, 26, 9)[2][-1]
            talib.BBANDS(window, 20, 2.0, 2.0)
            out = (rsi, ema, hist)
        last[:] = [out]

    return step


def _nautilus_ind_pass(closes: list[float]) -> Step:
    from nautilus_trader.indicators import (
        BollingerBands,
        ExponentialMovingAverage,
        MovingAverageConvergenceDivergence,
        RelativeStrengthIndex,
    )

    rsi, ema = RelativeStrengthIndex(14), ExponentialMovingAverage(20)
    macd, bb = MovingAverageConvergenceDivergence(12, 26), BollingerBands(20, 2.0)
    signal = ExponentialMovingAverage(9)

    def step(i: int, j: int) -> None:
        for close in closes[i:j]:
            rsi.update_raw(close)
            ema.update_raw(close)
            macd.update_raw(close)
            signal.update_raw(macd.value)
            bb.update_raw(close, close, close)
            rsi.value, ema.value, macd.value - signal.value, bb.upper

    return step


def _check_against_talib(closes: list[float], ours: tuple[float, ...]) -> None:
    """Ours follow TA-Lib's definitions and seeding: over the whole history the last values
    agree to rounding (the timed TA-Lib pass sees only its window, so it differs slightly)."""
    import numpy as np
    import talib

    arr = np.asarray(closes, dtype=np.float64)
    ref = (talib.RSI(arr, 14)[-1], talib.EMA(arr, 20)[-1], talib.MACD(arr, 12, 26, 9)[2][-1])
    for a, b in zip(ours, ref, strict=True):
        if not math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-9):
            raise RuntimeError(f"ours {ours} != TA-Lib {ref}")


def measure_indicators(bars: int, repeat: int) -> list[Result]:
    closes = _closes(bars)
    ours_last: list[tuple[float, ...]] = []
    talib_last: list[tuple[float, ...]] = []
    factories: dict[str, Callable[[], Step]] = {"ours": lambda: _ours_pass(closes, ours_last)}
    if _have("talib"):
        factories["talib"] = lambda: _talib_pass(closes, talib_last)
    if _have("nautilus_trader"):
        factories["nautilus"] = lambda: _nautilus_ind_pass(closes)
    times = compare_chunked(factories, bars, chunk=200, repeat=repeat)
    rate = bars / best(times["ours"])
    note = f"RSI14 + EMA20 + MACD(12,26,9) + BB(20,2) per bar, {bars:,} bars; best of {repeat}"
    out = []
    if talib_last:
        _check_against_talib(closes, ours_last[0])
        peer = bars / best(times["talib"])
        out.append(
            result(
                "peers.indicators vs TA-Lib (window recompute)",
                rate,
                "bars/s",
                f"TA-Lib over {TALIB_WINDOW} bars",
                peer,
                note,
            )
        )
    else:
        out.append(_missing("peers.indicators vs TA-Lib (window recompute)", "ta-lib"))
    if "nautilus" in times:
        peer = bars / best(times["nautilus"])
        out.append(
            result(
                "peers.indicators vs nautilus_trader (incremental)",
                rate,
                "bars/s",
                "nautilus indicators",
                peer,
                note,
            )
        )
    else:
        out.append(_missing("peers.indicators vs nautilus_trader (incremental)", "nautilus_trader"))
    return out


def run(quick: bool) -> list[Result]:
    repeat = 3 if quick else 5
    return measure_book(5_000 if quick else 30_000, repeat) + measure_indicators(
        2_000 if quick else 10_000, repeat
    )
