"""SQL migrations: discovery, checksums, planning, and the apply / revert loop.

Files live in ``ws-gateway/migrations`` (ws-gateway owns the shared database schema):
``NNN_name.up.sql`` / ``NNN_name.down.sql`` for PostgreSQL and the SQLite twins
``NNN_name.sqlite.up.sql`` / ``NNN_name.sqlite.down.sql``. Each migration runs in its own
transaction together with its row in ``feature_service_schema_migrations`` (version, name,
checksum, applied_at), so a failed migration leaves neither its changes nor its record behind.

The checksum is the SHA-256 of the up file (line endings normalised). An applied migration whose
file has changed since is refused: the database no longer matches the files, and guessing which
is right is not this module's call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, Protocol

from feature_service.adapters.metadata.base import MetadataStoreError

Dialect = Literal["postgresql", "sqlite"]
MigrationStateName = Literal["applied", "pending", "changed", "missing"]

MIGRATIONS_TABLE: Final = "feature_service_schema_migrations"

_FILE_RE: Final = re.compile(r"^(\d+)_([A-Za-z0-9_]+?)\.(sqlite\.)?(up|down)\.sql$")


class MigrationError(MetadataStoreError):
    """The migrations cannot be run as asked (bad files, unknown versions, bad arguments)."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file differs from what was applied."""

    def __init__(self, version: int, name: str, recorded: str, actual: str) -> None:
        super().__init__(
            f"migration {version:03d}_{name} was applied with checksum {recorded[:12]}… but its"
            f" file now has {actual[:12]}…: restore the file (applied migrations never change;"
            " add a new migration instead)"
        )
        self.version = version
        self.recorded = recorded
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str | None
    checksum: str
    up_path: Path

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One line of ``db status``: ``changed`` = applied but the file differs; ``missing`` =
    applied but no file has that version any more."""

    version: int
    name: str
    state: MigrationStateName
    applied_at: datetime | None


class MigrationSession(Protocol):
    """A backend's side of the loop, bound to one connection that holds the migration lock."""

    async def ensure_table(self) -> None: ...

    async def applied(self) -> list[AppliedMigration]: ...

    async def apply(self, migration: Migration) -> bool:
        """Run the up SQL and record the migration, in one transaction. False when it turned
        out to be applied already (by a concurrent migrator)."""
        ...

    async def revert(self, migration: Migration) -> bool:
        """Run the down SQL and delete the record, in one transaction. False when it turned
        out to be reverted already."""
        ...


def default_migrations_dir() -> Path | None:
    """``<repo>/ws-gateway/migrations`` when running from a checkout (editable install)."""
    candidate = Path(__file__).resolve().parents[5] / "ws-gateway" / "migrations"
    return candidate if candidate.is_dir() else None


def checksum_of(sql: str) -> str:
    normalised = sql.replace("\r\n", "\n").encode("utf-8")
    return hashlib.sha256(normalised).hexdigest()


