"""Operations overhead: what telemetry and the metrics-table writer cost the live path.

- ``ops.telemetry per message``: ``Telemetry.on_message`` (message age histogram + sliding
  counts) per consumed message, against ``orjson.loads`` of the same message.
- ``ops.vector ...``: the live ingest path of the running service (parse, engine step, vector
  delivery with telemetry and the writer's queue append), per message that closed a boundary,
  with the metrics-table writer off, on (PostgreSQL) and with PostgreSQL blackholed (a loopback
  proxy that accepts and forwards nothing). The writer runs in the same event loop, flushing
  every 0.2 s, so its work competes with ingestion as it does in the service. The baseline of
  each row is the writer-off run of the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.blackhole import BlackholeProxy
from benchmarks.common import Result, compare, percentiles, result

PG = os.environ.get(
    "FEATURE_SERVICE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
T0 = 1_795_600_000_000_000
STEP_US = 100_000  # one trade every 100 ms: a 1 s boundary every 10 messages


def _trade_bodies(n: int) -> list[bytes]:
    from feature_service.market.events import Side, Trade
    from feature_service.market.recording import event_to_envelope

    def trade(ts: int, i: int) -> Trade:
        return Trade(
            symbol="BTCUSDT", topic="publicTrade.BTCUSDT", exchange_ts=ts - 9_000,
            gateway_ts=ts - 1_500, receive_ts=ts, event_id=f"ev-{i}", trace_id=f"tr-{i}",
            price=50_000.0 + (i % 17) * 0.1, size=0.01, side=Side.BUY if i % 2 else Side.SELL,
            trade_time=(ts // 1000 - 5) * 1000, trade_id=f"t-{i}", block_trade=False,
        )  # fmt: skip

    return [
        orjson.dumps(event_to_envelope(trade(T0 + i * STEP_US, i), include_service_time=False))
        for i in range(n)
    ]


def telemetry_rows(n: int) -> list[Result]:
    from feature_service.market.parsing import parse_message
    from feature_service.telemetry import Telemetry

    bodies = _trade_bodies(n)
    events = [parse_message(b, receive_ts=T0 + i * STEP_US) for i, b in enumerate(bodies)]
    tel = Telemetry()

    def observe() -> None:
        on = tel.on_message
        for i, evs in enumerate(events):
            on("ws-gateway.trade", evs, T0 + i * STEP_US)

    def loads() -> None:
        for body in bodies:
            orjson.loads(body)

    times = compare({"observe": observe, "loads": loads}, repeat=5)
    per = min(times["observe"]) / n * 1e9
    base = min(times["loads"]) / n * 1e9
    return [
        result(
            "ops.telemetry per message", per, "ns", "orjson.loads of the message", base,
            note="age histogram append + sliding minute count",
        )
    ]  # fmt: skip


class _NoTelemetry:
    """The live engine's telemetry calls, doing nothing: the baseline of the ingest row."""

    def on_message(self, *_args: object) -> None:
        pass

    def on_vectors(self, *_args: object) -> None:
        pass


def ingest_rows(n: int) -> list[Result]:
    """CPU per consumed message through ``LiveEngine.ingest`` (parse, engine step, vectors),
    with the telemetry calls and with them stubbed out."""
    from feature_service.engine.core import FeatureEngine
    from feature_service.engine.live import LiveEngine

    bodies = _trade_bodies(n)

    def make(telemetry: bool) -> Any:
        clock = _Clock(T0)
        live = LiveEngine(FeatureEngine(), clock)
        if not telemetry:
            live.telemetry = _NoTelemetry()  # type: ignore[assignment]
        return live, clock

    def runner(telemetry: bool) -> Any:
        def go() -> None:
            live, clock = make(telemetry)
            for i, body in enumerate(bodies):
                clock.now = T0 + i * STEP_US
                live.ingest(body, "ws-gateway.trade")

        return go

    times = compare({"on": runner(True), "off": runner(False)}, repeat=5)
    on, off = min(times["on"]) / n * 1e6, min(times["off"]) / n * 1e6
    return [
        result(
            "ops.ingest per message, telemetry on", on, "µs", "telemetry calls stubbed", off,
            note="trade messages; a vector every 10 (4 intervals)",
        )
    ]  # fmt: skip


