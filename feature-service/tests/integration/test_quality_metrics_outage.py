"""A PostgreSQL outage (a blackholed connection through the TCP proxy) while the quality
recorder writes ``data_quality_metrics``: the write waits in its own task, every vector is still
computed as its events arrive, the rows stay buffered, and they reach the table once the path is
back (T197, T201: metrics written off the hot path)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import orjson

from feature_service.adapters.metadata.factory import create_metadata_store
from feature_service.adapters.qualitystore import QualityStore
from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine
from feature_service.market.recording import event_to_envelope
from feature_service.services.quality_live import QualityRecorder
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S
from tests.fixtures.metadata import create_schema, drop_schema, postgres_url, repo_migrations_dir
from tests.fixtures.tcp_proxy import TcpProxy


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 0.0


def feed(live: LiveEngine, clock: Clock, events: list) -> None:
    for event in events:
        clock.now = event.receive_ts
        live.ingest(orjson.dumps(event_to_envelope(event)), "ws-gateway.orderbook")


async def _count_rows(schema: str) -> int:
    conn = await asyncpg.connect(postgres_url(), server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM data_quality_metrics"))
    finally:
        await conn.close()


async def test_blackholed_database_never_holds_up_vectors(tmp_path: Path) -> None:
    schema = await create_schema()
    pg = postgres_url()
    host_port = pg.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with TcpProxy(host or "127.0.0.1", int(port or 5432)) as proxy:
            url = pg.replace(host_port, f"127.0.0.1:{proxy.port}")
            sep = "&" if "?" in url else "?"
            store = create_metadata_store(
                f"{url}{sep}search_path={schema}",
                tmp_path / "unused.sqlite",
                repo_migrations_dir(),
                timeout_s=5.0,
            )
            await store.connect()
            await store.upgrade()
            clock = Clock()
            engine = FeatureEngine(intervals_s=[1])
            live = LiveEngine(engine, clock)
            recorder = QualityRecorder(
                engine.quality, QualityStore(tmp_path / "quality"), clock.now_us, store=store,
                symbols=[dq.SYMBOL], db_timeout_s=60.0,
            )  # fmt: skip
            events = dq.clean_stream(minutes=6)
            first = [e for e in events if e.receive_ts < T0 + 2 * MINUTE]
            rest = events[len(first) :]
            feed(live, clock, first)
            await recorder.cycle()
            written = recorder.rows_written
            assert written == 1 and await _count_rows(schema) == 1  # minute 0 (1 still open)

            proxy.set_mode("blackhole")
            feed(live, clock, [e for e in rest if e.receive_ts < T0 + 4 * MINUTE])
            pending = asyncio.create_task(recorder.cycle())  # its insert now waits on silence
            for _ in range(20):
                await asyncio.sleep(0)
            vectors_before = engine.vectors_emitted
            later = [e for e in rest if e.receive_ts >= T0 + 4 * MINUTE]
            for i in range(0, len(later), 50):  # the event loop turns between batches
                feed(live, clock, later[i : i + 50])
                await asyncio.sleep(0)
            # Every 1 s boundary from 4:00 up to the last event closed while the write waited.
            last = later[-1].receive_ts
            closed = (last - last % S - (T0 + 4 * MINUTE)) // S + 1
            assert engine.vectors_emitted - vectors_before == closed
            assert not pending.done()  # still waiting for the database: off the hot path
            assert recorder.rows_written == written

            proxy.set_mode("pass")
            pending.cancel()  # the blackholed connection may stay stuck: as the timeout would
            await asyncio.gather(pending, return_exceptions=True)
            clock.now = last + 2 * MINUTE
            await recorder.cycle()
            # Minutes 1..6 (the last one finished by the clock), none lost to the outage.
            assert recorder.rows_written == written + 6
            assert await _count_rows(schema) == 7
            await store.close()
    finally:
        await drop_schema(schema)
