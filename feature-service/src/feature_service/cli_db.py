"""`feature-service db ...`: apply, roll back and inspect the metadata schema migrations.

Mounted on the main CLI by ``app.add_typer(cli_db.app, name="db")``. The database is the
service's own (FEATURE_SERVICE_DATABASE_URL, else the SQLite file under
FEATURE_SERVICE_DATA_DIR) unless ``--database-url`` / ``--sqlite-path`` say otherwise.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from feature_service.adapters.metadata.base import MetadataStore, MetadataStoreError
from feature_service.adapters.metadata.migrations import MigrationState

app = typer.Typer(
    name="db",
    help="Metadata database: schema migrations (upgrade, downgrade, status).",
    add_completion=False,
    no_args_is_help=True,
)
db_app = app

T = TypeVar("T")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="postgresql://... or sqlite:///path (default: FEATURE_SERVICE_DATABASE_URL)",
    ),
]
SqlitePath = Annotated[
    Path | None,
    typer.Option("--sqlite-path", help="SQLite file when no URL is set (default: the service's)"),
]
MigrationsDir = Annotated[
    Path | None,
    typer.Option(
        "--migrations-dir",
        help="Folder of NNN_name.sql, down/, sqlite/, sqlite/down/ (default ws-gateway/migrations)",
    ),
]


def _store(
    database_url: str | None, sqlite_path: Path | None, migrations_dir: Path | None
) -> MetadataStore:
    from feature_service.adapters.metadata.factory import create_metadata_store
    from feature_service.config import load_settings

    settings = load_settings()
    url = database_url if database_url is not None else settings.database_url
    path = sqlite_path if sqlite_path is not None else settings.sqlite_path
    # FEATURE_SERVICE_MIGRATIONS_DIR, once the settings carry it.
    configured = getattr(settings, "migrations_dir", None)
    try:
        return create_metadata_store(url, path, migrations_dir or configured)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--database-url") from exc


def _run(store: MetadataStore, action: Callable[[MetadataStore], Awaitable[T]]) -> T:
    async def main() -> T:
        await store.connect()
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (MetadataStoreError, ValueError, OSError, asyncpg.PostgresError, sqlite3.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def upgrade_before_serving() -> None:
    """Bring the service's schema up to date before the server starts, so that a database that
    cannot be adopted ends ``serve`` with the reason (exit 1), not a traceback from the app's
    start-up. The runtime's own upgrade then finds nothing to do."""
    _run(_store(None, None, None), lambda s: s.upgrade())


def _names(states: list[MigrationState]) -> dict[int, str]:
    return {s.version: s.name for s in states}


def _current(states: list[MigrationState]) -> str:
    applied = [s.version for s in states if s.state != "pending"]
    return f"{max(applied):03d}" if applied else "none"


@app.command()
def upgrade(
    to: Annotated[int | None, typer.Option("--to", help="Stop at this version")] = None,
    database_url: DatabaseUrl = None,
    sqlite_path: SqlitePath = None,
    migrations_dir: MigrationsDir = None,
) -> None:
    """Apply pending migrations, each in its own transaction (all, or up to --to)."""
    store = _store(database_url, sqlite_path, migrations_dir)

    async def action(s: MetadataStore) -> tuple[list[int], list[MigrationState]]:
        done = await s.upgrade(to)
        return done, await s.migration_status()

    done, states = _run(store, action)
    names = _names(states)
    for version in done:
        typer.echo(f"applied   {version:03d}_{names.get(version, '?')}")
    if not done:
        typer.echo("nothing to apply")
    typer.echo(f"{store.kind}: at version {_current(states)}")


@app.command()
def downgrade(
    to: Annotated[
        int | None, typer.Option("--to", help="Roll back every version above this (0 = all)")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Roll back this many (default 1)")
    ] = None,
    database_url: DatabaseUrl = None,
    sqlite_path: SqlitePath = None,
    migrations_dir: MigrationsDir = None,
) -> None:
    """Roll back applied migrations, newest first, with their down files."""
    if to is not None and steps is not None:
        raise typer.BadParameter("give either --to or --steps, not both")
    store = _store(database_url, sqlite_path, migrations_dir)

    async def action(s: MetadataStore) -> tuple[list[int], dict[int, str], list[MigrationState]]:
        names = _names(await s.migration_status())
        done = await s.downgrade(to=to, steps=steps)
        return done, names, await s.migration_status()

    done, names, states = _run(store, action)
    for version in done:
        typer.echo(f"reverted  {version:03d}_{names.get(version, '?')}")
    if not done:
        typer.echo("nothing to roll back")
    typer.echo(f"{store.kind}: at version {_current(states)}")


@app.command()
def status(
    database_url: DatabaseUrl = None,
    sqlite_path: SqlitePath = None,
    migrations_dir: MigrationsDir = None,
) -> None:
    """List migrations: applied (when), pending, changed (file edited) or missing (no file)."""
    store = _store(database_url, sqlite_path, migrations_dir)

    async def action(s: MetadataStore) -> list[MigrationState]:
        return await s.migration_status()

    states = _run(store, action)
    for state in states:
        when = state.applied_at.strftime("%Y-%m-%d %H:%M:%S UTC") if state.applied_at else ""
        typer.echo(f"{state.version:03d}  {state.state:8}  {state.name:45}  {when}".rstrip())
    typer.echo(f"{store.kind}: at version {_current(states)}")
