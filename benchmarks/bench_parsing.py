"""The cost of the strict value checks at the input boundary (issue 9, ``market/values.py``).

Rows: ``parse_message`` over the same message bytes, with the strict checks (ASCII decimals,
bounds per field, integer ``u``/``seq``, time windows, the symbol pattern, the crossed-message
check) against a baseline of the same parser with those checks swapped for the plain
conversions it made before them (``float(x)``, ``int(x)``, no window, no pattern). Everything
else -- JSON decoding, envelope and topic handling, building the events -- is common to both,
so the ratio is what the checks add per message. The two passes run interleaved 500 messages
at a time, and both must give the same events (no message of the input is refused).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.bench_book import book_messages
from benchmarks.common import Result, Step, best, compare_chunked, result
from feature_service.market import parsing
from feature_service.market.parsing import parse_message


def _plain_number(value: Any, name: str, *args: Any, **kwargs: Any) -> float:
    return float(value)


def _plain_levels(raw: Any, name: str, is_delta: bool) -> tuple[list[Any], float, float]:
    # (-inf, inf): no best prices, so the crossed check never fires
    return [(float(p), float(q)) for p, q in raw], -math.inf, math.inf


PLAIN: dict[str, Any] = {
    "_number": _plain_number,
    "_price": _plain_number,
    "_size": _plain_number,
    "_amount": _plain_number,
    "_bounded": _plain_number,
    "_int": lambda value, name: int(value),
    "_ms_to_us": lambda value, name: int(value) * 1_000,
    "_near": lambda us, receive_ts, before, after, name: us,
    "_checked_symbol": lambda value: value,
    "_levels": _plain_levels,
}


@contextmanager
def plain_values() -> Iterator[None]:
    """The parser with its value checks swapped for plain conversions (module globals, looked
    up at call time), restored on exit."""
    saved = {name: getattr(parsing, name) for name in PLAIN}
    for name, fn in PLAIN.items():
        setattr(parsing, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(parsing, name, fn)


def sample_lines(limit: int | None) -> list[bytes]:
    """The bundled sample's lines, every kind (book, trades, tickers, klines, funding)."""
    from feature_service.sample.generator import default_sample_path

    out: list[bytes] = []
    with gzip.open(default_sample_path(), "rb") as fh:
        for line in fh:
            if line.strip():
                out.append(line)
            if limit is not None and len(out) >= limit:
                break
    return out


def _measure(label: str, bodies: list[bytes], rts: list[int | None], repeat: int) -> Result:
    strict = [parse_message(b, receive_ts=t) for b, t in zip(bodies, rts, strict=True)]
    with plain_values():
        plain = [parse_message(b, receive_ts=t) for b, t in zip(bodies, rts, strict=True)]
    if plain != strict:
        raise RuntimeError(f"{label}: the plain parser gives other events than the strict one")

    def strict_pass() -> Step:
        def step(i: int, j: int) -> None:
            for body, t in zip(bodies[i:j], rts[i:j], strict=True):
                parse_message(body, receive_ts=t)

        return step

    def plain_pass() -> Step:
        def step(i: int, j: int) -> None:
            with plain_values():
                for body, t in zip(bodies[i:j], rts[i:j], strict=True):
                    parse_message(body, receive_ts=t)

        return step

    n = len(bodies)
    times = compare_chunked({"strict": strict_pass, "plain": plain_pass}, n, repeat=repeat)
    return result(
        f"parse.strict_values ({label})",
        n / best(times["strict"]),
        "msgs/s",
        "same parser, value checks off (as before issue 9)",
        n / best(times["plain"]),
        f"{n:,} msgs",
    )


def measure(*, n_deltas: int, sample: int | None, repeat: int) -> list[Result]:
    stream = book_messages(n_deltas)
    out = [
        _measure(
            "synthetic orderbook.50",
            [body for _, body in stream.messages],
            [ts for ts, _ in stream.messages],
            repeat,
        )
    ]
    lines = sample_lines(sample)
    out.append(_measure("bundled sample, all kinds", lines, [None] * len(lines), repeat))
    return out


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(n_deltas=3_000, sample=3_000, repeat=3)
    return measure(n_deltas=10_000, sample=20_000, repeat=3)
