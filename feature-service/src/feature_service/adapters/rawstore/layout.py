"""Where raw data lives on disk, and the write protocol that keeps every file whole.

Layout: ``{root}/{kind}/{YYYY-MM-DD}/{SYMBOL}/part-{first_receive_ts}-{uuid8}.parquet``. The
date is the UTC date of the service receive time (the clock replay runs on), so a replay of a
period reads exactly the day folders that period touches.

Files are immutable. A file is written as ``.{name}.tmp`` in its final folder, flushed and
fsynced, then renamed into place and the folder fsynced. Readers list only names that start with
``part-`` and end in ``.parquet``, so they never see a half-written file; a crash leaves at most a
hidden ``.tmp`` behind, which start-up removes. Hidden names also keep pyarrow / pandas / polars /
duckdb dataset discovery away from temp files and markers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.market.events import (
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Ticker,
    Trade,
)

US_PER_DAY = 86_400_000_000
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
# Footer min/max only where readers prune by them; statistics on `raw` would be waste.
_STATS_COLUMNS = ["receive_ts", "arrival_seq", "exchange_ts", "gateway_ts"]

_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PART_RE = re.compile(r"^part-(-?\d+)-[0-9a-f]{8}\.parquet$")
# Symbols become folder names: refuse anything that could escape the folder or hide itself.
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Kind(enum.StrEnum):
    """Storage kinds; the value is the folder path under the root."""

    ORDERBOOK_SNAPSHOTS = "orderbook/snapshots"
    ORDERBOOK_DELTAS = "orderbook/deltas"
    TRADES = "trades"
    KLINES = "klines"
    TICKER = "ticker"
    FUNDING = "funding"
    EXECUTIONS = "executions"
    # Derived data: the live engine's full book state (engine/checkpoints.py), so a replay of
    # any period can start from the book as it was instead of the last (rare) snapshot.
    ORDERBOOK_CHECKPOINTS = "orderbook/checkpoints"


ALL_KINDS: tuple[Kind, ...] = tuple(Kind)
MARKET_KINDS: tuple[Kind, ...] = tuple(
    k for k in Kind if k not in (Kind.EXECUTIONS, Kind.ORDERBOOK_CHECKPOINTS)
)

_ALIASES: dict[str, tuple[Kind, ...]] = {
    "orderbook": (Kind.ORDERBOOK_SNAPSHOTS, Kind.ORDERBOOK_DELTAS),
    "snapshots": (Kind.ORDERBOOK_SNAPSHOTS,),
    "orderbook_snapshots": (Kind.ORDERBOOK_SNAPSHOTS,),
    "deltas": (Kind.ORDERBOOK_DELTAS,),
    "orderbook_deltas": (Kind.ORDERBOOK_DELTAS,),
    "trade": (Kind.TRADES,),
    "kline": (Kind.KLINES,),
    "tickers": (Kind.TICKER,),
    "execution": (Kind.EXECUTIONS,),
    "order": (Kind.EXECUTIONS,),
    "checkpoints": (Kind.ORDERBOOK_CHECKPOINTS,),
    "all": MARKET_KINDS,
}


def resolve_kinds(names: Iterable[str | Kind] | None) -> tuple[Kind, ...]:
    """Kinds from names or aliases ("orderbook" is both book kinds); ``None`` -> market kinds.

    Order follows ``Kind`` and duplicates collapse, so the result is stable for callers."""
    if names is None:
        return MARKET_KINDS
    wanted: set[Kind] = set()
    for name in names:
        if isinstance(name, Kind):
            wanted.add(name)
            continue
        key = name.strip().lower()
        if key in _ALIASES:
            wanted.update(_ALIASES[key])
            continue
        try:
            wanted.add(Kind(key))
        except ValueError:
            valid = sorted({k.value for k in Kind} | set(_ALIASES))
            raise ValueError(f"unknown raw data kind {name!r}; expected one of {valid}") from None
    return tuple(k for k in Kind if k in wanted)


def kind_of(event: MarketEvent) -> Kind:
    # Exact type dispatch: the hot path calls this per event.
    kind = _KIND_BY_TYPE.get(type(event))
    if kind is None:
        raise TypeError(f"not a market event: {type(event).__name__}")
    return kind


_KIND_BY_TYPE: dict[type, Kind] = {
    BookSnapshot: Kind.ORDERBOOK_SNAPSHOTS,
    BookDelta: Kind.ORDERBOOK_DELTAS,
    Trade: Kind.TRADES,
    Kline: Kind.KLINES,
    Ticker: Kind.TICKER,
    Funding: Kind.FUNDING,
}


# -- days ---------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def day_name(day_number: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since the epoch)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).isoformat()


def day_of(ts_us: int) -> str:
    return day_name(ts_us // US_PER_DAY)


def day_number(day: str) -> int:
    if not _DAY_RE.match(day):
        raise ValueError(f"not a day (YYYY-MM-DD): {day!r}")
    return (dt.date.fromisoformat(day) - dt.date(1970, 1, 1)).days


def day_start_us(day: str) -> int:
    return day_number(day) * US_PER_DAY


def is_day_name(name: str) -> bool:
    return bool(_DAY_RE.match(name))


def days_in_range(start_us: int, end_us: int) -> list[str]:
    """Day names touched by ``[start_us, end_us)``."""
    if end_us <= start_us:
        return []
    first = start_us // US_PER_DAY
    last = (end_us - 1) // US_PER_DAY
    return [day_name(n) for n in range(first, last + 1)]


# -- paths --------------------------------------------------------------------------------------
def check_symbol(symbol: str) -> str:
    if not _SYMBOL_RE.match(symbol) or ".." in symbol:
        raise ValueError(f"symbol not usable as a folder name: {symbol!r}")
    return symbol


def kind_dir(root: Path, kind: Kind) -> Path:
    return root / kind.value


def day_dir(root: Path, kind: Kind, day: str) -> Path:
    return root / kind.value / day


def symbol_dir(root: Path, kind: Kind, day: str, symbol: str) -> Path:
    return root / kind.value / day / check_symbol(symbol)


def part_name(first_receive_ts: int, token: str | None = None) -> str:
    return f"{PART_PREFIX}{first_receive_ts}-{token or uuid.uuid4().hex[:8]}{PART_SUFFIX}"


def part_path(root: Path, kind: Kind, day: str, symbol: str, first_receive_ts: int) -> Path:
    return symbol_dir(root, kind, day, symbol) / part_name(first_receive_ts)


def tmp_path_for(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def part_first_ts(name: str) -> int | None:
    """The first receive time encoded in a part file name, or ``None`` for other names."""
    match = _PART_RE.match(name)
    return int(match.group(1)) if match else None


def is_part_name(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


@dataclass(frozen=True, slots=True)
class PartFile:
    path: Path
    kind: Kind
    day: str
    symbol: str
    first_ts: int | None  # from the name; None for a foreign name (read the footer instead)


def list_days(root: Path, kind: Kind) -> list[str]:
    base = kind_dir(root, kind)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and is_day_name(p.name))


def list_symbols(root: Path, kind: Kind, day: str) -> list[str]:
    base = day_dir(root, kind, day)
    if not base.is_dir():
        return []
    return sorted(
        p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def list_parts(root: Path, kind: Kind, day: str, symbol: str) -> list[PartFile]:
    """Complete part files of one symbol-day, by first receive time (temp files excluded)."""
    return list_parts_in(symbol_dir(root, kind, day, symbol), kind, day, symbol)


def list_parts_in(base: Path, kind: Kind, day: str, symbol: str) -> list[PartFile]:
    """``list_parts`` of a known folder (any root)."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    parts = [
        PartFile(base / name, kind, day, symbol, part_first_ts(name))
        for name in names
        if is_part_name(name)
    ]
    parts.sort(key=lambda p: (p.first_ts if p.first_ts is not None else -1, p.path.name))
    return parts


