"""``python -m benchmarks [--only book,features] [--quick] [--json PATH]``: run the benchmark
sections and print one table.

A section is a module ``benchmarks/bench_<name>.py`` exposing ``run(quick: bool) ->
list[Result]``. To add one, create the module and list it in ``SECTIONS``; a listed section
whose module does not exist (yet) is reported as skipped, not as a failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType

from benchmarks.common import Result, print_table, write_json

SECTIONS: tuple[str, ...] = (
    "book",
    "parsing",
    "features",
    "live",
    "rawstore",
    "offline",
    "ops",
    "history",
    "continuity",
    "quality",
    "memory",
    "peers",
)

Runner = Callable[[bool], list[Result]]


def load_section(name: str, package: str = "benchmarks") -> Runner | None:
    """The section's ``run``; None when its module does not exist. Any other import error (a
    bug inside an existing section) propagates."""
    module_name = f"{package}.bench_{name}"
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return module.run


def run_sections(
    names: Sequence[str],
    quick: bool,
    package: str = "benchmarks",
    log: Callable[[str], None] = print,
) -> tuple[list[Result], list[str], list[str]]:
    """Run the named sections in order: ``(results, skipped, failed)``. A section that raises
    is reported and the others still run."""
    results: list[Result] = []
    skipped: list[str] = []
    failed: list[str] = []
    for name in names:
        runner = load_section(name, package)
        if runner is None:
            skipped.append(name)
            continue
        log(f"running {name} ...")
        started = time.perf_counter()
        try:
            rows = runner(quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        log(f"  {name}: {len(rows)} rows in {time.perf_counter() - started:.1f} s")
        results.extend(rows)
    return results, skipped, failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        args.sections = names
    else:
        args.sections = list(SECTIONS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "sections": args.sections,
    }
    print(
        f"benchmarks: python {meta['python']} on {meta['machine']}, {meta['cpus']} cpus"
        f"{' (quick)' if args.quick else ''}",
        flush=True,
    )
    started = time.perf_counter()
    results, skipped, failed = run_sections(
        args.sections, args.quick, log=lambda m: print(m, flush=True)
    )
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["skipped"] = skipped
    meta["failed"] = failed
    print()
    print_table(results)
    if skipped:
        print(f"not present (skipped): {', '.join(skipped)}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    print(f"total {meta['elapsed_s']} s")
    if args.json:
        write_json(args.json, results, meta)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