class _Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


async def _schema(create: bool, name: str | None = None) -> str:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        if create:
            name = f"bench_ops_{os.getpid()}_{time.monotonic_ns() % 10**8}"
            await conn.execute(f'CREATE SCHEMA "{name}"')
        else:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()
    assert name is not None
    return name


async def _apply_026(schema: str) -> None:
    import asyncpg

    from feature_service.adapters.metadata.migrations import default_migrations_dir

    base = default_migrations_dir()
    assert base is not None
    sql = (base / "026_create_operations_metrics_tables.sql").read_text()
    conn = await asyncpg.connect(PG, server_settings={"search_path": schema})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def vector_run(mode: str, bodies: list[bytes]) -> dict[str, Any]:
    """Per-message ingest times (µs) of the messages that closed a boundary, in ``mode``."""
    from feature_service.config import Settings
    from feature_service.services.runtime import Runtime

    schema = proxy = None
    extra: dict[str, Any] = {"metrics_tables_enabled": mode != "off"}
    if mode != "off":
        schema = await _schema(True)
        url = PG
        if mode == "blackholed":
            proxy = await BlackholeProxy(
                "127.0.0.1", int(PG.rsplit(":", 1)[1].split("/")[0])
            ).start()
            url = proxy.url("postgresql://postgres@127.0.0.1:{port}/test")
        extra["database_url"] = f"{url}?search_path={schema}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(tmp),
            replay_enabled=False,
            raw_store_enabled=False,
            metrics_flush_s=0.2,
            metrics_write_timeout_s=0.5,
            **extra,
        )
        rt = Runtime(settings)
        clock = _Clock(T0)
        rt.live.clock = clock
        await rt.start()
        try:
            if schema is not None:
                await _apply_026(schema)
            if proxy is not None:
                proxy.blackhole()
            samples = []
            ingest = rt.live.ingest
            perf = time.perf_counter_ns
            emitted = rt.engine.vectors_emitted
            for i, body in enumerate(bodies):
                clock.now = T0 + i * STEP_US
                started = perf()
                ingest(body, "ws-gateway.trade")
                elapsed = perf() - started
                if rt.engine.vectors_emitted != emitted:
                    emitted = rt.engine.vectors_emitted
                    samples.append(elapsed / 1000.0)
                if i % 20 == 0:
                    await asyncio.sleep(0)  # the writer and publisher get their turns
                if i % 500 == 0:
                    await asyncio.sleep(0.002)
            counts = dict(rt.metrics_writer.outcomes())
        finally:
            if proxy is not None:
                await proxy.close()
            await asyncio.wait_for(rt.stop(), 60)
            if schema is not None:
                await _schema(False, schema)
    return {"samples": np.asarray(samples), "counts": counts}


async def vector_rows(n: int) -> list[Result]:
    bodies = _trade_bodies(n)
    runs = {mode: await vector_run(mode, bodies) for mode in ("off", "on", "blackholed")}
    base50, base99 = percentiles(runs["off"]["samples"])
    rows = []
    for mode in ("on", "blackholed"):
        p50, p99 = percentiles(runs[mode]["samples"])
        counts = runs[mode]["counts"]
        table = "feature_computation_metrics"
        note = (
            f"rows written {counts.get((table, 'written'), 0)}, failed "
            f"{counts.get((table, 'failed'), 0)}, dropped {counts.get((table, 'dropped'), 0)}"
            "; wall"
        )
        label = "writer on (PostgreSQL)" if mode == "on" else "PostgreSQL blackholed"
        rows.append(result(f"ops.vector p50, {label}", p50, "µs", "writer off p50", base50, note))
        rows.append(result(f"ops.vector p99, {label}", p99, "µs", "writer off p99", base99, note))
    return rows


def run(quick: bool) -> list[Result]:
    rows = telemetry_rows(2_000 if quick else 20_000)
    rows += ingest_rows(1_000 if quick else 10_000)
    with contextlib.suppress(KeyboardInterrupt):
        rows += asyncio.run(vector_rows(2_000 if quick else 20_000))
    return rows
