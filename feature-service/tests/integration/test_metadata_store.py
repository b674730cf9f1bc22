"""One contract, two stores: every test runs against SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest

from feature_service.adapters.metadata import (
    ConstraintViolation,
    DataQualityReportRecord,
    DatasetRecord,
    MetadataStore,
    PostgresMetadataStore,
    RegistryVersionRecord,
    SqliteMetadataStore,
    StoreNotConnected,
    create_metadata_store,
    default_migrations_dir,
)
from feature_service.adapters.metadata.migrations import discover_migrations

if TYPE_CHECKING:
    from tests.fixtures.metadata import StoreFactory

pytest_plugins = ["tests.fixtures.metadata"]

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

NESTED_JSON: dict[str, Any] = {
    "type": "classification",
    "horizon": 300,
    "threshold": 0.0025,
    "labels": ["down", "flat", "up"],
    "nested": {"deep": [1, 2.5, None, True, False, {"x": "ü ✓ 日本"}], "empty": {}},
    "big": 2**53 + 1,
    "negative": -1e-9,
}


def dataset(**overrides: Any) -> DatasetRecord:
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "target_config": {"type": "regression", "horizon": 60},
        "feature_registry_version": "1.1.0",
        "created_at": T0,
    }
    values.update(overrides)
    return DatasetRecord(**values)


def full_dataset() -> DatasetRecord:
    return DatasetRecord(
        id=UUID("0f6b1c1e-7d7a-4a55-9a65-1b2c3d4e5f60"),
        symbol="ETHUSDT",
        status="ready",
        split_strategy="walk_forward",
        train_period_start=datetime(2025, 1, 1, tzinfo=UTC),
        train_period_end=datetime(2025, 1, 20, 23, 59, 59, 999999, tzinfo=UTC),
        validation_period_start=datetime(2025, 1, 21, tzinfo=UTC),
        validation_period_end=datetime(2025, 1, 25, tzinfo=UTC),
        test_period_start=datetime(2025, 1, 26, tzinfo=UTC),
        test_period_end=datetime(2025, 1, 31, 0, 0, 0, 1, tzinfo=UTC),
        walk_forward_config={"train_days": 14, "step_days": 1, "folds": 5},
        target_config=NESTED_JSON,
        feature_registry_version="1.1.0",
        train_records=1_209_600,
        validation_records=345_600,
        test_records=432_000,
        output_format="parquet",
        storage_path="datasets/0f6b1c1e/train.parquet",
        created_at=T0,
        completed_at=T0 + timedelta(minutes=7, microseconds=5),
        estimated_completion=T0 + timedelta(minutes=8),
        error_message=None,
        progress={"stage": "writing", "percent": 99.5, "rows": 1_987_200},
        folds=[{"fold": 0, "train_rows": 100}, {"fold": 1, "train_rows": 200}],
        warnings=["gap of 12 s on 2025-01-03", "funding missing for 1 interval"],
        manifest={"files": {"train": {"rows": 1_209_600, "sha256": "ab" * 32}}},
        feature_interval_s=3,
        request={"symbol": "ETHUSDT", "split_strategy": "walk_forward"},
    )


def registry(version: str, **overrides: Any) -> RegistryVersionRecord:
    values: dict[str, Any] = {
        "version": version,
        "config": {"version": version, "features": [{"name": "mid_price"}]},
        "created_at": T0,
    }
    values.update(overrides)
    return RegistryVersionRecord(**values)


def report(
    start: datetime, end: datetime, created_at: datetime, **overrides: Any
) -> DataQualityReportRecord:
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "period_start": start,
        "period_end": end,
        "missing_rate": 0.01,
        "anomaly_rate": 0.002,
        "created_at": created_at,
    }
    values.update(overrides)
    return DataQualityReportRecord(**values)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_kind_ping_and_close(store: MetadataStore, metadata_backend: str) -> None:
    assert store.kind == metadata_backend
    assert isinstance(store, MetadataStore)
    assert await store.ping() is True
    await store.close()
    assert await store.ping() is False
    with pytest.raises(StoreNotConnected):
        await store.get_dataset(uuid4())


async def test_operations_before_connect_raise(store_factory: StoreFactory) -> None:
    fresh = store_factory()
    assert await fresh.ping() is False
    with pytest.raises(StoreNotConnected):
        await fresh.list_datasets()


# -- datasets -----------------------------------------------------------------------------------


async def test_full_dataset_round_trips_exactly(store: MetadataStore) -> None:
    record = full_dataset()
    created = await store.create_dataset(record)
    assert created == record
    fetched = await store.get_dataset(record.id)
    assert fetched == record
    assert fetched is not None
    assert fetched.target_config["big"] == 9007199254740993
    assert fetched.target_config["nested"]["deep"][5] == {"x": "ü ✓ 日本"}
    for value in (fetched.created_at, fetched.completed_at, fetched.test_period_end):
        assert value is not None
        assert value.tzinfo is UTC


async def test_minimal_dataset_gets_the_column_defaults(store: MetadataStore) -> None:
    record = DatasetRecord(
        symbol="BTCUSDT",
        split_strategy="time_based",
        target_config={"type": "regression"},
        feature_registry_version="1.0.0",
    )
    before = datetime.now(UTC)
    await store.create_dataset(record)
    fetched = await store.get_dataset(record.id)
    assert fetched is not None
    assert (fetched.status, fetched.output_format, fetched.feature_interval_s) == (
        "building",
        "parquet",
        1,
    )
    assert (fetched.train_records, fetched.validation_records, fetched.test_records) == (0, 0, 0)
    assert fetched.warnings == []
    assert fetched.progress is None and fetched.folds is None and fetched.manifest is None
    assert fetched.train_period_start is None and fetched.completed_at is None
    assert before - timedelta(seconds=1) <= fetched.created_at <= datetime.now(UTC)


async def test_naive_and_foreign_zone_datetimes_are_stored_as_utc(store: MetadataStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    record = dataset(
        train_period_start=datetime(2025, 1, 1, 10, 0),  # naive: taken as UTC
        train_period_end=datetime(2025, 1, 1, 14, 0, tzinfo=plus_two),  # 12:00 UTC
        created_at=datetime(2025, 1, 2, 3, 4, 5, 6),
    )
    await store.create_dataset(record)
    fetched = await store.get_dataset(record.id)
    assert fetched is not None
    assert fetched.train_period_start == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert fetched.train_period_end == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert fetched.train_period_end.tzinfo is UTC
    assert fetched.created_at == datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


async def test_get_unknown_dataset_is_none(store: MetadataStore) -> None:
    await store.create_dataset(dataset())
    assert await store.get_dataset(uuid4()) is None


async def test_update_changes_only_the_given_fields(store: MetadataStore) -> None:
    record = dataset(status="queued", request={"symbol": "BTCUSDT"})
    await store.create_dataset(record)
    done_at = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    updated = await store.update_dataset(
        record.id,
        status="ready",
        completed_at=done_at,
        train_records=70,
        validation_records=20,
        test_records=10,
        progress={"stage": "done", "percent": 100.0},
        manifest={"files": ["train.parquet"]},
        warnings=["short test split"],
        storage_path="datasets/x",
    )
    expected = replace(
        record,
        status="ready",
        completed_at=done_at,
        train_records=70,
        validation_records=20,
        test_records=10,
        progress={"stage": "done", "percent": 100.0},
        manifest={"files": ["train.parquet"]},
        warnings=["short test split"],
        storage_path="datasets/x",
    )
    assert updated == expected
    assert await store.get_dataset(record.id) == expected


async def test_update_can_clear_json_and_error_fields(store: MetadataStore) -> None:
    record = dataset(progress={"stage": "reading"}, error_message="boom", warnings=["w"])
    await store.create_dataset(record)
    updated = await store.update_dataset(
        record.id, progress=None, error_message=None, warnings=None
    )
    assert (updated.progress, updated.error_message, updated.warnings) == (None, None, [])


async def test_update_unknown_id_raises_key_error(store: MetadataStore) -> None:
    missing = uuid4()
    with pytest.raises(KeyError):
        await store.update_dataset(missing, status="ready")
    with pytest.raises(KeyError):
        await store.update_dataset(missing)


async def test_update_rejects_unknown_and_read_only_fields(store: MetadataStore) -> None:
    record = dataset()
    await store.create_dataset(record)
    with pytest.raises(TypeError, match="colour"):
        await store.update_dataset(record.id, colour="red")
    with pytest.raises(TypeError, match="id"):
        await store.update_dataset(record.id, id=uuid4())
    assert await store.get_dataset(record.id) == record


async def test_update_without_fields_returns_the_row(store: MetadataStore) -> None:
    record = dataset()
    await store.create_dataset(record)
    assert await store.update_dataset(record.id) == record


async def test_list_is_newest_first_with_filters_and_limit(store: MetadataStore) -> None:
    rows = {
        "a": dataset(symbol="BTCUSDT", status="ready", created_at=T0 + timedelta(seconds=2)),
        "b": dataset(symbol="ETHUSDT", status="ready", created_at=T0 + timedelta(seconds=5)),
        "c": dataset(symbol="BTCUSDT", status="failed", created_at=T0),
        "d": dataset(symbol="BTCUSDT", status="ready", created_at=T0 + timedelta(seconds=9)),
    }
    for record in rows.values():  # insertion order differs from time order on purpose
        await store.create_dataset(record)

    def ids(found: list[DatasetRecord]) -> list[UUID]:
        return [r.id for r in found]

    assert ids(await store.list_datasets()) == [rows[k].id for k in "dbac"]
    assert ids(await store.list_datasets(status="ready")) == [rows[k].id for k in "dba"]
    assert ids(await store.list_datasets(symbol="BTCUSDT")) == [rows[k].id for k in "dac"]
    assert ids(await store.list_datasets(status="ready", symbol="BTCUSDT")) == [
        rows[k].id for k in "da"
    ]
    assert ids(await store.list_datasets(limit=2)) == [rows[k].id for k in "db"]
    assert await store.list_datasets(status="building") == []
    assert (await store.list_datasets(symbol="ETHUSDT"))[0] == rows["b"]


async def test_list_breaks_created_at_ties_by_id_descending(store: MetadataStore) -> None:
    low = dataset(id=UUID("00000000-0000-4000-8000-000000000001"))
    high = dataset(id=UUID("ffffffff-0000-4000-8000-000000000001"))
    await store.create_dataset(low)
    await store.create_dataset(high)
    assert [r.id for r in await store.list_datasets()] == [high.id, low.id]


async def test_delete_dataset(store: MetadataStore) -> None:
    keep, drop = dataset(), dataset()
    await store.create_dataset(keep)
    await store.create_dataset(drop)
    assert await store.delete_dataset(drop.id) is True
    assert await store.get_dataset(drop.id) is None
    assert await store.delete_dataset(drop.id) is False
    assert await store.list_datasets() == [keep]


async def test_count_datasets_by_registry_version(store: MetadataStore) -> None:
    for version in ("1.0.0", "1.1.0", "1.1.0", "1.1.0"):
        await store.create_dataset(dataset(feature_registry_version=version))
    assert await store.count_datasets_by_registry_version("1.1.0") == 3
    assert await store.count_datasets_by_registry_version("1.0.0") == 1
    assert await store.count_datasets_by_registry_version("9.9.9") == 0


async def test_duplicate_dataset_id_is_a_constraint_violation(store: MetadataStore) -> None:
    record = dataset()
    await store.create_dataset(record)
    with pytest.raises(ConstraintViolation):
        await store.create_dataset(replace(record, symbol="ETHUSDT"))
    assert await store.get_dataset(record.id) == record


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"status": "bogus"}, "datasets_status_check"),
        ({"split_strategy": "by_coin_flip"}, "datasets_split_strategy_check"),
        (
            {
                "train_period_start": datetime(2025, 1, 2, tzinfo=UTC),
                "train_period_end": datetime(2025, 1, 1, tzinfo=UTC),
            },
            "datasets_train_period_check",
        ),
        (
            {
                "train_period_start": datetime(2025, 1, 1, tzinfo=UTC),
                "train_period_end": datetime(2025, 1, 1, tzinfo=UTC),
            },
            "datasets_train_period_check",
        ),
        ({"feature_interval_s": 0}, "datasets_feature_interval_s_check"),
    ],
    ids=["status", "split", "train-reversed", "train-empty", "interval"],
)
async def test_dataset_check_constraints(
    store: MetadataStore, overrides: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await store.create_dataset(dataset(**overrides))
    assert caught.value.constraint == constraint
    assert await store.list_datasets() == []


async def test_update_violating_a_check_leaves_the_row_unchanged(store: MetadataStore) -> None:
    record = dataset(
        train_period_start=datetime(2025, 1, 1, tzinfo=UTC),
        train_period_end=datetime(2025, 1, 2, tzinfo=UTC),
    )
    await store.create_dataset(record)
    with pytest.raises(ConstraintViolation) as caught:
        await store.update_dataset(record.id, status="done")
    assert caught.value.constraint == "datasets_status_check"
    with pytest.raises(ConstraintViolation):
        await store.update_dataset(
            record.id, status="ready", train_period_end=datetime(2024, 12, 31, tzinfo=UTC)
        )
    assert await store.get_dataset(record.id) == record


async def test_builder_states_and_random_split_are_accepted(store: MetadataStore) -> None:
    for status in ("queued", "building", "ready", "failed"):
        for split in ("time_based", "walk_forward", "random"):
            await store.create_dataset(dataset(status=status, split_strategy=split))
    assert len(await store.list_datasets()) == 12
    assert len(await store.list_datasets(status="queued")) == 3


async def test_missing_target_config_is_rejected(store: MetadataStore) -> None:
    with pytest.raises(ConstraintViolation):
        await store.create_dataset(dataset(target_config=None))


# -- feature registry versions ------------------------------------------------------------------


async def test_registry_version_round_trips_every_column(store: MetadataStore) -> None:
    record = RegistryVersionRecord(
        version="1.2.0",
        config={"version": "1.2.0", "features": [{"name": "mid_price", "lookback_window": "0s"}]},
        is_active=False,
        validated_at=T0,
        validation_errors=[],
        loaded_at=None,
        created_at=T0 - timedelta(hours=1),
        created_by="alice",
        activated_by=None,
        rollback_from=None,
        previous_version="1.1.0",
        schema_version="2",
        migration_script="-- nothing to migrate",
        compatibility_warnings=["vwap_1m window changed"],
        breaking_changes=["removed returns_5m", "renamed spread"],
        activation_reason=None,
    )
    assert await store.upsert_registry_version(record) == record
    assert await store.get_registry_version("1.2.0") == record
    assert await store.get_registry_version("0.0.0") is None


async def test_registry_none_and_empty_arrays_stay_distinct(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("a", validation_errors=None))
    await store.upsert_registry_version(registry("b", validation_errors=[]))
    a, b = await store.get_registry_version("a"), await store.get_registry_version("b")
    assert a is not None and b is not None
    assert (a.validation_errors, b.validation_errors) == (None, [])


async def test_upsert_overwrites_but_keeps_created_at(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0", created_by="alice"))
    changed = registry(
        "1.0.0",
        config={"version": "1.0.0", "features": []},
        created_by="bob",
        validated_at=T0 + timedelta(minutes=1),
        validation_errors=["feature x: lookahead"],
        created_at=T0 + timedelta(days=5),
    )
    stored = await store.upsert_registry_version(changed)
    assert stored == replace(changed, created_at=T0)
    assert await store.get_registry_version("1.0.0") == stored
    assert len(await store.list_registry_versions()) == 1


async def test_list_registry_versions_newest_first(store: MetadataStore) -> None:
    for version, minutes in (("1.0.0", 0), ("1.2.0", 20), ("1.1.0", 10)):
        await store.upsert_registry_version(
            registry(version, created_at=T0 + timedelta(minutes=minutes))
        )
    assert [r.version for r in await store.list_registry_versions()] == [
        "1.2.0",
        "1.1.0",
        "1.0.0",
    ]


async def test_activation_swaps_the_active_version(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0"))
    await store.upsert_registry_version(registry("1.1.0", previous_version="1.0.0"))
    assert await store.get_active_registry_version() is None

    t1 = datetime(2025, 3, 2, 8, 0, 0, 1, tzinfo=UTC)
    first = await store.activate_registry_version("1.0.0", "ops", "initial", now=t1)
    assert (first.is_active, first.loaded_at, first.activated_by, first.activation_reason) == (
        True,
        t1,
        "ops",
        "initial",
    )
    assert first.previous_version is None  # nothing was active before

    t2 = t1 + timedelta(hours=1)
    second = await store.activate_registry_version("1.1.0", "alice", "new vwap", now=t2)
    assert (second.is_active, second.previous_version, second.loaded_at) == (True, "1.0.0", t2)
    assert (second.activated_by, second.activation_reason) == ("alice", "new vwap")
    assert await store.get_active_registry_version() == second
    old = await store.get_registry_version("1.0.0")
    assert old is not None
    assert (old.is_active, old.loaded_at, old.activated_by) == (False, t1, "ops")
    assert [r.version for r in await store.list_registry_versions() if r.is_active] == ["1.1.0"]


async def test_rollback_activation_records_where_it_came_from(store: MetadataStore) -> None:
    for version in ("1.0.0", "1.1.0"):
        await store.upsert_registry_version(registry(version))
    await store.activate_registry_version("1.0.0", "ops", None)
    await store.activate_registry_version("1.1.0", "ops", None)
    back = await store.activate_registry_version(
        "1.0.0", "ops", "1.1.0 failed validation", rollback_from="1.1.0"
    )
    assert (back.is_active, back.rollback_from, back.previous_version) == (True, "1.1.0", "1.1.0")
    again = await store.activate_registry_version("1.1.0", "ops", "fixed")
    assert (again.rollback_from, again.previous_version) == (None, "1.0.0")


async def test_activating_the_active_version_changes_nothing(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0"))
    first = await store.activate_registry_version("1.0.0", "ops", "initial", now=T0)
    again = await store.activate_registry_version(
        "1.0.0", "mallory", "again", now=T0 + timedelta(days=1)
    )
    assert again == first
    assert await store.get_registry_version("1.0.0") == first


async def test_activating_an_unknown_version_changes_nothing(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0"))
    active = await store.activate_registry_version("1.0.0", "ops", None)
    with pytest.raises(KeyError):
        await store.activate_registry_version("9.9.9", "ops", None)
    assert await store.get_active_registry_version() == active


async def test_at_most_one_active_version_is_enforced_by_the_schema(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0", is_active=True))
    with pytest.raises(ConstraintViolation):
        await store.upsert_registry_version(registry("1.1.0", is_active=True))
    assert await store.get_registry_version("1.1.0") is None
    active = await store.get_active_registry_version()
    assert active is not None and active.version == "1.0.0"


async def test_concurrent_activations_leave_exactly_one_active(store: MetadataStore) -> None:
    versions = [f"1.{i}.0" for i in range(8)]
    for version in versions:
        await store.upsert_registry_version(registry(version))
    results = await asyncio.gather(
        *(store.activate_registry_version(v, "ops", "race") for v in versions)
    )
    assert all(r.is_active for r in results)
    active = [r.version for r in await store.list_registry_versions() if r.is_active]
    assert len(active) == 1
    final = await store.get_active_registry_version()
    assert final is not None and final.version == active[0]
    # Every activation after the first saw exactly one predecessor: the chain covers them all.
    rows = {r.version: r for r in await store.list_registry_versions()}
    chain, cursor = [], final.version
    while cursor is not None:
        chain.append(cursor)
        cursor = rows[cursor].previous_version
    assert sorted(chain) == sorted(versions)


async def test_delete_registry_version(store: MetadataStore) -> None:
    await store.upsert_registry_version(registry("1.0.0"))
    await store.upsert_registry_version(registry("1.1.0"))
    await store.activate_registry_version("1.1.0", "ops", None)
    assert await store.delete_registry_version("1.0.0") is True
    assert await store.delete_registry_version("1.0.0") is False
    with pytest.raises(ValueError, match="active"):
        await store.delete_registry_version("1.1.0")
    assert [r.version for r in await store.list_registry_versions()] == ["1.1.0"]


# -- data quality reports -----------------------------------------------------------------------


async def test_quality_report_round_trip_and_rate_rounding(store: MetadataStore) -> None:
    start, end = T0, T0 + timedelta(hours=1)
    record = report(
        start,
        end,
        T0 + timedelta(hours=2),
        missing_rate=0.12345,  # DECIMAL(5,4): half away from zero -> 0.1235
        anomaly_rate=0.00005,  # -> 0.0001
        sequence_gaps=3,
        desynchronization_events=1,
        anomaly_details={"price_jumps": [{"at": "2025-03-01T12:10:00Z", "bps": 85.5}]},
        sequence_gap_details=[{"from": 100, "to": 104}],
        recommendations=["re-request snapshot"],
    )
    stored = await store.insert_quality_report(record)
    expected = replace(record, missing_rate=0.1235, anomaly_rate=0.0001)
    assert stored == expected
    assert await store.latest_quality_report("BTCUSDT", start, end) == expected


async def test_quality_report_defaults(store: MetadataStore) -> None:
    record = report(T0, T0 + timedelta(minutes=1), T0)
    stored = await store.insert_quality_report(record)
    assert (stored.sequence_gaps, stored.desynchronization_events) == (0, 0)
    assert (stored.anomaly_details, stored.sequence_gap_details, stored.recommendations) == (
        None,
        None,
        [],
    )


async def test_latest_quality_report_lookup_rules(store: MetadataStore) -> None:
    h = timedelta(hours=1)
    m = timedelta(minutes=1)
    day = datetime(2025, 3, 1, tzinfo=UTC)
    inside_old = report(day + 10 * h, day + 10 * h + 30 * m, created_at=day + 20 * h)
    inside_new = report(day + 10 * h, day + 11 * h, created_at=day + 21 * h)
    overhanging = report(day + 10 * h + 30 * m, day + 11 * h + 30 * m, created_at=day + 22 * h)
    other_symbol = report(
        day + 10 * h, day + 11 * h, created_at=day + 23 * h, symbol="ETHUSDT", missing_rate=0.5
    )
    for r in (inside_old, inside_new, overhanging, other_symbol):
        await store.insert_quality_report(r)

    async def latest(symbol: str, start: datetime, end: datetime) -> UUID | None:
        found = await store.latest_quality_report(symbol, start, end)
        return None if found is None else found.id

    # Both inside reports qualify; the more recently created wins. The overhanging one does not
    # lie inside the window although it is the newest BTCUSDT report.
    assert await latest("BTCUSDT", day + 10 * h, day + 11 * h) == inside_new.id
    # Boundaries are inclusive on both ends.
    assert await latest("BTCUSDT", day + 10 * h, day + 10 * h + 30 * m) == inside_old.id
    # A window starting one microsecond late excludes both reports starting at 10:00.
    late = day + 10 * h + timedelta(microseconds=1)
    assert await latest("BTCUSDT", late, day + 11 * h) is None
    assert await latest("BTCUSDT", day, day + 24 * h) == overhanging.id
    assert await latest("ETHUSDT", day, day + 24 * h) == other_symbol.id
    assert await latest("SOLUSDT", day, day + 24 * h) is None


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"missing_rate": 1.5}, "data_quality_reports_missing_rate_check"),
        ({"anomaly_rate": -0.001}, "data_quality_reports_anomaly_rate_check"),
        ({"sequence_gaps": -1}, "data_quality_reports_sequence_gaps_check"),
        (
            {"desynchronization_events": -2},
            "data_quality_reports_desynchronization_events_check",
        ),
        ({"period_end": T0}, "data_quality_reports_period_check"),
        ({"period_end": T0 - timedelta(seconds=1)}, "data_quality_reports_period_check"),
    ],
    ids=["missing>1", "anomaly<0", "gaps<0", "desync<0", "empty-period", "reversed-period"],
)
async def test_quality_report_check_constraints(
    store: MetadataStore, overrides: dict[str, Any], constraint: str
) -> None:
    record = report(T0, T0 + timedelta(hours=1), T0)
    with pytest.raises(ConstraintViolation) as caught:
        await store.insert_quality_report(replace(record, **overrides))
    assert caught.value.constraint == constraint
    assert await store.latest_quality_report("BTCUSDT", T0, T0 + timedelta(days=1)) is None


async def test_rate_boundaries_zero_and_one_are_accepted(store: MetadataStore) -> None:
    record = report(T0, T0 + timedelta(hours=1), T0, missing_rate=1.0, anomaly_rate=0.0)
    stored = await store.insert_quality_report(record)
    assert (stored.missing_rate, stored.anomaly_rate) == (1.0, 0.0)


async def test_rates_that_round_above_one_are_rejected(store: MetadataStore) -> None:
    with pytest.raises(ConstraintViolation):
        await store.insert_quality_report(
            report(T0, T0 + timedelta(hours=1), T0, missing_rate=1.00005)
        )


# -- both backends at once ----------------------------------------------------------------------


async def test_both_backends_return_identical_records(
    both_stores: list[MetadataStore],
) -> None:
    report_id = uuid4()
    results = []
    for s in both_stores:
        await s.create_dataset(full_dataset())
        await s.upsert_registry_version(registry("1.0.0", breaking_changes=["x"]))
        await s.activate_registry_version("1.0.0", "ops", "r", now=T0)
        await s.insert_quality_report(
            report(T0, T0 + timedelta(hours=1), T0, missing_rate=0.33335, id=report_id)
        )
        results.append(
            (
                await s.get_dataset(full_dataset().id),
                await s.get_active_registry_version(),
                await s.latest_quality_report("BTCUSDT", T0, T0 + timedelta(hours=1)),
            )
        )
    assert [s.kind for s in both_stores] == ["sqlite", "postgresql"]
    assert results[0] == results[1]
    assert results[0][0] == full_dataset()
    assert results[0][2] is not None and results[0][2].missing_rate == 0.3334


# -- factory ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected_type", "expected_path"),
    [
        (None, SqliteMetadataStore, "/default/fs.sqlite3"),
        ("sqlite:////var/lib/fs/meta.db", SqliteMetadataStore, "/var/lib/fs/meta.db"),
        ("sqlite:///data/meta.db", SqliteMetadataStore, "data/meta.db"),
        ("sqlite:///:memory:", SqliteMetadataStore, ":memory:"),
        ("postgresql://u@h:5432/db", PostgresMetadataStore, None),
        ("postgres://u@h/db", PostgresMetadataStore, None),
        ("POSTGRESQL://u@h/db", PostgresMetadataStore, None),
    ],
)
def test_factory_picks_the_backend_from_the_url(
    url: str | None, expected_type: type, expected_path: str | None
) -> None:
    made = create_metadata_store(url, Path("/default/fs.sqlite3"))
    assert type(made) is expected_type
    if expected_path is not None:
        assert isinstance(made, SqliteMetadataStore)
        assert made.path == expected_path


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://relative.db", "localhost:5432"])
def test_factory_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError):
        create_metadata_store(url, Path("x.sqlite3"))


async def test_in_memory_sqlite_store_works(tmp_path: Path) -> None:
    made = create_metadata_store("sqlite:///:memory:", tmp_path / "unused.sqlite3")
    await made.connect()
    try:
        found = discover_migrations(default_migrations_dir() or Path("."), "sqlite")
        assert await made.upgrade() == [m.version for m in found]
        record = dataset()
        await made.create_dataset(record)
        assert await made.get_dataset(record.id) == record
    finally:
        await made.close()
    assert not (tmp_path / "unused.sqlite3").exists()
