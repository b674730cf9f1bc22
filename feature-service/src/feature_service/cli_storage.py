"""`feature-service storage ...`: operator commands for the raw data store.

Mounted on the main CLI by ``app.add_typer(cli_storage.app, name="storage")``. Paths default to
``./data/raw`` and ``./data/archive``; every command that changes files has ``--dry-run``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from feature_service.adapters.rawstore.layout import MARKET_KINDS, day_start_us, resolve_kinds
from feature_service.adapters.rawstore.retention import RetentionAction

app = typer.Typer(
    name="storage",
    help="Raw data store: retention, archive, restore, compact, export, import.",
    add_completion=False,
    no_args_is_help=True,
)
storage_app = app

RawDir = Annotated[Path, typer.Option("--raw-dir", help="Hot raw store root")]
ArchiveDir = Annotated[Path, typer.Option("--archive-dir", help="Archive root")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list what would be done")]
Day = Annotated[str, typer.Option("--day", help="UTC day, YYYY-MM-DD")]
Symbol = Annotated[str | None, typer.Option("--symbol", help="Only this symbol")]
Recompress = Annotated[
    bool, typer.Option("--recompress/--no-recompress", help="Rewrite archived days with zstd")
]
Level = Annotated[int, typer.Option("--level", help="zstd level for archived files")]


def _configured_dirs() -> tuple[Path, Path]:
    """Defaults follow FEATURE_SERVICE_DATA_DIR, like the running service."""
    from feature_service.config import load_settings

    settings = load_settings()
    return settings.raw_dir, settings.archive_dir


DEFAULT_RAW, DEFAULT_ARCHIVE = _configured_dirs()


def parse_time_us(text: str) -> int:
    """A UTC day (``YYYY-MM-DD``, midnight) or ISO-8601 date-time (naive = UTC) -> microseconds."""
    from feature_service.market.timeutil import parse_iso_us

    text = text.strip()
    try:
        if len(text) == 10:
            return day_start_us(text)
        return parse_iso_us(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a UTC day or ISO date-time: {text!r}") from exc


def _check_day(day: str) -> str:
    try:
        day_start_us(day)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    return day


def _upper(symbol: str | None) -> str | None:
    return symbol.upper() if symbol else None


def _echo_actions(actions: list[RetentionAction], *, if_none: str | None = None) -> None:
    """``if_none``: when given, no action at all is an error (this message, exit status 1)."""
    for a in actions:
        rows = "" if a.rows is None else f" rows={a.rows}"
        note = " (dry run)" if a.dry_run else ""
        typer.echo(
            f"{a.action:8} {a.kind:20} {a.day} {a.symbol:12} files={a.files} "
            f"bytes={a.bytes}{rows}{note}"
        )
    typer.echo(f"{len(actions)} action(s)")
    if not actions and if_none is not None:
        typer.echo(if_none, err=True)
        raise typer.Exit(1)


@app.command()
def retention(
    raw_dir: RawDir = DEFAULT_RAW,
    archive_dir: ArchiveDir = DEFAULT_ARCHIVE,
    retention_days: Annotated[int, typer.Option(help="Days kept in the hot store")] = 90,
    archive_retention_days: Annotated[int, typer.Option(help="Days before archives go")] = 365,
    archive: Annotated[
        bool, typer.Option("--archive/--delete", help="Archive expired days, or delete them")
    ] = True,
    recompress: Recompress = True,
    level: Level = 15,
    compact_after_days: Annotated[
        int, typer.Option(help="Merge the part files of days older than this; -1 disables")
    ] = 1,
    dry_run: DryRun = False,
) -> None:
    """Apply the retention policy once: compact closed days, archive expired ones, delete old."""
    from feature_service.adapters.rawstore.retention import apply_retention

    try:
        actions = apply_retention(
            raw_dir,
            archive_dir if archive else None,
            now_us=time.time_ns() // 1000,
            retention_days=retention_days,
            archive_retention_days=archive_retention_days,
            recompress="zstd" if recompress else None,
            recompress_level=level,
            compact_after_days=None if compact_after_days < 0 else compact_after_days,
            dry_run=dry_run,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _echo_actions(actions)


@app.command("archive")
def archive_cmd(
    day: Day,
    symbol: Symbol = None,
    raw_dir: RawDir = DEFAULT_RAW,
    archive_dir: ArchiveDir = DEFAULT_ARCHIVE,
    recompress: Recompress = True,
    level: Level = 15,
    dry_run: DryRun = False,
) -> None:
    """Archive one day now, whatever its age."""
    from feature_service.adapters.rawstore.retention import archive_day

    actions = archive_day(
        raw_dir,
        archive_dir,
        _check_day(day),
        symbol=_upper(symbol),
        recompress="zstd" if recompress else None,
        recompress_level=level,
        dry_run=dry_run,
    )
    _echo_actions(actions, if_none=f"nothing to archive for {day} under {raw_dir}")


@app.command("restore")
def restore_cmd(
    day: Day,
    symbol: Symbol = None,
    raw_dir: RawDir = DEFAULT_RAW,
    archive_dir: ArchiveDir = DEFAULT_ARCHIVE,
    dry_run: DryRun = False,
) -> None:
    """Copy an archived day back into the hot store (the archive keeps its copy)."""
    from feature_service.adapters.rawstore.retention import restore

    actions = restore(archive_dir, raw_dir, _check_day(day), _upper(symbol), dry_run=dry_run)
    _echo_actions(actions, if_none=f"nothing archived for {day} under {archive_dir}")


@app.command("compact")
def compact_cmd(
    day: Day,
    symbol: Symbol = None,
    raw_dir: RawDir = DEFAULT_RAW,
    dry_run: DryRun = False,
) -> None:
    """Merge a day's part files into one file per kind and symbol."""
    from feature_service.adapters.rawstore.retention import compact_day

    actions = compact_day(raw_dir, _check_day(day), symbol=_upper(symbol), dry_run=dry_run)
    _echo_actions(actions)


