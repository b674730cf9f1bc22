"""What the service needs of each shared table, and the check that an existing table fits it.

ws-gateway owns the shared database and its operator applies migrations with ``psql``, so a
table this service would create may already be there, made by ws-gateway's own file of the same
number or by ours applied outside the runner. The migrations are idempotent, so running one over
such a table adds only what is missing; this module then says whether the result is a table the
service can work with. It checks column presence and type family (not exact types: ``TEXT`` vs
``VARCHAR`` or ``JSON`` vs ``JSONB`` make no difference to the queries), and that no column the
service does not know about is ``NOT NULL`` without a default (every insert would fail on it).

Expectations are cumulative per migration version: the check after migration N covers the
tables N creates or changes, with the columns they must have once N is applied. A migration
without an entry here is not checked (it is trusted to be its own file's content).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

# PostgreSQL udt_name -> the family the service's queries care about.
_FAMILIES: Final[Mapping[str, str]] = {
    "varchar": "string",
    "text": "string",
    "bpchar": "string",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "json": "json",
    "jsonb": "json",
    "_text": "string[]",
    "_varchar": "string[]",
    "timestamp": "timestamp",
    "timestamptz": "timestamp with time zone",
    "uuid": "uuid",
    "bool": "boolean",
    "numeric": "numeric",
}

_TS = "timestamp"
_DATASETS_BASE: Final = {
    "id": "uuid",
    "symbol": "string",
    "status": "string",
    "split_strategy": "string",
    "train_period_start": _TS,
    "train_period_end": _TS,
    "validation_period_start": _TS,
    "validation_period_end": _TS,
    "test_period_start": _TS,
    "test_period_end": _TS,
    "walk_forward_config": "json",
    "target_config": "json",
    "feature_registry_version": "string",
    "train_records": "integer",
    "validation_records": "integer",
    "test_records": "integer",
    "output_format": "string",
    "storage_path": "string",
    "created_at": _TS,
    "completed_at": _TS,
    "estimated_completion": _TS,
    "error_message": "string",
}
_DATASETS_BUILDER: Final = {
    "progress": "json",
    "folds": "json",
    "warnings": "string[]",
    "manifest": "json",
    "feature_interval_s": "integer",
    "request": "json",
}
_REGISTRY: Final = {
    "version": "string",
    "config": "json",
    "is_active": "boolean",
    "validated_at": _TS,
    "validation_errors": "string[]",
    "loaded_at": _TS,
    "created_at": _TS,
    "created_by": "string",
    "activated_by": "string",
    "rollback_from": "string",
    "previous_version": "string",
    "schema_version": "string",
    "migration_script": "string",
    "compatibility_warnings": "string[]",
    "breaking_changes": "string[]",
    "activation_reason": "string",
}
_QUALITY: Final = {
    "id": "uuid",
    "symbol": "string",
    "period_start": _TS,
    "period_end": _TS,
    "missing_rate": "numeric",
    "anomaly_rate": "numeric",
    "sequence_gaps": "integer",
    "desynchronization_events": "integer",
    "anomaly_details": "json",
    "sequence_gap_details": "json",
    "recommendations": "string[]",
    "created_at": _TS,
}

_QUALITY_METRICS: Final = {
    "id": "uuid",
    "symbol": "string",
    "metric_timestamp": _TS,
    "missing_rate": "numeric",
    "anomaly_rate": "numeric",
    "sequence_gaps_count": "integer",
    "desynchronization_events_count": "integer",
    "data_completeness_rate": "numeric",
    "trace_id": "string",
    "created_at": _TS,
}
_REGISTRY_FILES: Final = {"file_path": "string", "file_hash": "string"}
_REGISTRY_AUDIT: Final = {
    "id": "uuid",
    "version": "string",
    "action": "string",
    "actor": "string",
    "reason": "string",
    "details": "json",
    "created_at": _TS,
}

EXPECTED: Final[Mapping[int, Mapping[str, Mapping[str, str]]]] = {
    18: {"datasets": _DATASETS_BASE},
    19: {"feature_registry_versions": _REGISTRY},
    20: {"data_quality_reports": _QUALITY},
    22: {"datasets": {**_DATASETS_BASE, **_DATASETS_BUILDER}},
    24: {"data_quality_metrics": _QUALITY_METRICS},
    25: {
        "feature_registry_versions": {**_REGISTRY, **_REGISTRY_FILES},
        "feature_registry_audit": _REGISTRY_AUDIT,
    },
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_name: str | None  # PostgreSQL udt_name; None where the backend does not enforce types
    not_null: bool
    has_default: bool


def family(type_name: str) -> str:
    return _FAMILIES.get(type_name, type_name)


def problems(expected: Mapping[str, str], actual: Sequence[Column]) -> list[str]:
    """What is wrong with ``actual`` for ``expected``; empty when it fits."""
    found = {c.name: c for c in actual}
    issues = []
    for name, want in expected.items():
        column = found.get(name)
        if column is None:
            issues.append(f"column {name} is missing")
        elif column.type_name is not None and family(column.type_name) != want:
            issues.append(f"column {name} is {column.type_name}, expected {want}")
    for column in actual:
        if column.name not in expected and column.not_null and not column.has_default:
            issues.append(
                f"column {column.name} is NOT NULL without a default"
                " (the service does not write it, so every insert would fail)"
            )
    return issues


def type_problems(expected: Mapping[str, str], actual: Sequence[Column]) -> list[str]:
    """The problems a migration's own SQL cannot fix: wrong types of existing columns (an
    ``ADD COLUMN IF NOT EXISTS`` keeps them) and unknown NOT NULL columns. Checked before the
    migration runs, so that its SQL does not fail half-way with a database error instead."""
    return [i for i in problems(expected, actual) if not i.endswith("is missing")]
