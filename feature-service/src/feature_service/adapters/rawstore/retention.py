"""Retention of the raw store: compact closed days, archive expired ones, delete old archives.

Ages are measured in whole UTC days of the data (the day folder), against an injected ``now_us``:
with ``retention_days=90`` a day is archived once it is more than 90 days before today's date,
so at least 90 full days always stay in the hot store (FR-002, SC-004). Archive days are deleted
``archive_retention_days`` after their date. Without an archive root, expired days are deleted.

Every change keeps the store readable at all times: new files appear by temp-then-rename and old
ones are removed only after the new one is durable, so a crash leaves at worst the same rows
twice, which readers drop as duplicates (same ``message_key``) and the next run merges away.

- compact: the part files of a closed day (``compact_after_days`` before today) are merged into one
  (in live order, duplicates dropped): a day written by the live writer holds tens of thousands
  of small files otherwise.
- archive: with ``recompress``, a symbol-day is merged (with whatever the archive already holds
  for it) into one file at a stronger compression level; without, files are moved as they are.
- restore: archive files are copied back (the archive keeps its copy) and the folder is marked,
  so retention leaves it in place for ``restore_hold_days`` while a dataset is rebuilt from it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from feature_service.adapters.rawstore.layout import (
    ALL_KINDS,
    US_PER_DAY,
    Kind,
    PartFile,
    atomic_parquet_writer,
    copy_file_durable,
    day_number,
    file_size,
    fsync_dir,
    iter_symbol_dirs,
    list_parts,
    list_symbols,
    move_file_durable,
    part_name,
    remove_empty_dirs,
    resolve_kinds,
    symbol_dir,
    tmp_path_for,
)
from feature_service.adapters.rawstore.reader import merged_tables
from feature_service.adapters.rawstore.schema import schema_for
from feature_service.logging import get_logger

log = get_logger(__name__)

RESTORE_MARKER = ".restored"
DEFAULT_RECOMPRESS_LEVEL = 15


@dataclass(frozen=True, slots=True)
class RetentionAction:
    """One change to the stores (or, with ``dry_run``, one change that would be made)."""

    action: str  # compact | archive | move | delete | restore | hold
    kind: str
    day: str
    symbol: str
    source: str
    target: str | None
    files: int
    bytes: int
    dry_run: bool
    rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(actions: list[RetentionAction], action: RetentionAction | None) -> None:
    """Keep and log ``action``; None (nothing to do) is skipped."""
    if action is not None:
        actions.append(action)
        log.info("raw_retention_action", **action.as_dict())


def _sizes(parts: Sequence[PartFile]) -> int:
    return sum(file_size(p.path) for p in parts)


def _kinds(kinds: Iterable[Kind | str] | None) -> tuple[Kind, ...]:
    return ALL_KINDS if kinds is None else resolve_kinds(kinds)


def _day_symbols(
    root: Path, day: str, symbol: str | None, kinds: Iterable[Kind | str] | None
) -> Iterator[tuple[Kind, str]]:
    """Each (kind, symbol) stored under ``root`` for ``day``, only ``symbol`` when given. The
    day name is checked at once; each kind's symbols are listed when the walk reaches it."""
    day_number(day)
    return (
        (kind, sym)
        for kind in _kinds(kinds)
        for sym in list_symbols(root, kind, day)
        if symbol is None or sym == symbol
    )


# -- merging ------------------------------------------------------------------------------------
def _merge_into(
    files: Sequence[PartFile],
    folder: Path,
    kind: Kind,
    *,
    compression: str,
    compression_level: int | None,
) -> tuple[Path | None, int]:
    """Merge ``files`` into one new part file in ``folder``; returns (path, rows)."""
    schema = schema_for(kind)
    tables = merged_tables(files, schema)
    first = next(tables, None)
    if first is None or first.num_rows == 0:
        return None, 0
    first_ts = first.column("receive_ts").cast("int64")[0].as_py()
    final = folder / part_name(first_ts)
    rows = 0
    with atomic_parquet_writer(
        final, schema, compression=compression, compression_level=compression_level
    ) as writer:
        for table in itertools.chain([first], tables):
            writer.write_table(table, row_group_size=100_000)
            rows += table.num_rows
    return final, rows


def _unlink_all(paths: Iterable[Path], keep: Path | None = None) -> None:
    folders: set[Path] = set()
    for path in paths:
        if path == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        folders.add(path.parent)
    for folder in folders:
        if folder.is_dir():
            fsync_dir(folder)


def _clear_folder(folder: Path, stop: Path) -> None:
    """Remove what is left of a hot folder once its parts are gone (marker, stale temps)."""
    if folder.is_dir() and not any(
        name.startswith("part-") and not name.endswith(".tmp") for name in os.listdir(folder)
    ):
        for name in os.listdir(folder):
            if name == RESTORE_MARKER or name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
    remove_empty_dirs(folder, stop)


