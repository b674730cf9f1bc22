"""`feature-service dataset ...`: build datasets from the command line, with a progress bar.

The same validation, builder and metadata records as POST /dataset/build, run in this process
(no server needed): useful for large one-off builds and for operators.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from feature_service.config import load_settings

app = typer.Typer(
    name="dataset",
    help="Build and inspect training datasets.",
    add_completion=False,
    no_args_is_help=True,
)


def _example(symbol: str, minutes: int, horizon: int) -> dict[str, Any]:
    from feature_service.services.dataset_builder import available_period

    settings = load_settings()
    have = available_period(settings.raw_dir, symbol)
    if have is None:
        raise typer.BadParameter(f"no raw data stored for {symbol} under {settings.raw_dir}")
    end = datetime.fromtimestamp(have.end_us // 1_000_000, UTC).replace(second=0)
    end -= timedelta(seconds=horizon + 60)
    start = max(
        datetime.fromtimestamp(have.start_us // 1_000_000 + 59, UTC).replace(second=0),
        end - timedelta(minutes=minutes),
    )
    span = end - start
    if span < timedelta(minutes=5):
        raise typer.BadParameter(
            f"only {span} of usable data for {symbol}; let the service run a few minutes more"
        )
    cut1 = start + span * 3 / 5
    cut2 = start + span * 4 / 5

    def iso(d: datetime) -> str:
        return d.replace(microsecond=0).isoformat()

    return {
        "symbol": symbol,
        "split_strategy": "time_based",
        "train_period_start": iso(start),
        "train_period_end": iso(cut1),
        "validation_period_start": iso(cut1),
        "validation_period_end": iso(cut2),
        "test_period_start": iso(cut2),
        "test_period_end": iso(end),
        "target_config": {"type": "regression", "horizon": horizon},
        "feature_registry_version": "1.1.0",
        # Short-lookback features keep the embargo (the longest lookback) at one minute.
        "features": [
            "mid_price",
            "spread_rel",
            "returns_1s",
            "vwap_3s",
            "volume_15s",
            "signed_volume_1m",
            "trade_count_3s",
            "net_aggressor_pressure",
            "depth_imbalance_top5",
            "slope_bid",
            "slope_ask",
        ],
        "output_format": "parquet",
    }


@app.command("example-request")
def example_request(
    symbol: Annotated[str, typer.Option()] = "BTCUSDT",
    minutes: Annotated[int, typer.Option(help="Most recent minutes of stored data to use")] = 30,
    horizon: Annotated[int, typer.Option(help="Target horizon in seconds")] = 10,
) -> None:
    """Print a time-based build request that fits the raw data stored so far."""
    typer.echo(json.dumps(_example(symbol.upper(), minutes, horizon), indent=2))


@app.command()
def build(
    request: Annotated[Path, typer.Option("--request", "-r", help="DatasetBuildRequest JSON")],
) -> None:
    """Validate and build a dataset here, showing progress; records it like the API does."""
    from feature_service.datasets import DatasetBuildRequest

    body = json.loads(request.read_text())
    req = DatasetBuildRequest.model_validate(body)
    raise typer.Exit(asyncio.run(_build(req)))


async def _build(req: Any) -> int:
    from feature_service.adapters.metadata.factory import create_metadata_store
    from feature_service.adapters.metadata.records import DatasetRecord
    from feature_service.datasets import validate_request, with_concrete_version
    from feature_service.registry.loader import load_registry
    from feature_service.services.dataset_builder import (
        BuildFailed,
        build_dataset,
        check_data_available,
    )

    settings = load_settings()
    registry = load_registry(settings.registry_path)
    req = with_concrete_version(req, registry.version)
    problems = validate_request(req, registry)
    missing = None if problems else check_data_available(settings.raw_dir, req)
    if problems or missing:
        for p in [*problems, *([missing] if missing else [])]:
            typer.echo(f"error: {p}", err=True)
        return 2
    store = create_metadata_store(
        settings.database_url, settings.sqlite_path, settings.migrations_dir
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.connect()
    await store.upgrade()
    try:
        rec = await store.create_dataset(
            DatasetRecord(
                symbol=req.symbol,
                status="building",
                split_strategy=req.split_strategy,
                target_config=req.target_config.model_dump(mode="json"),
                feature_registry_version=req.feature_registry_version,
                output_format=req.output_format,
                feature_interval_s=req.interval_s,
                request=req.model_dump(mode="json"),
                **{
                    f"{n}_period_{e}": getattr(req, f"{n}_period_{e}")
                    for n in ("train", "validation", "test")
                    for e in ("start", "end")
                },
            )
        )
        out_dir = settings.datasets_dir / str(rec.id)
        with typer.progressbar(length=1000, label=f"dataset {rec.id}") as bar:
            done = 0

            def progress(p: dict[str, Any]) -> None:
                nonlocal done
                step = int(p["fraction"] * 1000) - done
                if step > 0:
                    bar.update(step)
                    done += step

            try:
                result = await asyncio.to_thread(
                    build_dataset, req, registry, settings.raw_dir, out_dir, progress=progress
                )
            except BuildFailed as exc:
                await store.update_dataset(
                    rec.id, status="failed", error_message=str(exc), completed_at=datetime.now(UTC)
                )
                typer.echo(f"\nfailed: {exc}", err=True)
                return 1
        await store.update_dataset(
            rec.id,
            status="ready",
            completed_at=datetime.now(UTC),
            storage_path=str(out_dir),
            train_records=result.counts["train"],
            validation_records=result.counts["validation"],
            test_records=result.counts["test"],
            folds=result.folds,
            warnings=result.warnings,
            manifest=result.manifest,
        )
        typer.echo(
            f"ready: {out_dir} ({result.counts}, {result.rows} rows, {result.elapsed_s:.1f}s)"
        )
        for warning in result.warnings:
            typer.echo(f"warning: {warning}")
        return 0
    finally:
        await store.close()


@app.command("list")
def list_datasets(
    status: Annotated[str | None, typer.Option(help="building, ready or failed")] = None,
) -> None:
    """Datasets recorded in the metadata store, newest first."""
    asyncio.run(_list(status))


async def _list(status: str | None) -> None:
    from feature_service.adapters.metadata.factory import create_metadata_store

    settings = load_settings()
    store = create_metadata_store(
        settings.database_url, settings.sqlite_path, settings.migrations_dir
    )
    await store.connect()
    await store.upgrade()
    try:
        for rec in await store.list_datasets(status=status):
            typer.echo(
                f"{rec.id}  {rec.status:8} {rec.symbol:10} {rec.split_strategy:12} "
                f"train={rec.train_records} validation={rec.validation_records} "
                f"test={rec.test_records}  {rec.created_at:%Y-%m-%d %H:%M:%S}"
            )
    finally:
        await store.close()
