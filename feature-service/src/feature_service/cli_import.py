"""`feature-service import ...`: Bybit's public history archives (downloaded files) into the raw
store, labelled ``source=import``. Importing a file twice stores nothing the second time."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path
from typing import Annotated

import typer

from feature_service.config import load_settings

app = typer.Typer(
    name="import",
    help="Import Bybit public archives (trade CSVs, order book .data files).",
    add_completion=False,
    no_args_is_help=True,
)
Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]


def _count_lines(path: Path) -> int:
    """Lines of a (gzip / zip) text file: the progress bar's length."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return sum(1 for _ in fh)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return sum(1 for name in zf.namelist() for _ in zf.open(name))
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


@app.command("bybit-trades")
def bybit_trades(
    files: Files,
    symbol: Annotated[
        str | None, typer.Option(help="override the symbol (spot files name it in the file name)")
    ] = None,
) -> None:
    """Daily trade archives: derivatives {SYMBOL}{DATE}.csv.gz, spot {SYMBOL}_{DATE}.csv.gz."""
    from feature_service.services.archive_import import import_trade_files
    from feature_service.services.quality_precompute import describe, summarising

    settings = load_settings()
    total = sum(max(0, _count_lines(f) - 1) for f in files)
    with summarising(settings) as sessions:
        with typer.progressbar(length=max(1, total), label="import trades") as bar:
            summary = import_trade_files(
                settings.raw_dir, list(files), symbol=symbol.upper() if symbol else None,
                progress=bar.update,
            )  # fmt: skip
        typer.echo(summary.line("trades"))
    typer.echo(describe(sessions))


@app.command("bybit-orderbook")
def bybit_orderbook(files: Files) -> None:
    """Order book archives `{DATE}_{SYMBOL}_ob{200|500}.data[.zip]` (one WS frame per line)."""
    from feature_service.services.archive_import import import_orderbook_files
    from feature_service.services.quality_precompute import describe, summarising

    settings = load_settings()
    total = sum(_count_lines(f) for f in files)
    with summarising(settings) as sessions:
        with typer.progressbar(length=max(1, total), label="import order book") as bar:
            summary = import_orderbook_files(settings.raw_dir, list(files), progress=bar.update)
        typer.echo(summary.line("frames"))
    typer.echo(describe(sessions))
