"""Rows of the metadata store as plain dataclasses, identical whichever backend holds them.

Datetimes are timezone-aware UTC on the way out; naive datetimes handed in are taken as UTC.
JSON columns are ``dict`` / ``list``; array columns are ``list[str]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final
from uuid import UUID, uuid4

DATASET_STATUSES: Final = ("queued", "building", "ready", "failed")
SPLIT_STRATEGIES: Final = ("time_based", "walk_forward", "random")

_RATE_QUANTUM: Final = Decimal("0.0001")


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already (the database convention)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def quantize_rate(value: float | Decimal) -> Decimal:
    """A rate as the DECIMAL(5,4) column stores it (half away from zero, like PostgreSQL)."""
    return Decimal(str(value)).quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(kw_only=True, slots=True)
class DatasetRecord:
    """One row of ``datasets`` (with the builder's columns of migration 021)."""

    id: UUID = field(default_factory=uuid4)
    symbol: str
    status: str = "building"
    split_strategy: str
    train_period_start: datetime | None = None
    train_period_end: datetime | None = None
    validation_period_start: datetime | None = None
    validation_period_end: datetime | None = None
    test_period_start: datetime | None = None
    test_period_end: datetime | None = None
    walk_forward_config: dict[str, Any] | None = None
    target_config: dict[str, Any]
    feature_registry_version: str
    train_records: int = 0
    validation_records: int = 0
    test_records: int = 0
    output_format: str = "parquet"
    storage_path: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    completed_at: datetime | None = None
    estimated_completion: datetime | None = None
    error_message: str | None = None
    progress: dict[str, Any] | None = None
    folds: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    feature_interval_s: int = 1
    request: dict[str, Any] | None = None


@dataclass(kw_only=True, slots=True)
class RegistryVersionRecord:
    """One row of ``feature_registry_versions`` (all T024 columns)."""

    version: str
    config: dict[str, Any]
    is_active: bool = False
    validated_at: datetime | None = None
    validation_errors: list[str] | None = None
    loaded_at: datetime | None = None
    created_at: datetime = field(default_factory=utc_now)
    created_by: str | None = None
    activated_by: str | None = None
    rollback_from: str | None = None
    previous_version: str | None = None
    schema_version: str | None = None
    migration_script: str | None = None
    compatibility_warnings: list[str] | None = None
    breaking_changes: list[str] | None = None
    activation_reason: str | None = None
    file_path: str | None = None  # the version's YAML file (the source of truth), migration 025
    file_hash: str | None = None  # its SHA-256 when last read: a hand edit shows as a mismatch


@dataclass(kw_only=True, slots=True)
class RegistryAuditRecord:
    """One row of ``feature_registry_audit`` (migration 025): who did what to which version."""

    id: UUID = field(default_factory=uuid4)
    version: str
    action: str  # create / activate / rollback / delete / sync / activation_failed
    actor: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utc_now)


@dataclass(kw_only=True, slots=True)
class DataQualityReportRecord:
    """One row of ``data_quality_reports``. Rates are stored with 4 decimals (DECIMAL(5,4))."""

    id: UUID = field(default_factory=uuid4)
    symbol: str
    period_start: datetime
    period_end: datetime
    missing_rate: float
    anomaly_rate: float
    sequence_gaps: int = 0
    desynchronization_events: int = 0
    anomaly_details: dict[str, Any] | list[Any] | None = None
    sequence_gap_details: dict[str, Any] | list[Any] | None = None
    recommendations: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utc_now)


@dataclass(kw_only=True, slots=True, frozen=True)
class QualityMetricRow:
    """One row of ``data_quality_metrics``: one symbol's quality over one minute."""

    symbol: str
    metric_timestamp: datetime
    missing_rate: float
    anomaly_rate: float
    sequence_gaps_count: int
    desynchronization_events_count: int
    data_completeness_rate: float
    trace_id: str | None = None
    id: UUID = field(default_factory=uuid4)

    def values(self, *, iso: bool) -> tuple[Any, ...]:
        """Column values in ``QUALITY_METRIC_FIELDS`` order; SQLite stores text."""
        ts = self.metric_timestamp.replace(tzinfo=None)
        return (
            str(self.id) if iso else self.id,
            self.symbol,
            ts.isoformat() if iso else ts,
            round(self.missing_rate, 4),
            round(self.anomaly_rate, 4),
            self.sequence_gaps_count,
            self.desynchronization_events_count,
            round(self.data_completeness_rate, 4),
            self.trace_id,
        )


