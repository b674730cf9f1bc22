"""Raw store retention with a fake clock: compact, archive, delete, restore (and the CLI)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feature_service.adapters.rawstore.layout import Kind, list_parts
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.retention import (
    RESTORE_MARKER,
    _merge_into,
    apply_retention,
    archive_day,
    restore,
)
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.cli_storage import app
from feature_service.market.events import MarketEvent
from tests.fixtures.events import body, delta, trade

TODAY = date(2025, 6, 30)
DAY_US = 86_400_000_000


def at(day: date, hour: int = 10, us: int = 0) -> int:
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + us


NOW = at(TODAY, 12)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def write(root: Path, events: list[MarketEvent], first_seq: int = 0) -> None:
    RawWriterSync(root, first_seq=first_seq).write_events(events, [body(e) for e in events])


def tree(root: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(root)) for d, _, files in os.walk(root) for f in files)


@pytest.fixture()
def store(tmp_path: Path) -> tuple[Path, Path, dict[int, list[MarketEvent]]]:
    """Hot store with days 400, 95, 91, 90, 1 (three part files) and 0 (two) days ago."""
    root, archive = tmp_path / "raw", tmp_path / "archive"
    by_age: dict[int, list[MarketEvent]] = {}
    seq = 0
    for age, files in ((400, 1), (95, 1), (91, 1), (90, 1), (1, 3), (0, 2)):
        by_age[age] = []
        for f in range(files):
            events = [trade(at(ago(age), 10, 100 * f + i), 10 * f + i) for i in range(3)]
            if age == 91:
                events.append(delta(at(ago(age), 11), f))
            write(root, events, first_seq=seq)
            seq += 100
            by_age[age].extend(events)
    return root, archive, by_age


def _day_events(root: Path, day: date) -> list[MarketEvent]:
    start = at(day, 0)
    return list(RawReader(root).iter_events(start_us=start, end_us=start + DAY_US))


def test_dry_run_lists_actions_and_changes_nothing(store: tuple[Path, Path, dict]) -> None:
    root, archive, _ = store
    before = tree(root)
    actions = apply_retention(root, archive, now_us=NOW, dry_run=True)
    summary = sorted((a.action, a.kind, a.day, a.files) for a in actions)
    assert summary == sorted(
        [
            ("archive", "orderbook/deltas", ago(91).isoformat(), 1),
            ("archive", "trades", ago(91).isoformat(), 1),
            ("archive", "trades", ago(95).isoformat(), 1),
            ("compact", "trades", ago(1).isoformat(), 3),
            ("delete", "trades", ago(400).isoformat(), 1),
        ]
    )
    assert all(a.dry_run for a in actions)
    assert tree(root) == before
    assert not archive.exists()


def test_retention_archives_expired_days_compacts_closed_ones_and_deletes_old(
    store: tuple[Path, Path, dict[int, list[MarketEvent]]],
) -> None:
    root, archive, by_age = store
    apply_retention(root, archive, now_us=NOW)

    hot_days = sorted(p.name for p in (root / "trades").iterdir())
    assert hot_days == [ago(90).isoformat(), ago(1).isoformat(), ago(0).isoformat()]
    assert not (root / "orderbook").exists()  # its only day was archived; empty folders go
    for age in (95, 91):
        assert _day_events(archive, ago(age)) == by_age[age]
        parts = list_parts(archive, Kind.TRADES, ago(age).isoformat(), "BTCUSDT")
        assert len(parts) == 1
        assert pq.read_metadata(parts[0].path).row_group(0).column(0).compression == "ZSTD"
    assert _day_events(archive, ago(400)) == []

    yesterday = list_parts(root, Kind.TRADES, ago(1).isoformat(), "BTCUSDT")
    assert len(yesterday) == 1
    assert _day_events(root, ago(1)) == by_age[1]
    assert len(list_parts(root, Kind.TRADES, ago(0).isoformat(), "BTCUSDT")) == 2
    assert _day_events(root, ago(90)) == by_age[90]

    assert apply_retention(root, archive, now_us=NOW) == []  # idempotent


def test_archives_are_deleted_after_their_retention(
    store: tuple[Path, Path, dict[int, list[MarketEvent]]],
) -> None:
    root, archive, by_age = store
    apply_retention(root, archive, now_us=NOW)
    later = NOW + 271 * DAY_US  # day 95 is now 366 days old, day 91 is 362
    actions = apply_retention(root, archive, now_us=later, compact_after_days=None)
    deleted = {
        (a.kind, a.day, a.source.startswith(str(archive))) for a in actions if a.action == "delete"
    }
    assert deleted == {("trades", ago(95).isoformat(), True)}
    assert _day_events(archive, ago(95)) == []
    assert _day_events(archive, ago(91)) == by_age[91]


def test_restore_copies_back_holds_then_archives_again_without_duplicates(
    store: tuple[Path, Path, dict[int, list[MarketEvent]]],
) -> None:
    root, archive, by_age = store
    apply_retention(root, archive, now_us=NOW)
    day = ago(91).isoformat()

    actions = restore(archive, root, day, now_us=NOW)
    assert sorted((a.action, a.kind) for a in actions) == [
        ("restore", "orderbook/deltas"),
        ("restore", "trades"),
    ]
    assert _day_events(root, ago(91)) == by_age[91]
    assert _day_events(archive, ago(91)) == by_age[91]  # the archive keeps its copy
    assert (root / "trades" / day / "BTCUSDT" / RESTORE_MARKER).read_text() == str(NOW)

    held = apply_retention(root, archive, now_us=NOW + DAY_US)
    assert sorted(a.action for a in held if a.day == day) == ["hold", "hold"]
    assert _day_events(root, ago(91)) == by_age[91]

    again = apply_retention(root, archive, now_us=NOW + 8 * DAY_US)
    assert sorted(a.action for a in again if a.day == day) == ["archive", "archive"]
    assert not (root / "trades" / day).exists()
    assert len(list_parts(archive, Kind.TRADES, day, "BTCUSDT")) == 1
    reader = RawReader(archive)
    assert (
        list(reader.iter_events(start_us=at(ago(91), 0), end_us=at(ago(91), 0) + DAY_US))
        == (by_age[91])
    )
    assert reader.stats.duplicates == 0  # merged: the copy and the original became one


def test_restore_one_symbol_and_missing_day(tmp_path: Path) -> None:
    root, archive = tmp_path / "raw", tmp_path / "archive"
    day = ago(100)
    write(root, [trade(at(day), 0), trade(at(day, 11), 1, symbol="ETHUSDT")])
    archive_day(root, archive, day.isoformat())
    assert not root.exists() or tree(root) == []

    actions = restore(archive, root, day.isoformat(), "ETHUSDT", now_us=NOW)
    assert [(a.symbol, a.files) for a in actions] == [("ETHUSDT", 1)]
    assert [e.symbol for e in RawReader(root).iter_events()] == ["ETHUSDT"]
    assert restore(archive, root, ago(5).isoformat(), now_us=NOW) == []


def test_archive_without_recompression_moves_files(tmp_path: Path) -> None:
    root, archive = tmp_path / "raw", tmp_path / "archive"
    day = ago(120)
    write(root, [trade(at(day), 0)], first_seq=0)
    write(root, [trade(at(day, 11), 1)], first_seq=10)
    names = [p.path.name for p in list_parts(root, Kind.TRADES, day.isoformat(), "BTCUSDT")]

    actions = apply_retention(root, archive, now_us=NOW, recompress=None)
    assert [(a.action, a.files) for a in actions] == [("move", 2)]
    moved = list_parts(archive, Kind.TRADES, day.isoformat(), "BTCUSDT")
    assert [p.path.name for p in moved] == names


def test_without_archive_expired_days_are_deleted(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    write(root, [trade(at(ago(91)), 0), trade(at(ago(90)), 1)])
    actions = apply_retention(root, None, now_us=NOW)
    assert [(a.action, a.day) for a in actions] == [("delete", ago(91).isoformat())]
    assert [e.receive_ts for e in RawReader(root).iter_events()] == [at(ago(90))]


def test_retention_days_must_not_exceed_archive_retention(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        apply_retention(tmp_path, None, now_us=NOW, retention_days=400)
    with pytest.raises(ValueError):
        apply_retention(tmp_path, None, now_us=NOW, retention_days=0)


def test_an_interrupted_compaction_leaves_duplicates_that_are_merged_away(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    day = ago(3)
    events = [trade(at(day, 10, i), i) for i in range(4)]
    write(root, events[:2], first_seq=0)
    write(root, events[2:], first_seq=10)
    parts = list_parts(root, Kind.TRADES, day.isoformat(), "BTCUSDT")
    folder = parts[0].path.parent
    # The compaction output is durable, but the crash came before the inputs were removed.
    merged, rows = _merge_into(parts, folder, Kind.TRADES, compression="zstd", compression_level=3)
    assert merged is not None and rows == 4
    assert len(list_parts(root, Kind.TRADES, day.isoformat(), "BTCUSDT")) == 3
    reader = RawReader(root)
    assert list(reader.iter_events()) == events
    assert reader.stats.duplicates == 4

    apply_retention(root, None, now_us=NOW)
    final = list_parts(root, Kind.TRADES, day.isoformat(), "BTCUSDT")
    assert len(final) == 1 and pq.read_metadata(final[0].path).num_rows == 4


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_retention_archive_and_restore(tmp_path: Path) -> None:
    root, archive = tmp_path / "raw", tmp_path / "archive"
    old = date(2020, 1, 2)
    write(root, [trade(at(old), 0)])
    dirs = ["--raw-dir", str(root), "--archive-dir", str(archive)]
    runner = CliRunner()

    result = runner.invoke(app, ["retention", "--dry-run", *dirs])
    assert result.exit_code == 0, result.output
    assert "delete" in result.output and "(dry run)" in result.output  # older than a year
    assert tree(root) != []

    result = runner.invoke(app, ["archive", "--day", old.isoformat(), *dirs])
    assert result.exit_code == 0, result.output
    assert "archive" in result.output and "files=1" in result.output
    assert len(list_parts(archive, Kind.TRADES, old.isoformat(), "BTCUSDT")) == 1

    result = runner.invoke(app, ["restore", "--day", old.isoformat(), "--symbol", "btcusdt", *dirs])
    assert result.exit_code == 0, result.output
    assert [e.receive_ts for e in RawReader(root).iter_events()] == [at(old)]

    missing = runner.invoke(app, ["restore", "--day", "2020-01-03", *dirs])
    assert missing.exit_code == 1
    bad = runner.invoke(app, ["archive", "--day", "2020-1-3", *dirs])
    assert bad.exit_code == 2
