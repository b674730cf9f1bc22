"""Metadata store: the ``MetadataStore`` port, its records, and its adapters (PostgreSQL,
SQLite), with the SQL migrations that shape both."""

from __future__ import annotations

from feature_service.adapters.metadata.base import (
    ConstraintViolation,
    MetadataStore,
    MetadataStoreError,
    StoreKind,
    StoreNotConnected,
)
from feature_service.adapters.metadata.factory import create_metadata_store
from feature_service.adapters.metadata.migrations import (
    ChecksumMismatch,
    MigrationError,
    MigrationState,
    default_migrations_dir,
)
from feature_service.adapters.metadata.postgres import PostgresMetadataStore
from feature_service.adapters.metadata.records import (
    DATASET_STATUSES,
    SPLIT_STRATEGIES,
    DataQualityReportRecord,
    DatasetRecord,
    RegistryVersionRecord,
)
from feature_service.adapters.metadata.sqlite import SqliteMetadataStore

__all__ = [
    "DATASET_STATUSES",
    "SPLIT_STRATEGIES",
    "ChecksumMismatch",
    "ConstraintViolation",
    "DataQualityReportRecord",
    "DatasetRecord",
    "MetadataStore",
    "MetadataStoreError",
    "MigrationError",
    "MigrationState",
    "PostgresMetadataStore",
    "RegistryVersionRecord",
    "SqliteMetadataStore",
    "StoreKind",
    "StoreNotConnected",
    "create_metadata_store",
    "default_migrations_dir",
]
