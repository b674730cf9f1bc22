"""The ``MetadataStore`` port: datasets, Feature Registry versions and data quality reports.

Two adapters implement it with the same behaviour (one contract test suite runs against both):
PostgreSQL (asyncpg, pooled) in production and SQLite (aiosqlite) as the embedded default.
Constraint violations of either backend surface as ``ConstraintViolation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from uuid import UUID

if TYPE_CHECKING:
    from feature_service.adapters.metadata.migrations import MigrationState
    from feature_service.adapters.metadata.records import (
        DataQualityReportRecord,
        DatasetRecord,
        QualityMetricRow,
        RegistryAuditRecord,
        RegistryVersionRecord,
    )

StoreKind = Literal["sqlite", "postgresql"]


class MetadataStoreError(Exception):
    """Base of every error raised by a metadata store."""


class StoreNotConnected(MetadataStoreError):
    def __init__(self) -> None:
        super().__init__("metadata store is not connected: call connect() first")


class StoreUnavailable(MetadataStoreError):
    """The store did not answer in time or the connection failed: a transient condition the
    API reports as 503 with Retry-After (the pool reconnects by itself)."""


class ConstraintViolation(MetadataStoreError):
    """A row broke a CHECK, UNIQUE, NOT NULL or type constraint; ``constraint`` names it when
    the backend says which (e.g. ``datasets_status_check``)."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


@runtime_checkable
class MetadataStore(Protocol):
    @property
    def kind(self) -> StoreKind: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the backend answers a trivial query; never raises."""
        ...

    # -- schema -------------------------------------------------------------------------------
    async def upgrade(self, to: int | None = None) -> list[int]:
        """Apply pending migrations (up to ``to``); returns the versions applied."""
        ...

    async def downgrade(self, *, to: int | None = None, steps: int | None = None) -> list[int]:
        """Roll back to ``to`` or by ``steps`` (default one); returns the versions reverted."""
        ...

    async def migration_status(self) -> list[MigrationState]: ...

    # -- datasets -----------------------------------------------------------------------------
    async def create_dataset(self, record: DatasetRecord) -> DatasetRecord: ...

    async def update_dataset(self, dataset_id: UUID, **fields: Any) -> DatasetRecord:
        """Change the given columns. ``TypeError`` for an unknown field name, ``KeyError`` when
        no dataset has that id."""
        ...

    async def get_dataset(self, dataset_id: UUID) -> DatasetRecord | None: ...

    async def list_datasets(
        self, status: str | None = None, symbol: str | None = None, limit: int = 1000
    ) -> list[DatasetRecord]:
        """Newest first (created_at DESC, then id DESC)."""
        ...

    async def delete_dataset(self, dataset_id: UUID) -> bool: ...

    async def count_datasets_by_registry_version(self, version: str) -> int: ...

    # -- feature registry versions ------------------------------------------------------------
    async def upsert_registry_version(self, record: RegistryVersionRecord) -> RegistryVersionRecord:
        """Insert, or overwrite every column of an existing version but ``created_at``."""
        ...

    async def get_registry_version(self, version: str) -> RegistryVersionRecord | None: ...

    async def list_registry_versions(self) -> list[RegistryVersionRecord]:
        """Newest first (created_at DESC, then version DESC)."""
        ...

    async def get_active_registry_version(self) -> RegistryVersionRecord | None: ...

    async def activate_registry_version(
        self,
        version: str,
        activated_by: str | None,
        reason: str | None,
        *,
        rollback_from: str | None = None,
        now: datetime | None = None,
    ) -> RegistryVersionRecord:
        """Make ``version`` the only active one, atomically. Sets ``loaded_at`` (``now``),
        ``activated_by``, ``activation_reason``, ``rollback_from`` and, when another version was
        active, ``previous_version``. Activating the active version changes nothing.
        ``KeyError`` for an unknown version."""
        ...

    async def delete_registry_version(self, version: str) -> bool:
        """``ValueError`` for the active version (deactivate by activating another first)."""
        ...

    async def add_registry_audit(self, record: RegistryAuditRecord) -> None: ...

    async def list_registry_audit(self, version: str | None = None) -> list[RegistryAuditRecord]:
        """Oldest first; every version's entries when ``version`` is None."""
        ...

    # -- data quality reports -----------------------------------------------------------------
    async def insert_quality_report(
        self, record: DataQualityReportRecord
    ) -> DataQualityReportRecord: ...

    async def insert_quality_metrics(self, rows: Sequence[QualityMetricRow]) -> int:
        """Append rows to ``data_quality_metrics`` (migration 024) in one transaction."""
        ...

    async def latest_quality_report(
        self, symbol: str, start: datetime, end: datetime
    ) -> DataQualityReportRecord | None:
        """The most recently created report of ``symbol`` whose period lies inside
        ``[start, end]``."""
        ...