def discover_migrations(directory: Path, dialect: Dialect) -> list[Migration]:
    """The dialect's migrations in ``directory``, by version. Other files are ignored."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    want_sqlite = dialect == "sqlite"
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, tuple[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE_RE.match(path.name)
        if match is None or (match.group(3) is not None) != want_sqlite or not path.is_file():
            continue
        version, name, direction = int(match.group(1)), match.group(2), match.group(4)
        target = ups if direction == "up" else downs
        if version in target:
            raise MigrationError(
                f"two {dialect} {direction} migrations with version {version}: "
                f"{target[version][1].name} and {path.name}"
            )
        target[version] = (name, path)
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise MigrationError(f"down migration(s) without an up file: {orphans}")
    migrations = []
    for version in sorted(ups):
        name, up_path = ups[version]
        down = downs.get(version)
        if down is not None and down[0] != name:
            raise MigrationError(f"version {version}: up is {name!r} but down is {down[0]!r}")
        up_sql = up_path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=version,
                name=name,
                up_sql=up_sql,
                down_sql=down[1].read_text(encoding="utf-8") if down else None,
                checksum=checksum_of(up_sql),
                up_path=up_path,
            )
        )
    return migrations


def _verify(migrations: Sequence[Migration], applied: Iterable[AppliedMigration]) -> None:
    known = {m.version: m for m in migrations}
    for record in applied:
        migration = known.get(record.version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.version:03d}_{record.name} applied but no"
                " file has that version: these files are older than the database"
            )
        if migration.checksum != record.checksum:
            raise ChecksumMismatch(record.version, record.name, record.checksum, migration.checksum)


def plan_upgrade(
    migrations: Sequence[Migration], applied: Sequence[AppliedMigration], to: int | None = None
) -> list[Migration]:
    """Pending migrations up to ``to`` (all when None), in version order."""
    if to is not None and to < 0:
        raise MigrationError(f"--to must be >= 0, got {to}")
    _verify(migrations, applied)
    done = {a.version for a in applied}
    return [m for m in migrations if m.version not in done and (to is None or m.version <= to)]


def plan_downgrade(
    migrations: Sequence[Migration],
    applied: Sequence[AppliedMigration],
    *,
    to: int | None = None,
    steps: int | None = None,
) -> list[Migration]:
    """Applied migrations to revert, newest first: those above ``to``, or the last ``steps``
    (one when neither is given)."""
    if to is not None and steps is not None:
        raise MigrationError("give either --to or --steps, not both")
    if to is not None and to < 0:
        raise MigrationError(f"--to must be >= 0, got {to}")
    if steps is not None and steps < 0:
        raise MigrationError(f"--steps must be >= 0, got {steps}")
    _verify(migrations, applied)
    known = {m.version: m for m in migrations}
    newest_first = sorted((a.version for a in applied), reverse=True)
    if to is not None:
        chosen = [v for v in newest_first if v > to]
    else:
        chosen = newest_first[: 1 if steps is None else steps]
    plan = [known[v] for v in chosen]
    no_down = [m.label for m in plan if m.down_sql is None]
    if no_down:
        raise MigrationError(f"no down file for {', '.join(no_down)}: cannot roll back")
    return plan


def describe(
    migrations: Sequence[Migration], applied: Sequence[AppliedMigration]
) -> list[MigrationState]:
    by_version = {a.version: a for a in applied}
    states = []
    for m in migrations:
        record = by_version.pop(m.version, None)
        if record is None:
            states.append(MigrationState(m.version, m.name, "pending", None))
        else:
            state: MigrationStateName = "applied" if record.checksum == m.checksum else "changed"
            states.append(MigrationState(m.version, m.name, state, record.applied_at))
    for record in by_version.values():
        states.append(MigrationState(record.version, record.name, "missing", record.applied_at))
    return sorted(states, key=lambda s: s.version)


async def run_upgrade(
    session: MigrationSession, migrations: Sequence[Migration], to: int | None = None
) -> list[Migration]:
    await session.ensure_table()
    done = []
    for migration in plan_upgrade(migrations, await session.applied(), to):
        if await session.apply(migration):
            done.append(migration)
    return done


async def run_downgrade(
    session: MigrationSession,
    migrations: Sequence[Migration],
    *,
    to: int | None = None,
    steps: int | None = None,
) -> list[Migration]:
    await session.ensure_table()
    done = []
    for migration in plan_downgrade(migrations, await session.applied(), to=to, steps=steps):
        if await session.revert(migration):
            done.append(migration)
    return done


async def run_status(
    session: MigrationSession, migrations: Sequence[Migration]
) -> list[MigrationState]:
    await session.ensure_table()
    return describe(migrations, await session.applied())


def resolve_migrations(directory: Path | None, dialect: Dialect) -> list[Migration]:
    """Load from ``directory``, else from the checkout's ``ws-gateway/migrations``."""
    chosen = directory if directory is not None else default_migrations_dir()
    if chosen is None:
        raise MigrationError(
            "no migrations directory: set FEATURE_SERVICE_MIGRATIONS_DIR to ws-gateway/migrations"
        )
    return discover_migrations(chosen, dialect)
