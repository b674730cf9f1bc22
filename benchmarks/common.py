"""Shared pieces of the benchmark suite: the result row, timing helpers and the table.

Every figure is reported next to a plain baseline measured in the same run (the machine is
small and noisy, so an absolute number on its own says little). ``Result.ratio`` is the cost of
the measured thing in units of its baseline: ``> 1`` means slower than the baseline. For a
rate (a unit ending in ``/s``) that is ``baseline / value``; for a time it is ``value /
baseline``. One convention for every row keeps the column comparable down the table.

Clock: times are the thread's CPU time (``time.thread_time``) unless a row says "wall". The
machine is shared; time spent descheduled while a neighbour runs is not the code's cost, and
with it the figures swing by half between two runs. CPU time still carries the cache and memory
effects of the neighbours, which is what the baselines next to each figure absorb.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import numpy as np
import orjson

RATIO_NOTE = (
    "ratio = cost relative to the baseline (>1 = slower than the baseline); "
    "times are thread CPU time unless marked wall"
)

cpu_clock = time.thread_time
cpu_clock_ns = time.thread_time_ns


def cpu_clock_cost_ns(calls: int = 20_000) -> float:
    """Wall nanoseconds one ``cpu_clock_ns()`` call takes (a system call, ~1 µs): subtracted
    from the short per-sample timings, where it is not negligible."""
    clock = cpu_clock_ns
    started = time.perf_counter_ns()
    for _ in range(calls):
        clock()
    return (time.perf_counter_ns() - started) / calls


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the table. ``baseline`` / ``baseline_value`` / ``ratio`` are None only for a
    row that is itself a ratio (e.g. headroom against a fixed budget)."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_rate(unit: str) -> bool:
    return unit.endswith("/s")


def cost_ratio(value: float, baseline_value: float, unit: str) -> float:
    """Cost of ``value`` in units of ``baseline_value`` (see the module docstring)."""
    if value <= 0 or baseline_value <= 0:
        raise ValueError(f"figures must be positive, got {value} and {baseline_value}")
    return baseline_value / value if is_rate(unit) else value / baseline_value


def result(
    name: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    note: str = "",
) -> Result:
    """A row compared with a baseline in the same unit; the ratio is derived here."""
    return Result(
        name=name,
        value=value,
        unit=unit,
        baseline=baseline,
        baseline_value=baseline_value,
        ratio=cost_ratio(value, baseline_value, unit),
        note=note,
    )


# --------------------------------------------------------------------------- timing


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside the timed section: a collection landing in one run (its cost depends
    on everything else alive in the process) would be charged to whatever was being timed."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timeit(
    fn: Callable[[], object], *, number: int = 1, repeat: int = 5, warmup: int = 1
) -> list[float]:
    """CPU seconds per call of ``fn``, one figure per repeat (each repeat times ``number`` calls).

    ``warmup`` untimed calls come first (caches, lazily built tables, branch predictors).
    """
    return compare({"fn": fn}, number=number, repeat=repeat, warmup=warmup)["fn"]


def compare(
    fns: Mapping[str, Callable[[], object]],
    *,
    number: int = 1,
    repeat: int = 5,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """``timeit`` for several callables, interleaved round-robin (A B A B ...), so a noisy spell
    on the machine hits the measured thing and its baseline alike instead of only one of them.
    Returns CPU seconds per call, one figure per repeat, per name."""
    if number < 1 or repeat < 1 or warmup < 0:
        raise ValueError("number and repeat must be >= 1, warmup >= 0")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    clock = cpu_clock
    for _ in range(repeat):
        for name, fn in fns.items():
            with gc_paused():
                started = clock()
                for _ in range(number):
                    fn()
                elapsed = clock() - started
            out[name].append(elapsed / number)
    return out


Step = Callable[[int, int], object]  # processes items [i, j) of a stream


def compare_chunked(
    factories: Mapping[str, Callable[[], Step]],
    n: int,
    *,
    chunk: int = 500,
    repeat: int = 5,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Total CPU seconds per repeat of several passes over the same ``n`` items, interleaved chunk
    by chunk: items ``[i, i + chunk)`` go through every pass in turn before the next chunk.

    Each pass spans about a millisecond per chunk, so the measured thing and its baseline sit
    side by side at that grain and any noisy spell on the machine hits both alike -- much finer
    than interleaving whole runs (``compare``). ``factories`` are called, untimed, at the start
    of every repeat and return the step that processes ``[i, j)``; a stateful pass (a book, an
    engine) therefore starts fresh each repeat and sees its items in order.
    """
    if n < 1 or chunk < 1 or repeat < 1 or warmup < 0:
        raise ValueError("n, chunk and repeat must be >= 1, warmup >= 0")
    out: dict[str, list[float]] = {name: [] for name in factories}
    clock = cpu_clock
    for round_no in range(warmup + repeat):
        steps = [(name, make()) for name, make in factories.items()]
        totals = dict.fromkeys(factories, 0.0)
        with gc_paused():
            for i in range(0, n, chunk):
                j = min(i + chunk, n)
                for name, step in steps:
                    started = clock()
                    step(i, j)
                    totals[name] += clock() - started
        if round_no >= warmup:
            for name, total in totals.items():
                out[name].append(total)
    return out


def best(seconds: Sequence[float]) -> float:
    """The fastest repeat: noise only ever adds time, so the minimum is the least disturbed."""
    return min(seconds)


def percentiles(
    samples: Sequence[float] | np.ndarray, qs: Sequence[float] = (50, 99)
) -> list[float]:
    """Percentiles (linear interpolation, numpy's default) of the samples."""
    if len(samples) == 0:
        raise ValueError("no samples")
    return [float(x) for x in np.percentile(np.asarray(samples, dtype=np.float64), list(qs))]


# --------------------------------------------------------------------------- output


def fmt_number(x: float | None) -> str:
    """Compact, aligned-friendly figures: thousands separators for big ones, 3 significant
    digits for small ones."""
    if x is None:
        return ""
    if not math.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


_COLUMNS = ("benchmark", "value", "unit", "baseline", "baseline value", "ratio", "note")
_RIGHT = frozenset({"value", "baseline value", "ratio"})


def format_table(results: Sequence[Result]) -> str:
    rows = [
        (
            r.name,
            fmt_number(r.value),
            r.unit,
            r.baseline or "",
            fmt_number(r.baseline_value),
            "" if r.ratio is None else f"{fmt_number(r.ratio)}x",
            r.note,
        )
        for r in results
    ]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if col in _RIGHT else cell.ljust(w)
            for col, cell, w in zip(_COLUMNS, cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(_COLUMNS), sep, *(line(row) for row in rows)])


def print_table(results: Sequence[Result], file: TextIO | None = None) -> None:
    print(format_table(results), file=file)
    print(f"\n{RATIO_NOTE}", file=file)


def write_json(path: str, results: Sequence[Result], meta: Mapping[str, Any]) -> None:
    doc = {"meta": dict(meta), "results": [r.as_dict() for r in results]}
    with open(path, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
