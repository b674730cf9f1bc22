"""SQL migrations: discovery, checksums, planning, adoption, and the apply / revert loop.

Files live in ``ws-gateway/migrations`` (ws-gateway owns the shared database schema, and its
operator applies that folder with ``for f in migrations/*.sql; do psql -v ON_ERROR_STOP=1 -f
$f; done``)::

    NNN_name.sql               PostgreSQL up: idempotent, so psql may apply it any number of times
    down/NNN_name.sql          PostgreSQL down
    sqlite/NNN_name.sql        SQLite up
    sqlite/down/NNN_name.sql   SQLite down

The subfolders keep down scripts and SQLite twins out of the operator's ``*.sql`` loop. Each
migration runs in its own transaction together with its row in
``feature_service_schema_migrations`` (version, name, checksum, applied_at), so a failed
migration leaves neither its changes nor its record behind.

Adoption: a migration not recorded yet is run even when its tables exist (made by ws-gateway's
own file of the same number, or by ours applied with psql). Being idempotent it adds only what
is missing; then the tables are checked against what the service needs (``schema_check``), and
the migration is recorded only when they fit. A table that cannot fit (wrong column types, an
unknown NOT NULL column) is refused before anything runs, with a message naming the problem.

The checksum is the SHA-256 of the up file (line endings normalised). An applied migration whose
file has changed since is refused: the database no longer matches the files, and guessing which
is right is not this module's call. The one deliberate exception is a file that names the
records it replaces: a line ``-- supersedes: NNN_name <sha256>`` says "a database that recorded
NNN_name with that checksum has this migration applied". That is how the renumbering for the
shared schema is carried: 018-020 became idempotent (new checksums, same numbers) and our 021
became 022 (ws-gateway has its own 021). ``upgrade`` and ``downgrade`` rewrite such records to
the current version, name and checksum (keeping ``applied_at``); ``status`` shows them as
applied. Only the exact old checksums are accepted, so a locally edited file is still refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, Protocol

from feature_service.adapters.metadata import schema_check
from feature_service.adapters.metadata.base import MetadataStoreError
from feature_service.adapters.metadata.schema_check import Column

Dialect = Literal["postgresql", "sqlite"]
MigrationStateName = Literal["applied", "pending", "changed", "missing"]

MIGRATIONS_TABLE: Final = "feature_service_schema_migrations"

_FILE_RE: Final = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")
_OLD_LAYOUT_RE: Final = re.compile(r"^\d+_[A-Za-z0-9_]+?\.(sqlite\.)?(up|down)\.sql$")
_SUPERSEDES_RE: Final = re.compile(
    r"^-- supersedes: (\d+)_([A-Za-z0-9_]+) ([0-9a-f]{64})\s*$", re.MULTILINE
)


class MigrationError(MetadataStoreError):
    """The migrations cannot be run as asked (bad files, unknown versions, bad arguments)."""


class SchemaIncompatible(MigrationError):
    """An existing table cannot be adopted: the service's queries would not work on it."""


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
    # (version, name, checksum) records that mean this migration is applied (see module doc).
    supersedes: frozenset[tuple[int, str, str]] = frozenset()

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


Check = Callable[[], Awaitable[None]]


class MigrationSession(Protocol):
    """A backend's side of the loop, bound to one connection that holds the migration lock."""

    async def ensure_table(self) -> None: ...

    async def applied(self) -> list[AppliedMigration]: ...

    async def columns(self, table: str) -> list[Column] | None:
        """The table's columns, None when there is no such table (in the current schema)."""
        ...

    async def apply(self, migration: Migration, check: Check | None = None) -> bool:
        """Run the up SQL, then ``check`` (which may raise to undo it all), and record the
        migration, in one transaction. False when it turned out to be applied already (by a
        concurrent migrator)."""
        ...

    async def revert(self, migration: Migration) -> bool:
        """Run the down SQL and delete the record, in one transaction. False when it turned
        out to be reverted already."""
        ...

    async def rerecord(self, old_version: int, record: AppliedMigration) -> None:
        """Replace the record of ``old_version`` by ``record``, in one transaction."""
        ...


def default_migrations_dir() -> Path | None:
    """``<repo>/ws-gateway/migrations`` when running from a checkout (editable install)."""
    candidate = Path(__file__).resolve().parents[5] / "ws-gateway" / "migrations"
    return candidate if candidate.is_dir() else None


def checksum_of(sql: str) -> str:
    normalised = sql.replace("\r\n", "\n").encode("utf-8")
    return hashlib.sha256(normalised).hexdigest()


