"""Quality summaries for raw data that did not arrive live (imports, archive imports, backfills).

Live data gets its per-minute summaries from the live monitor as it arrives; data written into
the raw store any other way had none, so a report over it replayed every stored event (~2 min
for 24 h of one symbol). Now, once such a write finished, every day it touched is replayed once
through the monitor, per symbol, exactly as a report's replay does (``scan_raw``: same reader,
same warm-up, same monitor), and the result is stored in the summary store as a session
covering those whole days for that symbol. A report inside it reads the summaries (1,440 rows
a day) and gets the numbers the replay of that span gives.

The session also records a fingerprint of the raw files the replay read (file names: parts are
immutable, every write adds a new one). A report checks it first: once any of those files
changed (another write into the same days, retention, compaction), the session is ignored and
the report replays, so a stale summary is never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from feature_service.adapters.qualitystore import QualityStore, Session
from feature_service.adapters.rawstore.layout import (
    US_PER_DAY,
    day_number,
    days_in_range,
    iter_symbol_dirs,
    list_parts,
)
from feature_service.config import Settings
from feature_service.logging import get_logger
from feature_service.quality.config import QualityConfig
from feature_service.services.quality_report import DEFAULT_WARMUP_US, MARKET_KINDS, scan_raw

log = get_logger(__name__)

PartKey = tuple[str, str, str, str]  # kind, day, symbol, file name


def fingerprint(
    raw_dir: Path, symbol: str, start_us: int, end_us: int, warmup_us: int = DEFAULT_WARMUP_US
) -> str:
    """What a replay of ``[start_us, end_us)`` reads for ``symbol`` (with its warm-up)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for day in days_in_range(start_us - warmup_us, end_us):
        for kind in MARKET_KINDS:
            for part in list_parts(raw_dir, kind, day, symbol):
                digest.update(f"{kind.value}/{day}/{part.path.name}\n".encode())
    return digest.hexdigest()


def list_market_parts(raw_dir: Path) -> set[PartKey]:
    out: set[PartKey] = set()
    for kind, day, symbol, _ in iter_symbol_dirs(raw_dir, MARKET_KINDS):
        for part in list_parts(raw_dir, kind, day, symbol):
            out.add((kind.value, day, symbol, part.path.name))
    return out


def touched_days(before: set[PartKey], after: set[PartKey]) -> dict[str, list[int]]:
    """Per symbol, the day numbers whose raw files changed (added or removed)."""
    days: dict[str, set[int]] = {}
    for _, day, symbol, _ in before ^ after:
        days.setdefault(symbol, set()).add(day_number(day))
    return {symbol: sorted(d) for symbol, d in days.items()}


def _runs(days: list[int]) -> list[tuple[int, int]]:
    """Consecutive day numbers as ``[first, last + 1)`` runs."""
    runs: list[tuple[int, int]] = []
    for d in days:
        if runs and runs[-1][1] == d:
            runs[-1] = (runs[-1][0], d + 1)
        else:
            runs.append((d, d + 1))
    return runs


def summarise(
    raw_dir: Path,
    store: QualityStore,
    symbol: str,
    start_us: int,
    end_us: int,
    config: QualityConfig | None = None,
) -> Session:
    """Replay ``[start_us, end_us)`` of ``symbol`` from the raw store and keep the result as a
    session; sessions of the symbol it overlaps are merged into it (replayed together)."""
    for old in store.raw_sessions(symbol):
        if old.start_us <= end_us and start_us <= old.until_us:
            start_us, end_us = min(start_us, old.start_us), max(end_us, old.until_us)
    before = fingerprint(raw_dir, symbol, start_us, end_us)
    minutes, incidents = scan_raw(raw_dir, symbol, start_us, end_us, config)
    name = f"raw-{symbol}-{start_us // 1_000_000}-{secrets.token_hex(4)}"
    store.append(name, minutes, incidents)
    if fingerprint(raw_dir, symbol, start_us, end_us) != before:
        # Written to while we read: keep nothing (a later write will summarise again).
        store.remove(name)
        raise RuntimeError(f"raw data of {symbol} changed during the quality summary")
    for old in store.raw_sessions(symbol):
        if start_us <= old.start_us and old.until_us <= end_us:
            store.remove(old.session)
    store.mark_covered(name, start_us, end_us, symbol=symbol, fingerprint=before)
    return Session(name, start_us, end_us, symbol, before)


def summarise_changes(
    raw_dir: Path,
    quality_dir: Path,
    before: set[PartKey],
    config: QualityConfig | None = None,
) -> list[Session]:
    """Summaries for every symbol and run of days whose raw files changed since ``before``."""
    store = QualityStore(quality_dir)
    done: list[Session] = []
    for symbol, days in touched_days(before, list_market_parts(raw_dir)).items():
        for first, stop in _runs(days):
            try:
                done.append(
                    summarise(raw_dir, store, symbol, first * US_PER_DAY, stop * US_PER_DAY, config)
                )
            except Exception as exc:  # the data is stored either way; reports replay it
                log.warning("quality_summary_failed", symbol=symbol, error=repr(exc))
    return done


@contextlib.contextmanager
def summaries_after_write(
    raw_dir: Path, quality_dir: Path, config: QualityConfig | None = None
) -> Iterator[list[Session]]:
    """Around a non-live write into the raw store: summarise what it changed afterwards (also
    when it failed part-way: what it stored is there to report on)."""
    before = list_market_parts(raw_dir)
    sessions: list[Session] = []
    try:
        yield sessions
    finally:
        sessions.extend(summarise_changes(raw_dir, quality_dir, before, config))


def summarising(
    settings: Settings, raw_dir: Path | None = None
) -> contextlib.AbstractContextManager[list[Session]]:
    """``summaries_after_write`` for the service's stores (the summary store sits next to
    the raw store, as ``DATA_DIR/raw`` and ``DATA_DIR/quality`` do)."""
    from feature_service.services.quality_live import quality_config

    raw = Path(raw_dir) if raw_dir is not None else settings.raw_dir
    quality = settings.quality_dir if raw == settings.raw_dir else raw.parent / "quality"
    return summaries_after_write(raw, quality, quality_config(settings))


def describe(sessions: list[Session]) -> str:
    days = sum((s.until_us - s.start_us) // US_PER_DAY for s in sessions)
    symbols = sorted({s.symbol or "" for s in sessions})
    return f"quality summaries: {days} day(s) of {', '.join(symbols) or 'nothing'}"
