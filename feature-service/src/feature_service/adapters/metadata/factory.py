"""Pick the metadata store from the configured URL: PostgreSQL in production, SQLite otherwise."""

from __future__ import annotations

from pathlib import Path

from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.postgres import PostgresMetadataStore
from feature_service.adapters.metadata.sqlite import SqliteMetadataStore


def sqlite_path_from_url(url: str) -> Path | str:
    """``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (SQLAlchemy's
    convention) or ``sqlite:///:memory:``."""
    rest = url.partition("://")[2]
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"SQLite URL must look like sqlite:///path, got {url!r}")
    path = rest[1:]
    return ":memory:" if path == ":memory:" else Path(path)


def create_metadata_store(
    database_url: str | None,
    sqlite_path: Path,
    migrations_dir: Path | None = None,
    timeout_s: float = 30.0,
) -> MetadataStore:
    """``postgresql://`` / ``postgres://`` -> PostgreSQL; ``sqlite:///path`` -> SQLite at that
    path; ``None`` -> SQLite at ``sqlite_path`` (the embedded default)."""
    if database_url is None:
        return SqliteMetadataStore(sqlite_path, migrations_dir=migrations_dir)
    scheme, sep, _ = database_url.partition("://")
    match scheme.lower() if sep else "":
        case "postgresql" | "postgres":
            return PostgresMetadataStore(
                database_url,
                migrations_dir=migrations_dir,
                command_timeout=timeout_s,
                connect_timeout=timeout_s,
            )
        case "sqlite":
            return SqliteMetadataStore(
                sqlite_path_from_url(database_url), migrations_dir=migrations_dir
            )
        case _:
            raise ValueError(
                "database URL must start with postgresql://, postgres:// or sqlite:///"
                f" (got scheme {scheme!r})"
            )