def _scan(directory: Path, what: str) -> dict[int, tuple[str, Path]]:
    found: dict[int, tuple[str, Path]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        match = _FILE_RE.match(path.name)
        if match is None or not path.is_file():
            continue
        version, name = int(match.group(1)), match.group(2)
        if version in found:
            raise MigrationError(
                f"two {what} migrations with version {version}: "
                f"{found[version][1].name} and {path.name}"
            )
        found[version] = (name, path)
    return found


def discover_migrations(directory: Path, dialect: Dialect) -> list[Migration]:
    """The dialect's migrations under ``directory`` (layout in the module doc), by version.
    Other files are ignored."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    old = sorted(p.name for p in directory.iterdir() if _OLD_LAYOUT_RE.match(p.name))
    if old:
        raise MigrationError(
            f"{directory} holds migrations in the old layout ({old[0]}, ...): up files are now"
            " NNN_name.sql, down files down/NNN_name.sql, SQLite twins sqlite/ and sqlite/down/"
        )
    up_dir = directory / "sqlite" if dialect == "sqlite" else directory
    ups = _scan(up_dir, f"{dialect} up")
    downs = _scan(up_dir / "down", f"{dialect} down")
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
        supersedes = frozenset(
            (int(v), n, c) for v, n, c in _SUPERSEDES_RE.findall(up_sql.replace("\r\n", "\n"))
        )
        migrations.append(
            Migration(
                version=version,
                name=name,
                up_sql=up_sql,
                down_sql=down[1].read_text(encoding="utf-8") if down else None,
                checksum=checksum_of(up_sql),
                up_path=up_path,
                supersedes=supersedes,
            )
        )
    return migrations


def _current_record(
    migrations: Sequence[Migration], record: AppliedMigration
) -> AppliedMigration | None:
    """The record ``record`` stands for today, when a file supersedes it; else None."""
    key = (record.version, record.name, record.checksum)
    for m in migrations:
        if key in m.supersedes and (m.version, m.name, m.checksum) != key:
            return AppliedMigration(m.version, m.name, m.checksum, record.applied_at)
    return None


def normalise(
    migrations: Sequence[Migration], applied: Sequence[AppliedMigration]
) -> list[AppliedMigration]:
    """``applied`` with superseded records replaced by the ones they stand for."""
    result = [_current_record(migrations, a) or a for a in applied]
    versions = [a.version for a in result]
    if len(versions) != len(set(versions)):
        raise MigrationError(
            f"the database records {[f'{a.version:03d}_{a.name}' for a in applied]}, which"
            " map to the same migration twice: fix feature_service_schema_migrations by hand"
        )
    return sorted(result, key=lambda a: a.version)


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
    applied = normalise(migrations, applied)
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
    applied = normalise(migrations, applied)
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
    by_version = {a.version: a for a in normalise(migrations, applied)}
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


async def _bring_records_up_to_date(
    session: MigrationSession, migrations: Sequence[Migration]
) -> list[AppliedMigration]:
    applied = await session.applied()
    normalise(migrations, applied)  # refuses an ambiguous mapping before anything is rewritten
    for record in applied:
        current = _current_record(migrations, record)
        if current is not None:
            await session.rerecord(record.version, current)
    return await session.applied()


async def _refuse_unfit_tables(session: MigrationSession, migration: Migration) -> None:
    """Before running ``migration``: what its idempotent SQL could not repair."""
    for table, expected in schema_check.EXPECTED.get(migration.version, {}).items():
        actual = await session.columns(table)
        if actual is not None:
            issues = schema_check.type_problems(expected, actual)
            if issues:
                raise SchemaIncompatible(_refusal(migration, table, issues))


def _fit_check(session: MigrationSession, migration: Migration) -> Check:
    async def check() -> None:
        for table, expected in schema_check.EXPECTED.get(migration.version, {}).items():
            actual = await session.columns(table)
            issues = (
                ["the table is missing"]
                if actual is None
                else schema_check.problems(expected, actual)
            )
            if issues:
                raise SchemaIncompatible(_refusal(migration, table, issues))

    return check


def _refusal(migration: Migration, table: str, issues: Sequence[str]) -> str:
    return (
        f"the existing table {table!r} does not fit migration {migration.label}:"
        f" {'; '.join(issues)}. Nothing was changed. The table was made by another tool or"
        " version: fix it, or point FEATURE_SERVICE_DATABASE_URL at another database or schema"
    )


async def run_upgrade(
    session: MigrationSession, migrations: Sequence[Migration], to: int | None = None
) -> list[Migration]:
    await session.ensure_table()
    done = []
    for migration in plan_upgrade(
        migrations, await _bring_records_up_to_date(session, migrations), to
    ):
        await _refuse_unfit_tables(session, migration)
        if await session.apply(migration, _fit_check(session, migration)):
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
    applied = await _bring_records_up_to_date(session, migrations)
    done = []
    for migration in plan_downgrade(migrations, applied, to=to, steps=steps):
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