# -- single operations --------------------------------------------------------------------------
def compact_symbol_day(
    root: Path,
    kind: Kind,
    day: str,
    symbol: str,
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    dry_run: bool = False,
) -> RetentionAction | None:
    """Merge the parts of one symbol-day into one file; None when already a single file."""
    parts = list_parts(root, kind, day, symbol)
    if len(parts) < 2:
        return None
    folder = symbol_dir(root, kind, day, symbol)
    size = _sizes(parts)
    rows: int | None = None
    target: Path | None = None
    if not dry_run:
        target, rows = _merge_into(
            parts, folder, kind, compression=compression, compression_level=compression_level
        )
        _unlink_all((p.path for p in parts), keep=target)
    return RetentionAction(
        "compact",
        kind.value,
        day,
        symbol,
        str(folder),
        str(target) if target else None,
        len(parts),
        size,
        dry_run,
        rows,
    )


def archive_symbol_day(
    root: Path,
    archive_root: Path,
    kind: Kind,
    day: str,
    symbol: str,
    *,
    recompress: str | None = "zstd",
    recompress_level: int | None = DEFAULT_RECOMPRESS_LEVEL,
    dry_run: bool = False,
) -> RetentionAction | None:
    parts = list_parts(root, kind, day, symbol)
    source = symbol_dir(root, kind, day, symbol)
    target_dir = symbol_dir(archive_root, kind, day, symbol)
    if not parts:
        if not dry_run:
            _clear_folder(source, root)
        return None
    size = _sizes(parts)
    rows: int | None = None
    if recompress:
        if not dry_run:
            # Merge with what the archive already holds for the day (e.g. the copy a restore
            # took): one file per symbol-day, duplicates dropped.
            existing = list_parts(archive_root, kind, day, symbol)
            merged, rows = _merge_into(
                [*parts, *existing],
                target_dir,
                kind,
                compression=recompress,
                compression_level=recompress_level,
            )
            _unlink_all((p.path for p in existing), keep=merged)
            _unlink_all(p.path for p in parts)
            _clear_folder(source, root)
        action = "archive"
    else:
        if not dry_run:
            for part in parts:
                target = target_dir / part.path.name
                if target.exists() and file_size(target) == file_size(part.path):
                    part.path.unlink()  # a restored copy: the archive already holds it
                else:
                    move_file_durable(part.path, target)
            _clear_folder(source, root)
        action = "move"
    return RetentionAction(
        action,
        kind.value,
        day,
        symbol,
        str(source),
        str(target_dir),
        len(parts),
        size,
        dry_run,
        rows,
    )


def delete_symbol_day(
    store_root: Path, kind: Kind, day: str, symbol: str, *, dry_run: bool = False
) -> RetentionAction:
    folder = symbol_dir(store_root, kind, day, symbol)
    parts = list_parts(store_root, kind, day, symbol)
    size = _sizes(parts)
    if not dry_run:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.parent.is_dir():
            fsync_dir(folder.parent)
        remove_empty_dirs(folder.parent, store_root)
    return RetentionAction(
        "delete", kind.value, day, symbol, str(folder), None, len(parts), size, dry_run
    )


