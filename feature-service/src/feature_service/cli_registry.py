"""`feature-service registry ...`: Feature Registry versions for operators.

``list``, ``show``, ``validate`` and ``create`` work on the versions folder and the metadata
database directly (the service's settings). ``activate`` and ``rollback`` go through the running
service's API (hot switch, automatic rollback): ``--url``, else the service the settings
describe (``http://HOST:PORT``). Only when no service answers there, or with ``--db-only``, do
they change the database alone, and say so: the running service keeps computing the previous
version until ``registry reload`` (``POST /feature-registry/reload``) or its next start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml

app = typer.Typer(
    name="registry",
    help="Feature Registry versions: list, show, validate, create, activate, rollback.",
    add_completion=False,
    no_args_is_help=True,
)
T = TypeVar("T")

Url = Annotated[
    str | None,
    typer.Option("--url", help="The running service (default http://HOST:PORT of the settings)"),
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="FEATURE_SERVICE_API_KEY")]
DbOnly = Annotated[
    bool, typer.Option("--db-only", help="Change the database only, not the running service")
]
DB_ONLY_NOTE = (
    "changed in the database only: a running service keeps computing its current version until "
    "`feature-service registry reload` (POST /feature-registry/reload) or its next start"
)


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    from feature_service.adapters.metadata.factory import create_metadata_store
    from feature_service.config import load_settings
    from feature_service.logging import configure_logging
    from feature_service.services.registry import RegistryService

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # logs on stderr, JSON on stdout

    async def main() -> T:
        store = create_metadata_store(
            settings.database_url, settings.sqlite_path, settings.migrations_dir
        )
        await store.connect()
        try:
            await store.upgrade()
            service = RegistryService(
                store,
                settings.registry_dir,
                bundled_path=settings.registry_path,
                retention_days=settings.retention_days,
            )
            await service.start()  # as the service does: the bundled version when none is active
            return await work(service)
        finally:
            await store.close()

    return asyncio.run(main())


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
    raise typer.Exit(1) from exc


def stored_plans() -> dict[str, Any]:
    """Every stored version's plan (for checks that replay vectors of several versions)."""
    from feature_service.features.catalog import BUNDLED_PLAN
    from feature_service.registry.loader import validate_config

    async def work(service: Any) -> dict[str, Any]:
        plans: dict[str, Any] = {BUNDLED_PLAN.version: BUNDLED_PLAN}
        for r in await service.list():
            registry = validate_config(r.config)
            if registry.plan is not None:
                plans[r.version] = registry.plan
        return plans

    return _run(work)


@app.command("list")
def list_cmd() -> None:
    """Every version, newest first, with its state and whether its file was edited."""

    async def work(service: Any) -> list[dict[str, Any]]:
        return [
            {
                "version": r.version,
                "is_active": r.is_active,
                "features": len(r.config.get("features") or []),
                "created_at": r.created_at,
                "created_by": r.created_by,
                "file_modified": service.file_modified(r),
            }
            for r in await service.list()
        ]

    _echo(_run(work))


@app.command()
def show(version: Annotated[str, typer.Argument()]) -> None:
    """One version: metadata, features and audit trail."""
    from feature_service.services.registry import RegistryError

    async def work(service: Any) -> dict[str, Any]:
        r = await service.get(version)
        audit = await service.audit(version)
        return {
            "version": r.version,
            "is_active": r.is_active,
            "file_path": r.file_path,
            "file_modified": service.file_modified(r),
            "previous_version": r.previous_version,
            "features": [f.get("name") or f.get("family") for f in r.config["features"]],
            "audit": [(a.created_at, a.action, a.actor, a.reason) for a in audit],
        }

    try:
        _echo(_run(work))
    except RegistryError as exc:
        _fail(exc)