@app.command("export")
def export_cmd(
    symbol: Annotated[list[str], typer.Option("--symbol", help="Symbol (repeatable)")],
    start: Annotated[str, typer.Option("--from", help="Start (inclusive): day or date-time")],
    end: Annotated[str, typer.Option("--to", help="End (exclusive): day or date-time")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Recording (.jsonl[.gz])")],
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="orderbook, orderbook/snapshots, orderbook/deltas, trades, klines, ticker, "
            "funding (repeatable; default all)",
        ),
    ] = None,
    raw_dir: RawDir = DEFAULT_RAW,
) -> None:
    """Export stored messages as a JSON Lines recording for `feature-service compute`."""
    from feature_service.adapters.rawstore.export import export_recording

    try:
        kinds = resolve_kinds(types) if types else MARKET_KINDS
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    start_us, end_us = parse_time_us(start), parse_time_us(end)
    if end_us <= start_us:
        raise typer.BadParameter("--to must be after --from")
    try:
        summary = export_recording(
            raw_dir, kinds, [s.upper() for s in symbol], start_us, end_us, output
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        f"{summary.lines} message(s) -> {summary.output} (duplicates dropped: {summary.duplicates})"
    )
    if summary.lines == 0:
        from feature_service.adapters.rawstore.reader import RawReader

        reader = RawReader(raw_dir)
        for sym in symbol:
            days = reader.available_days(sym.upper(), kinds)
            found = f"{days[0]} .. {days[-1]} ({len(days)} days)" if days else "nothing"
            typer.echo(f"{sym.upper()}: stored days: {found}", err=True)
        raise typer.Exit(1)


@app.command("import")
def import_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="Recording (.jsonl[.gz])")],
    raw_dir: RawDir = DEFAULT_RAW,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop at the first bad line (exit 1, its line number)"),
    ] = False,
    skip_bad_lines: Annotated[
        bool, typer.Option("--skip-bad-lines", hidden=True, help="The default now; ignored")
    ] = False,
) -> None:
    """Store a recording in the raw store as if it had been received live (its receive times
    kept; bare frames use `ts`); idempotent. The twin of `storage export`. Bad lines
    (truncated, garbled, missing data, refused values) are skipped and counted by reason, as
    the live path dead-letters them; --strict stops at the first, with the lines before it
    stored."""
    from feature_service.config import load_settings
    from feature_service.market.recording import RecordingError
    from feature_service.market.timeutil import format_iso_us
    from feature_service.services.importer import import_recording
    from feature_service.services.quality_precompute import describe, summarising

    settings = load_settings()
    try:
        # The imported days get their quality summaries (a report need not replay them).
        with summarising(settings, raw_dir) as sessions:
            summary = import_recording(
                input, raw_dir, checkpoint_every_s=settings.checkpoint_interval_s, strict=strict
            )
    except RecordingError as error:
        typer.echo(
            f"import stopped at line {error.line_no}: {error.reason.value}: "
            f"{error.cause.detail} (the lines before it are stored)",
            err=True,
        )
        raise typer.Exit(1) from None
    span = (
        f"{format_iso_us(summary.first_us)}Z .. {format_iso_us(summary.last_us)}Z"
        if summary.first_us is not None and summary.last_us is not None
        else "nothing"
    )
    typer.echo(
        f"{summary.lines} line(s), {summary.events} event(s): {summary.stored} stored, "
        f"{summary.already_stored} already stored, {summary.duplicates} duplicate(s) skipped, "
        f"{summary.checkpoints} book checkpoint(s); receive times {span} -> {raw_dir}"
    )
    if summary.rejected:
        typer.echo(
            f"skipped {summary.rejected_lines} bad line(s): "
            + ", ".join(f"{reason} {n}" for reason, n in summary.rejected.most_common())
        )
    for error in summary.errors:
        typer.echo(error, err=True)
    if sessions:
        typer.echo(describe(sessions))
