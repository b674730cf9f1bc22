"""Migration 024 (data_quality_metrics, T197) on both backends: the store writes rows, the
CHECKs refuse impossible rates, and the down script removes the table again (reversible)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import QualityMetricRow
from tests.fixtures.metadata import RawDb, repo_migrations_dir

pytest_plugins = ["tests.fixtures.metadata"]

NAME = "024_create_data_quality_metrics_table.sql"


def _files(backend: str) -> tuple[Path, Path]:
    root = repo_migrations_dir()
    if backend == "sqlite":
        return root / "sqlite" / NAME, root / "sqlite" / "down" / NAME
    return root / NAME, root / "down" / NAME


def _statements(path: Path) -> list[str]:
    body = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in body.split(";") if s.strip()]


async def _apply(raw: RawDb, path: Path) -> None:
    for statement in _statements(path):
        await raw.execute(statement)


def _row(minute: int, **kw: object) -> QualityMetricRow:
    values: dict[str, object] = {
        "symbol": "BTCUSDT",
        "metric_timestamp": datetime(2026, 11, 25, 13, minute, tzinfo=UTC),
        "missing_rate": 0.01234,
        "anomaly_rate": 0.0,
        "sequence_gaps_count": 2,
        "desynchronization_events_count": 1,
        "data_completeness_rate": 0.98766,
        "trace_id": "session-1",
    }
    values.update(kw)
    return QualityMetricRow(**values)  # type: ignore[arg-type]


async def test_metrics_rows_round_trip_and_the_migration_reverses(
    store: MetadataStore, raw_db: RawDb
) -> None:
    backend = store.kind
    up, down = _files("sqlite" if backend == "sqlite" else "postgresql")
    await _apply(raw_db, up)  # idempotent: a no-op when the runner already applied it
    assert {"symbol", "metric_timestamp", "data_completeness_rate", "trace_id"} <= (
        await raw_db.columns("data_quality_metrics")
    )
    assert await store.insert_quality_metrics([_row(1), _row(2, sequence_gaps_count=0)]) == 2
    rows = await raw_db.fetch(
        "SELECT symbol, missing_rate, sequence_gaps_count, desynchronization_events_count,"
        " data_completeness_rate FROM data_quality_metrics ORDER BY metric_timestamp"
    )
    assert [(r[0], float(r[1]), r[2], r[3], float(r[4])) for r in rows] == [
        ("BTCUSDT", 0.0123, 2, 1, 0.9877),
        ("BTCUSDT", 0.0123, 0, 1, 0.9877),
    ]
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        await store.insert_quality_metrics([_row(3, missing_rate=1.5)])
    await _apply(raw_db, down)
    assert "data_quality_metrics" not in await raw_db.tables()
    await _apply(raw_db, up)
    assert "data_quality_metrics" in await raw_db.tables()