@app.command()
def validate(path: Annotated[Path, typer.Argument(help="A registry YAML file")]) -> None:
    """Validate a registry file against every rule (exit code 1 when invalid)."""
    from feature_service.config import load_settings
    from feature_service.registry.loader import load_registry

    registry = load_registry(path, retention_days=load_settings().retention_days)
    _echo(
        {
            "is_valid": registry.is_valid,
            "errors": list(registry.errors),
            "features": list(registry.feature_names),
        }
    )
    if not registry.is_valid:
        raise typer.Exit(1)


@app.command()
def create(
    path: Annotated[Path, typer.Argument(help="The new version's YAML file")],
    created_by: Annotated[str | None, typer.Option("--by")] = None,
) -> None:
    """Register a new version from a YAML file (copied into the versions folder)."""
    from feature_service.services.registry import RegistryError

    raw = path.read_bytes()
    config = yaml.safe_load(raw)
    version = str((config or {}).get("version") or "")

    async def work(service: Any) -> dict[str, Any]:
        rec = await service.create(version, config, created_by=created_by, raw=raw)
        return {"version": rec.version, "file_path": rec.file_path}

    try:
        _echo(_run(work))
    except RegistryError as exc:
        _fail(exc)


def _api(url: str | None, key: str | None, path: str, body: dict[str, Any] | None) -> bool:
    """POST to the running service; False when none answers (only without an explicit URL)."""
    import httpx

    from feature_service.config import load_settings

    explicit = url is not None
    if url is None or key is None:
        settings = load_settings()
        url = url or f"http://{settings.host}:{settings.port}"
        key = key or (settings.api_keys[0] if settings.api_keys else "")
    try:
        response = httpx.post(
            url.rstrip("/") + path, json=body, headers={"X-API-Key": key}, timeout=120
        )
    except httpx.ConnectError as exc:
        if explicit:
            _fail(exc)
        typer.echo(f"no service answers at {url}", err=True)
        return False
    _echo(response.json())
    if response.status_code >= 400:
        raise typer.Exit(1)
    return True


@app.command()
def activate(
    version: Annotated[str, typer.Argument()],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    by: Annotated[str | None, typer.Option("--by")] = None,
    acknowledge: Annotated[bool, typer.Option("--acknowledge-breaking-changes")] = False,
    url: Url = None,
    api_key: ApiKey = None,
    db_only: DbOnly = False,
) -> None:
    """Activate a version through the running service (hot switch, rollback on failure); in
    the database only with --db-only or when no service answers (it says so)."""
    body = {
        "activation_reason": reason,
        "created_by": by,
        "acknowledge_breaking_changes": acknowledge,
    }
    if not db_only and _api(url, api_key, f"/feature-registry/versions/{version}/activate", body):
        return
    from feature_service.services.registry import RegistryError

    async def work(service: Any) -> dict[str, Any]:
        done = await service.activate(
            version, by=by, reason=reason, acknowledge_breaking_changes=acknowledge
        )
        return {
            "version": done.version,
            "previous_version": done.previous_version,
            "compatibility_warnings": done.compatibility_warnings,
            "breaking_changes": done.breaking_changes,
            "note": DB_ONLY_NOTE,
        }

    try:
        _echo(_run(work))
    except RegistryError as exc:
        _fail(exc)


@app.command()
def rollback(
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    url: Url = None,
    api_key: ApiKey = None,
    db_only: DbOnly = False,
) -> None:
    """Go back to the previously active version (through the running service, as activate)."""
    if not db_only and _api(
        url, api_key, "/feature-registry/rollback", {"rollback_reason": reason}
    ):
        return
    from feature_service.services.registry import RegistryError

    async def work(service: Any) -> dict[str, Any]:
        return {**await service.rollback(reason, by="cli"), "note": DB_ONLY_NOTE}

    try:
        _echo(_run(work))
    except RegistryError as exc:
        _fail(exc)


@app.command()
def reload(url: Url = None, api_key: ApiKey = None) -> None:
    """Make the running service apply the database's active version (one activated with
    --db-only) and re-read its file."""
    if not _api(url, api_key, "/feature-registry/reload", None):
        raise typer.Exit(1)