def _restored_at(folder: Path) -> int | None:
    try:
        return int((folder / RESTORE_MARKER).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# -- policies -----------------------------------------------------------------------------------
def apply_retention(
    root: Path | str,
    archive_root: Path | str | None,
    *,
    now_us: int,
    retention_days: int = 90,
    archive_retention_days: int = 365,
    recompress: str | None = "zstd",
    recompress_level: int | None = DEFAULT_RECOMPRESS_LEVEL,
    compact_after_days: int | None = 1,
    restore_hold_days: int = 7,
    kinds: Iterable[Kind | str] | None = None,
    dry_run: bool = False,
) -> list[RetentionAction]:
    """Apply the policy once; returns (and logs) every action, in the order taken.

    Day ``d`` (days since the epoch) with ``today = now_us // day``:
    - ``d < today - archive_retention_days``: deleted (hot and archive);
    - ``d < today - retention_days``: archived (deleted when ``archive_root`` is None), unless
      restored less than ``restore_hold_days`` ago;
    - ``d <= today - compact_after_days`` (1: from yesterday on, a closed day): compacted in
      place; None disables compaction.
    """
    if retention_days < 1 or archive_retention_days < retention_days:
        raise ValueError("need 1 <= retention_days <= archive_retention_days")
    root = Path(root)
    archive = Path(archive_root) if archive_root is not None else None
    wanted = _kinds(kinds)
    today = now_us // US_PER_DAY
    hot_cutoff = today - retention_days
    archive_cutoff = today - archive_retention_days
    actions: list[RetentionAction] = []

    for kind, day, symbol, folder in list(iter_symbol_dirs(root, wanted)):
        n = day_number(day)
        if n < archive_cutoff or (n < hot_cutoff and archive is None):
            _record(actions, delete_symbol_day(root, kind, day, symbol, dry_run=dry_run))
        elif n < hot_cutoff:
            assert archive is not None
            restored = _restored_at(folder)
            if restored is not None and now_us - restored < restore_hold_days * US_PER_DAY:
                parts = list_parts(root, kind, day, symbol)
                _record(
                    actions,
                    RetentionAction(
                        "hold",
                        kind.value,
                        day,
                        symbol,
                        str(folder),
                        None,
                        len(parts),
                        _sizes(parts),
                        dry_run,
                    ),
                )
                continue
            action = archive_symbol_day(
                root,
                archive,
                kind,
                day,
                symbol,
                recompress=recompress,
                recompress_level=recompress_level,
                dry_run=dry_run,
            )
            _record(actions, action)
        elif compact_after_days is not None and n <= today - compact_after_days:
            _record(actions, compact_symbol_day(root, kind, day, symbol, dry_run=dry_run))

    if archive is not None:
        for kind, day, symbol, _folder in list(iter_symbol_dirs(archive, wanted)):
            if day_number(day) < archive_cutoff:
                _record(actions, delete_symbol_day(archive, kind, day, symbol, dry_run=dry_run))
    return actions


def archive_day(
    root: Path | str,
    archive_root: Path | str,
    day: str,
    *,
    symbol: str | None = None,
    kinds: Iterable[Kind | str] | None = None,
    recompress: str | None = "zstd",
    recompress_level: int | None = DEFAULT_RECOMPRESS_LEVEL,
    dry_run: bool = False,
) -> list[RetentionAction]:
    """Archive one day now, whatever its age (operator command)."""
    root, archive = Path(root), Path(archive_root)
    actions: list[RetentionAction] = []
    for kind, sym in _day_symbols(root, day, symbol, kinds):
        action = archive_symbol_day(
            root,
            archive,
            kind,
            day,
            sym,
            recompress=recompress,
            recompress_level=recompress_level,
            dry_run=dry_run,
        )
        _record(actions, action)
    return actions


def compact_day(
    root: Path | str,
    day: str,
    *,
    symbol: str | None = None,
    kinds: Iterable[Kind | str] | None = None,
    compression: str = "zstd",
    compression_level: int | None = None,
    dry_run: bool = False,
) -> list[RetentionAction]:
    root = Path(root)
    actions: list[RetentionAction] = []
    for kind, sym in _day_symbols(root, day, symbol, kinds):
        action = compact_symbol_day(
            root,
            kind,
            day,
            sym,
            compression=compression,
            compression_level=compression_level,
            dry_run=dry_run,
        )
        _record(actions, action)
    return actions


def restore(
    archive_root: Path | str,
    root: Path | str,
    day: str,
    symbol: str | None = None,
    *,
    kinds: Iterable[Kind | str] | None = None,
    now_us: int | None = None,
    dry_run: bool = False,
) -> list[RetentionAction]:
    """Copy an archived day (optionally one symbol) back into the hot store.

    The archive keeps its copy; the hot folder is marked with ``now_us`` so retention holds it
    for a while. Files already present (same name and size) are not copied again."""
    archive, root = Path(archive_root), Path(root)
    symbols = _day_symbols(archive, day, symbol, kinds)
    now = time.time_ns() // 1000 if now_us is None else now_us
    actions: list[RetentionAction] = []
    for kind, sym in symbols:
        parts = list_parts(archive, kind, day, sym)
        if not parts:
            continue
        target_dir = symbol_dir(root, kind, day, sym)
        if not dry_run:
            for part in parts:
                target = target_dir / part.path.name
                if target.exists() and file_size(target) == file_size(part.path):
                    continue
                copy_file_durable(part.path, target)
            _write_marker(target_dir, now)
        _record(
            actions,
            RetentionAction(
                "restore",
                kind.value,
                day,
                sym,
                str(symbol_dir(archive, kind, day, sym)),
                str(target_dir),
                len(parts),
                _sizes(parts),
                dry_run,
            ),
        )
    return actions


def _write_marker(folder: Path, now_us: int) -> None:
    marker = folder / RESTORE_MARKER
    tmp = tmp_path_for(marker)
    with open(tmp, "w") as fh:
        fh.write(str(now_us))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, marker)
    fsync_dir(folder)
