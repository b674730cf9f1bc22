"""With PostgreSQL cut (a proxy that accepts and forwards nothing), features keep flowing: the
metrics writer counts what it cannot write and the live path never waits for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from benchmarks.blackhole import BlackholeProxy

from feature_service.config import Settings
from feature_service.services.runtime import Runtime
from tests.fixtures import events as ev
from tests.fixtures.metadata import create_schema, drop_schema, repo_migrations_dir
from tests.fixtures.waiting import wait_until

T0 = 1_795_600_000_000_000
MIGRATION = "026_create_operations_metrics_tables.sql"


class ManualClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


async def rows(schema: str) -> int:
    conn = await asyncpg.connect(
        "postgresql://postgres@127.0.0.1:5432/test", server_settings={"search_path": schema}
    )
    try:
        return int(await conn.fetchval("SELECT count(*) FROM feature_computation_metrics"))
    finally:
        await conn.close()


async def feed_seconds(rt: Runtime, start_s: int, seconds: int) -> None:
    clock = rt.live.clock
    for s in range(start_s, start_s + seconds):
        clock.now = T0 + s * 1_000_000  # type: ignore[attr-defined]
        trade = ev.trade(clock.now, s)  # type: ignore[attr-defined]
        await rt.bus.publish("", ev.body(trade), routing_key=rt.settings.queue_trade)
        done = s + 1
        await wait_until(lambda n=done: rt.engine.events_processed == n, 10, f"trade {s}")


async def test_features_keep_flowing_with_postgresql_blackholed(tmp_path: Path) -> None:
    schema = await create_schema()
    proxy = await BlackholeProxy("127.0.0.1", 5432).start()
    url = proxy.url("postgresql://postgres@127.0.0.1:{port}/test") + f"?search_path={schema}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=url,
        replay_enabled=False,
        intervals=[1],
        raw_flush_age_s=0.05,
        metrics_flush_s=0.1,
    )
    rt = Runtime(settings)
    rt.live.clock = ManualClock(T0)
    try:
        await rt.start()
        conn = await asyncpg.connect(
            "postgresql://postgres@127.0.0.1:5432/test", server_settings={"search_path": schema}
        )
        try:  # as ws-gateway applies it (idempotent when the runner applied it already)
            await conn.execute((repo_migrations_dir() / MIGRATION).read_text())
        finally:
            await conn.close()
        await feed_seconds(rt, 0, 5)
        await wait_until(lambda: rt.metrics_writer.counts[
            ("feature_computation_metrics", "written")] >= 3, 15, "rows written")  # fmt: skip
        assert await rows(schema) >= 3

        proxy.blackhole()
        before = rt.live.stats.last_vector_us
        loop = asyncio.get_running_loop()
        started = loop.time()
        await feed_seconds(rt, 5, 20)
        elapsed = loop.time() - started
        # Twenty more vectors, each computed as its boundary passed, none waiting on the database.
        assert rt.live.stats.last_vector_us == T0 + 24 * 1_000_000
        assert before is not None and rt.live.stats.last_vector_us > before
        assert rt.live.latest_vector("BTCUSDT", 1) is not None
        assert elapsed < 60  # bounded by the wait_until limits, not a speed claim
        await wait_until(
            lambda: rt.metrics_writer.counts[("feature_computation_metrics", "failed")] > 0,
            30,
            "the blackholed write to be counted as failed",
        )
    finally:
        await proxy.close()  # every socket closed: the clients fail fast from here on
        await asyncio.wait_for(rt.stop(), 60)
        await drop_schema(schema)
