"""Backfill jobs in the metadata store: one contract, SQLite and the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

import pytest

from feature_service.adapters.metadata import ConstraintViolation, MetadataStore
from feature_service.adapters.metadata.backfill_jobs import BackfillJobRecord
from tests.fixtures.backfill_schema import apply_to_store

pytest_plugins = ["tests.fixtures.metadata"]
pytestmark = pytest.mark.timeout(60)

T0 = dt.datetime(2025, 11, 1, 8, 30, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
async def _backfill_table(store: MetadataStore) -> None:
    await apply_to_store(store)


def job(**overrides: object) -> BackfillJobRecord:
    values: dict[str, object] = {
        "symbol": "BTCUSDT",
        "start_date": dt.date(2025, 10, 1),
        "end_date": dt.date(2025, 10, 31),
        "data_types": ["klines", "funding", "trades"],
        "unavailable": {"trades": "no REST history"},
        "progress": {"days_total": 62, "days_done": 0},
        "created_at": T0,
    }
    values.update(overrides)
    return BackfillJobRecord(**values)  # type: ignore[arg-type]


async def test_round_trip_keeps_every_field(store: MetadataStore) -> None:
    rec = job(category="spot", trigger="cli", error_message="x ü", cancel_requested=True)
    created = await store.create_backfill_job(rec)  # type: ignore[attr-defined]
    assert created == rec
    assert await store.get_backfill_job(rec.id) == rec  # type: ignore[attr-defined]
    assert await store.get_backfill_job(uuid4()) is None  # type: ignore[attr-defined]


async def test_update_records_days_and_status(store: MetadataStore) -> None:
    rec = await store.create_backfill_job(job())  # type: ignore[attr-defined]
    done = ["klines:2025-10-01", "klines:2025-10-02"]
    failed = [{"data_type": "klines", "day": "2025-10-03", "problems": ["1 rows read back"]}]
    updated = await store.update_backfill_job(  # type: ignore[attr-defined]
        rec.id, status="running", completed_days=done, failed_days=failed,
        started_at=T0 + dt.timedelta(seconds=1),
    )  # fmt: skip
    assert updated.status == "running" and updated.completed_days == done
    assert updated.failed_days == failed and updated.updated_at is not None
    assert updated.started_at == T0 + dt.timedelta(seconds=1)
    again = await store.get_backfill_job(rec.id)  # type: ignore[attr-defined]
    assert again == updated
    with pytest.raises(KeyError):
        await store.update_backfill_job(uuid4(), status="failed")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        await store.update_backfill_job(rec.id, nonsense=1)  # type: ignore[attr-defined]


async def test_list_filters_and_orders_newest_first(store: MetadataStore) -> None:
    a = await store.create_backfill_job(job(created_at=T0))  # type: ignore[attr-defined]
    b = await store.create_backfill_job(  # type: ignore[attr-defined]
        job(created_at=T0 + dt.timedelta(minutes=1), symbol="ETHUSDT")
    )
    c = await store.create_backfill_job(  # type: ignore[attr-defined]
        job(created_at=T0 + dt.timedelta(minutes=2), status="completed")
    )
    listed = await store.list_backfill_jobs()  # type: ignore[attr-defined]
    assert [j.id for j in listed] == [c.id, b.id, a.id]
    pending = await store.list_backfill_jobs(status="pending")  # type: ignore[attr-defined]
    assert [j.id for j in pending] == [b.id, a.id]
    mine = await store.list_backfill_jobs(  # type: ignore[attr-defined]
        status="pending", symbol="BTCUSDT"
    )
    assert [j.id for j in mine] == [a.id]
    assert len(await store.list_backfill_jobs(limit=1)) == 1  # type: ignore[attr-defined]


async def test_constraints_refuse_bad_rows(store: MetadataStore) -> None:
    with pytest.raises(ConstraintViolation):
        await store.create_backfill_job(job(status="exploded"))  # type: ignore[attr-defined]
    with pytest.raises(ConstraintViolation):
        await store.create_backfill_job(  # type: ignore[attr-defined]
            job(start_date=dt.date(2025, 11, 2), end_date=dt.date(2025, 11, 1))
        )