def iter_symbol_dirs(root: Path, kinds: Iterable[Kind]) -> Iterator[tuple[Kind, str, str, Path]]:
    """Every ``(kind, day, symbol, folder)`` present under ``root``."""
    for kind in kinds:
        for day in list_days(root, kind):
            for symbol in list_symbols(root, kind, day):
                yield kind, day, symbol, day_dir(root, kind, day) / symbol


# -- durable file system operations -------------------------------------------------------------
def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and make the new entries durable (fsync of each created folder's parent)."""
    if path.is_dir():
        return
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def atomic_parquet_writer(
    final: Path,
    schema: pa.Schema,
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
) -> Iterator[pq.ParquetWriter]:
    """A ParquetWriter whose file appears at ``final`` only if the block completes.

    Written to a hidden temp name, fsynced, renamed, folder fsynced. On error the temp file is
    removed and nothing appears."""
    ensure_dir(final.parent)
    tmp = tmp_path_for(final)
    try:
        with open(tmp, "wb") as fh:
            writer = pq.ParquetWriter(
                fh,
                schema,
                compression=compression,
                compression_level=compression_level,
                use_dictionary=["symbol", "topic"],
                write_statistics=_STATS_COLUMNS,
            )
            try:
                yield writer
            finally:
                writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(final.parent)


def write_table_atomic(
    table: pa.Table,
    final: Path,
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    row_group_rows: int = 100_000,
) -> int:
    """Write ``table`` to ``final`` with the temp-then-rename protocol; returns the file size."""
    with atomic_parquet_writer(
        final, table.schema, compression=compression, compression_level=compression_level
    ) as writer:
        writer.write_table(table, row_group_size=row_group_rows)
    return file_size(final)


def copy_file_durable(source: Path, target: Path) -> None:
    """Copy with the same temp-then-rename protocol (used across file systems and by restore)."""
    ensure_dir(target.parent)
    tmp = tmp_path_for(target)
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def move_file_durable(source: Path, target: Path) -> None:
    """Rename when on the same file system, else copy durably then remove the source."""
    ensure_dir(target.parent)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # different file systems
            raise
        copy_file_durable(source, target)
        source.unlink()
    else:
        fsync_dir(target.parent)
    fsync_dir(source.parent)


def remove_empty_dirs(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while empty, never ``stop`` or above."""
    stop = stop.resolve()
    current = path
    while current.resolve() != stop and stop in current.resolve().parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def clean_stale_tmp(
    root: Path, *, older_than_s: float = 0.0, now: float | None = None
) -> list[Path]:
    """Remove temp files left by a crash. ``older_than_s`` spares files a concurrent writer may
    still be producing (another process writing into the same store)."""
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
                continue
            path = Path(dirpath) / name
            try:
                if now - path.stat().st_mtime < older_than_s:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
