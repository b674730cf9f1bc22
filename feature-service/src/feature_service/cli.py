"""`feature-service`: the one entry point for every command."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from feature_service import cli_db
from feature_service.cli_backfill import backfill as backfill_command
from feature_service.cli_dataset import app as dataset_app
from feature_service.cli_db import app as db_app
from feature_service.cli_import import app as import_app
from feature_service.cli_quality import quality_app
from feature_service.cli_registry import app as registry_app
from feature_service.cli_storage import app as storage_app
from feature_service.config import load_settings
from feature_service.engine.vector import parse_interval
from feature_service.logging import configure_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(storage_app, name="storage")
app.add_typer(db_app, name="db")
app.add_typer(dataset_app, name="dataset")
app.add_typer(quality_app, name="quality")
app.add_typer(registry_app, name="registry")
app.command("backfill")(backfill_command)
app.add_typer(import_app, name="import")


@app.command()
def compute(
    input: Annotated[Path, typer.Option("--input", "-i", help="Recording (.jsonl or .jsonl.gz)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write")],
    interval: Annotated[str, typer.Option(help="Interval of the rows: 1s, 3s, 15s or 1m")] = "1s",
    symbol: Annotated[list[str] | None, typer.Option(help="Only these symbols")] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Rows from this UTC day or time (state from before)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Rows before this UTC day or time")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad line (exit 1, its line number)")
    ] = False,
) -> None:
    """Replay a recording through the feature engine; one row per symbol per interval close.
    Bad lines (truncated, garbled, missing data) are skipped and counted by reason, as the live
    path dead-letters them; --strict stops at the first instead. Duplicate lines are skipped and
    counted. With --from, the lines before it only build the state (nothing is emitted before)."""
    from feature_service.engine.core import FeatureEngine
    from feature_service.engine.offline import compute_to_parquet
    from feature_service.ingest import IngestBoundary
    from feature_service.ingest.replay import recording_events
    from feature_service.market.recording import RecordingError
    from feature_service.registry.loader import load_registry

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    registry = load_registry(settings.registry_path)
    if registry.plan is None:
        typer.echo("feature registry invalid: " + "; ".join(registry.errors), err=True)
        raise typer.Exit(2)
    interval_s = parse_interval(interval)
    engine = FeatureEngine(
        intervals_s=sorted({interval_s, *settings.intervals}),
        registry_version=registry.version,
        plan=registry.plan,
        stale_after_s=settings.stale_after_s,
        symbols=[s.upper() for s in symbol] if symbol else None,
    )
    boundary = IngestBoundary()
    started = time.perf_counter()
    skipped: Counter[str] = Counter()

    def on_error(error: RecordingError) -> None:
        if strict:
            raise error
        skipped[error.reason.value] += 1

    events = recording_events(input, boundary, on_error=on_error)
    if start is not None or end is not None:
        from feature_service.cli_storage import parse_time_us
        from feature_service.engine.warmup import Warmup, after_warmup

        start_us = parse_time_us(start) if start is not None else 0
        end_us = parse_time_us(end) if end is not None else None
        events = after_warmup(events, Warmup(engine, start_us), end_us)
    try:
        summary = compute_to_parquet(events, output, engine, intervals_s=[interval_s])
    except RecordingError as error:
        typer.echo(f"line {error.line_no}: {error.reason.value}: {error.cause.detail}", err=True)
        raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started
    typer.echo(
        f"{summary.events} events -> {summary.rows} rows ({interval}) in {elapsed:.1f}s -> {output}"
    )
    typer.echo(f"duplicates skipped: {boundary.duplicates}")
    if skipped:
        total = sum(skipped.values())
        typer.echo(
            f"skipped {total} bad lines: "
            + ", ".join(f"{reason} {n}" for reason, n in skipped.most_common())
        )
    most = sorted(summary.null_counts.items(), key=lambda kv: -kv[1])[:5]
    if most:
        # Mostly warm-up: candle indicators need history, windows need their span of data.
        typer.echo("most null values: " + ", ".join(f"{k} {v}" for k, v in most))


@app.command("generate-sample")
def generate_sample(
    output: Annotated[Path, typer.Option("--output", "-o")],
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Write a seeded synthetic BTCUSDT recording (the bundled sample is seed 42)."""
    from feature_service.sample.generator import generate

    summary = generate(output, seed=seed)
    typer.echo(f"wrote {output}: {summary}")


@app.command("validate-identity")
def validate_identity_cmd(
    symbol: Annotated[str, typer.Option(help="Symbol to check")],
    start: Annotated[str, typer.Option("--from", help="UTC day or ISO date-time")],
    end: Annotated[str, typer.Option("--to", help="UTC day or ISO date-time (exclusive)")],
    interval: Annotated[str, typer.Option(help="Vector interval to compare")] = "1s",
) -> None:
    """Rebuild a stored period offline and compare it with the vectors the live engine published;
    reports mismatches per feature (exit code 1 on any mismatch)."""
    import json

    from feature_service.cli_registry import stored_plans
    from feature_service.cli_storage import parse_time_us
    from feature_service.services.identity import validate_identity

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    report = validate_identity(
        settings.raw_dir,
        settings.vectors_dir,
        symbol=symbol.upper(),
        interval_s=parse_interval(interval),
        start_us=parse_time_us(start),
        end_us=parse_time_us(end),
        intervals_s=list(settings.intervals),
        plans=stored_plans(),  # each vector is checked against its own registry version
        # The embedded demo never warm-starts (services/runtime.py): its sessions start empty.
        warm_start=settings.warm_start and settings.rabbitmq_url is not None,
    )
    typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    if report.compared == 0:
        typer.echo("no live vectors archived for that period", err=True)
        raise typer.Exit(2)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve() -> None:
    """Run the HTTP service (RabbitMQ when FEATURE_SERVICE_RABBITMQ_URL is set, else embedded)."""
    _serve(demo=False)


@app.command()
def demo() -> None:
    """Run the service on embedded defaults: in-process bus fed by the bundled sample."""
    _serve(demo=True)


def _serve(*, demo: bool) -> None:
    import uvicorn

    from feature_service.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if demo and settings.rabbitmq_url:
        typer.echo("demo runs on embedded defaults: unset FEATURE_SERVICE_RABBITMQ_URL", err=True)
        raise typer.Exit(2)
    cli_db.upgrade_before_serving()
    key = settings.api_keys[0]
    base = f"http://{settings.host}:{settings.port}"
    symbol = settings.symbols[0]
    typer.echo(
        "\nFeature Service "
        + (
            "(embedded: in-process bus, replaying the bundled sample)"
            if not settings.rabbitmq_url
            else "(RabbitMQ)"
        )
        + f"\n  API key: {key}\n  Try:\n"
        + f"    curl -s -H 'X-API-Key: {key}' '{base}/features/latest?symbol={symbol}'\n"
        + f"    curl -s -H 'X-API-Key: {key}' "
        + f"'{base}/features/latest?symbol={symbol}&interval=1m'\n"
        + f"    curl -s '{base}/health'\n"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # uvicorn's own loggers propagate to ours: one format (JSON in production) for all lines.
        log_config=None,
    )


@app.command()
def openapi(
    output: Annotated[Path, typer.Option("--output", "-o")] = Path(
        "specs/005-feature-service/contracts/openapi.json"
    ),
) -> None:
    """Export the OpenAPI document (a test checks the committed export is current)."""
    from feature_service.api.openapi import export_openapi

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(export_openapi())
    typer.echo(f"wrote {output}")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
