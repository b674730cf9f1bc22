"""`feature-service backfill`: history from Bybit REST into the raw store, with a progress bar.

The same job machinery as POST /backfill/historical, run in this process: the job is recorded in
the metadata store (trigger ``cli``), so running the same command again after a crash or a
Ctrl-C resumes it, skipping the days it recorded as done.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import typer

from feature_service.config import load_settings


def backfill(
    symbol: Annotated[str, typer.Option(help="e.g. BTCUSDT")],
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (inclusive)")],
    types: Annotated[
        str | None,
        typer.Option(help="comma-separated: klines,funding (default: what the registry needs)"),
    ] = None,
    category: Annotated[str | None, typer.Option(help="linear (default) or spot")] = None,
) -> None:
    """Backfill klines and funding history of SYMBOL for [--from, --to] from Bybit REST."""
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    wanted = [t for t in (types or "").split(",") if t.strip()] or None
    raise typer.Exit(asyncio.run(_run(symbol.upper(), first, last, wanted, category)))


async def _run(
    symbol: str, first: dt.date, last: dt.date, types: list[str] | None, category: str | None
) -> int:
    from feature_service.adapters.metadata.factory import create_metadata_store
    from feature_service.logging import configure_logging
    from feature_service.registry.loader import load_registry
    from feature_service.services.backfill_jobs import (
        BackfillJobs,
        BackfillRequestError,
        build_backfill,
    )
    from feature_service.services.quality_precompute import describe, summarising

    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    store = create_metadata_store(
        settings.database_url, settings.sqlite_path, settings.migrations_dir
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.connect()
    await store.upgrade()
    try:
        jobs = build_backfill(
            settings.model_copy(update={"backfill_enabled": True}), store,
            load_registry(settings.registry_path),
        )  # fmt: skip
        assert isinstance(jobs, BackfillJobs)
        job = await _resumable(store, symbol, first, last, category or settings.bybit_category)
        if job is None:
            try:
                job = await jobs.submit(
                    symbol, first, last, types, category=category, trigger="cli", enqueue=False
                )
            except BackfillRequestError as exc:
                typer.echo(f"error: {exc}", err=True)
                return 2
        else:
            typer.echo(f"resuming job {job.id} ({len(job.completed_days)} day(s) done)")
        for data_type, reason in job.unavailable.items():
            typer.echo(f"not fetched: {data_type}: {reason}")
        total = max(1, int((job.progress or {}).get("days_total", 1)))
        with typer.progressbar(length=total, label=f"backfill {symbol}") as bar:
            shown = len(job.completed_days)
            bar.update(shown)

            def progress(j: Any) -> None:
                nonlocal shown
                done = len(j.completed_days) + len(j.failed_days)
                if done > shown:
                    bar.update(done - shown)
                    shown = done

            jobs.on_progress = progress
            # The days it stores into get their quality summaries when it is done.
            with summarising(settings) as sessions:
                result = await jobs.run_job(job.id)
        assert result is not None
        typer.echo(f"\n{result.status}: job {result.id}, {len(result.completed_days)} day(s) done")
        if sessions:
            typer.echo(describe(sessions))
        for failed in result.failed_days:
            typer.echo(f"failed: {failed['data_type']} {failed['day']}: {failed.get('problems')}")
        if result.error_message:
            typer.echo(f"error: {result.error_message}", err=True)
        return 0 if result.status == "completed" else 1
    finally:
        await store.close()


async def _resumable(store: Any, symbol: str, first: dt.date, last: dt.date, category: str) -> Any:
    """An unfinished CLI job with the same symbol, period and category (a previous run)."""
    for status in ("running", "pending"):
        for job in await store.list_backfill_jobs(status=status, symbol=symbol):
            same = (job.start_date, job.end_date, job.category) == (first, last, category)
            if job.trigger == "cli" and same:
                return job
    return None
