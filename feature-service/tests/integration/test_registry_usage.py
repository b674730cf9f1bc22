"""Registry usage counts (migration 027) on SQLite and the real PostgreSQL: the table, its
reversal, counts that add up per version and hour, the 24 h window, pruning; and the service's
counter, which writes what it counted and keeps what the store could not take."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from feature_service.adapters.metadata import default_migrations_dir
from feature_service.engine.vector import FeatureVector
from feature_service.services.registry_usage import HOUR_US, ComputationUsage

if TYPE_CHECKING:
    from tests.fixtures.metadata import RawDb, StoreFactory

pytest_plugins = ["tests.fixtures.metadata"]
pytestmark = pytest.mark.timeout(120)
H0 = 490_000  # an hour since the epoch (2025-11-23)


async def test_027_creates_the_usage_table_and_rolls_back(
    store_factory: StoreFactory, raw_db: RawDb, metadata_backend: str
) -> None:
    store = store_factory()
    await store.connect()
    assert 27 in await store.upgrade()
    columns = {"version", "hour_epoch", "computations", "updated_at"}
    assert await raw_db.columns("feature_registry_usage") == columns
    reverted = await store.downgrade(to=26)
    assert reverted[-1] == 27
    assert "feature_registry_usage" not in await raw_db.tables()
    assert await store.upgrade() == sorted(reverted)
    if metadata_backend == "postgresql":  # psql may apply the folder again
        directory = default_migrations_dir()
        assert directory is not None
        await raw_db.execute((directory / "027_create_feature_registry_usage.sql").read_text())
    await store.close()


async def test_counts_add_up_per_version_and_hour(store_factory: StoreFactory) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    await store.add_registry_usage([("2.0.0", H0, 5), ("2.0.0", H0 + 1, 7), ("1.1.0", H0, 3)])
    await store.add_registry_usage([("2.0.0", H0 + 1, 10), ("2.0.0", H0 + 2, 0)])  # a 2nd writer
    assert await store.registry_usage_since("2.0.0", H0) == 22
    assert await store.registry_usage_since("2.0.0", H0 + 1) == 17
    assert await store.registry_usage_since("1.1.0", H0) == 3
    assert await store.registry_usage_since("9.9.9", 0) == 0
    assert await store.prune_registry_usage(H0 + 1) == 2  # the two rows of hour H0
    assert await store.registry_usage_since("2.0.0", 0) == 17
    await store.close()


def _vectors(version: str, hour: int, n: int) -> list[FeatureVector]:
    return [
        FeatureVector(
            symbol="BTCUSDT",
            timestamp=hour * HOUR_US + i * 1_000_000,
            interval_s=1,
            features={},
            registry_version=version,
        )
        for i in range(n)
    ]


class _Failing:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.fail = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def add_registry_usage(self, rows: Any) -> None:
        if self.fail:
            raise ConnectionError("database down")
        await self.store.add_registry_usage(rows)


async def test_the_counter_survives_a_restart_and_a_failed_write(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    await store.connect()
    await store.upgrade()
    now = (H0 + 30) * HOUR_US
    usage = ComputationUsage()
    usage.add(_vectors("2.0.0", H0 + 30, 4))
    usage.add(_vectors("2.0.0", H0 + 6, 6))  # outside the last 24 h (hours H0+7..H0+30)
    assert await usage.count(store, "2.0.0", now) == 4  # not written yet: counted in memory
    flaky = _Failing(store)
    await usage.flush(flaky)  # kept, not lost
    assert await store.registry_usage_since("2.0.0", 0) == 0
    assert await usage.count(store, "2.0.0", now) == 4
    flaky.fail = False
    usage.add(_vectors("2.0.0", H0 + 29, 2))
    await usage.flush(flaky)
    # a new process (a restart) counts what the previous one wrote
    again = ComputationUsage()
    assert await again.count(store, "2.0.0", now) == 6
    assert await again.count(store, "2.0.0", (H0 + 60) * HOUR_US) == 0
    assert await store.registry_usage_since("2.0.0", 0) == 12
    await store.close()
