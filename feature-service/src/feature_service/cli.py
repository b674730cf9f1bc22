"""`feature-service`: the one entry point for every command."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from feature_service.config import load_settings
from feature_service.logging import configure_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _parse_interval(text: str) -> int:
    text = text.strip().lower()
    if text.endswith("m"):
        return int(text[:-1]) * 60
    return int(text.removesuffix("s"))


@app.command()
def compute(
    input: Annotated[Path, typer.Option("--input", "-i", help="Recording (.jsonl or .jsonl.gz)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write")],
    interval: Annotated[str, typer.Option(help="Interval of the rows: 1s, 3s, 15s or 1m")] = "1s",
    symbol: Annotated[list[str] | None, typer.Option(help="Only these symbols")] = None,
) -> None:
    """Replay a recording through the feature engine; one row per symbol per interval close."""
    from feature_service.engine.core import FeatureEngine
    from feature_service.engine.offline import compute_to_parquet
    from feature_service.market.recording import iter_recording
    from feature_service.registry.loader import load_registry

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    registry = load_registry(settings.registry_path)
    interval_s = _parse_interval(interval)
    engine = FeatureEngine(
        intervals_s=sorted({interval_s, *settings.intervals}),
        registry_version=registry.version,
        stale_after_s=settings.stale_after_s,
        symbols=[s.upper() for s in symbol] if symbol else None,
    )
    started = time.perf_counter()
    summary = compute_to_parquet(
        iter_recording(input), output, engine, intervals_s=[interval_s]
    )
    elapsed = time.perf_counter() - started
    typer.echo(
        f"{summary.events} events -> {summary.rows} rows ({interval}) in {elapsed:.1f}s "
        f"-> {output}"
    )


@app.command("generate-sample")
def generate_sample(
    output: Annotated[Path, typer.Option("--output", "-o")],
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Write a seeded synthetic BTCUSDT recording (the bundled sample is seed 42)."""
    from feature_service.sample.generator import generate

    summary = generate(output, seed=seed)
    typer.echo(f"wrote {output}: {summary}")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