QUALITY_METRIC_FIELDS: Final = (
    "id",
    "symbol",
    "metric_timestamp",
    "missing_rate",
    "anomaly_rate",
    "sequence_gaps_count",
    "desynchronization_events_count",
    "data_completeness_rate",
    "trace_id",
)
QUALITY_METRIC_COLUMNS: Final = ", ".join(QUALITY_METRIC_FIELDS)

DATASET_FIELDS: Final = tuple(f.name for f in fields(DatasetRecord))
REGISTRY_FIELDS: Final = tuple(f.name for f in fields(RegistryVersionRecord))
AUDIT_FIELDS: Final = tuple(f.name for f in fields(RegistryAuditRecord))
QUALITY_FIELDS: Final = tuple(f.name for f in fields(DataQualityReportRecord))

DATASET_TIME_FIELDS: Final = frozenset(
    {
        "train_period_start",
        "train_period_end",
        "validation_period_start",
        "validation_period_end",
        "test_period_start",
        "test_period_end",
        "created_at",
        "completed_at",
        "estimated_completion",
    }
)
DATASET_JSON_FIELDS: Final = frozenset(
    {"walk_forward_config", "target_config", "progress", "folds", "manifest", "request"}
)
DATASET_ARRAY_FIELDS: Final = frozenset({"warnings"})
# Every column but the key can be changed by update_dataset.
DATASET_UPDATABLE: Final = frozenset(DATASET_FIELDS) - {"id"}

REGISTRY_TIME_FIELDS: Final = frozenset({"validated_at", "loaded_at", "created_at"})
REGISTRY_JSON_FIELDS: Final = frozenset({"config"})
REGISTRY_ARRAY_FIELDS: Final = frozenset(
    {"validation_errors", "compatibility_warnings", "breaking_changes"}
)

QUALITY_TIME_FIELDS: Final = frozenset({"period_start", "period_end", "created_at"})
QUALITY_JSON_FIELDS: Final = frozenset({"anomaly_details", "sequence_gap_details", "details"})
QUALITY_ARRAY_FIELDS: Final = frozenset({"recommendations"})
QUALITY_RATE_FIELDS: Final = frozenset({"missing_rate", "anomaly_rate"})

# A column name means the same in every table (``created_at`` is a time everywhere), so one set
# serves all three.
TIME_FIELDS: Final = DATASET_TIME_FIELDS | REGISTRY_TIME_FIELDS | QUALITY_TIME_FIELDS

# SQL fragments both stores use as they are (only parameter markers differ between them).
DATASET_COLUMNS: Final = ", ".join(DATASET_FIELDS)
REGISTRY_COLUMNS: Final = ", ".join(REGISTRY_FIELDS)
QUALITY_COLUMNS: Final = ", ".join(QUALITY_FIELDS)
AUDIT_COLUMNS: Final = ", ".join(AUDIT_FIELDS)
# An upsert of a registry version replaces every column but its key and creation time.
REGISTRY_UPSERT_SET: Final = ", ".join(
    f"{n} = excluded.{n}" for n in REGISTRY_FIELDS if n not in ("version", "created_at")
)


def check_dataset_fields(names: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(names) - DATASET_UPDATABLE)
    if unknown:
        raise TypeError(f"unknown or read-only dataset field(s): {', '.join(unknown)}")


ColumnCodec = Callable[[str, Any], Any]
"""``(column name, value) -> value``: one backend's conversion of one column."""


class RowCodec:
    """Records to a backend's column values and its rows back to records, given that backend's
    per-column ``encode`` and ``decode``."""

    __slots__ = ("_decode", "_encode")

    def __init__(self, encode: ColumnCodec, decode: ColumnCodec) -> None:
        self._encode = encode
        self._decode = decode

    def values(self, record: Any, names: Iterable[str]) -> list[Any]:
        encode = self._encode
        return [encode(n, getattr(record, n)) for n in names]

    def _decoded(self, row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        decode = self._decode
        return {n: decode(n, row[n]) for n in names}

    def dataset(self, row: Mapping[str, Any]) -> DatasetRecord:
        values = self._decoded(row, DATASET_FIELDS)
        values["warnings"] = values["warnings"] or []
        return DatasetRecord(**values)

    def registry(self, row: Mapping[str, Any]) -> RegistryVersionRecord:
        return RegistryVersionRecord(**self._decoded(row, REGISTRY_FIELDS))

    def audit(self, row: Mapping[str, Any]) -> RegistryAuditRecord:
        return RegistryAuditRecord(**self._decoded(row, AUDIT_FIELDS))

    def quality(self, row: Mapping[str, Any]) -> DataQualityReportRecord:
        values = self._decoded(row, QUALITY_FIELDS)
        values["recommendations"] = values["recommendations"] or []
        return DataQualityReportRecord(**values)
