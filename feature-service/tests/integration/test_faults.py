"""Real faults against the live service (issue 9): RabbitMQ and PostgreSQL cut (connection
refused) and blackholed (connections open, nothing forwarded) through a TCP proxy, and poison
messages of every class mixed into a valid stream with prefetch 5.

Each fault is real: the service talks to the proxy, the proxy to the real server; the test's own
publisher and reader talk to RabbitMQ directly, so the stream goes on during the fault."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.config import Settings
from feature_service.market.events import Trade
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.market_messages import envelope_kline, envelope_orderbook, envelope_trade
from tests.fixtures.metadata import create_schema, drop_schema, postgres_url
from tests.fixtures.tcp_proxy import TcpProxy
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def rabbit_proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5672) as proxy:
        yield proxy


def _settings(tmp_path: Path, broker: Broker, url: str, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=url,
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        intervals=[1],
        rabbitmq_heartbeat_s=2,
        publish_timeout_s=2.0,
        **broker.names.settings(),
        **extra,
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def trade(i: int, t_ms: int, symbol: str = "BTCUSDT", **payload: Any) -> dict[str, Any]:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms / 1000)) + f".{t_ms % 1000:03d}000"
    env = envelope_trade(
        symbol,
        price=f"{100000 + (i % 50) / 10:.1f}",
        size="0.001",
        trade_time_ms=t_ms,
        trade_id=f"trade-{i:06d}",
        event_id=f"00000000-0000-4000-8000-{i:012d}",
        timestamp=iso,
        received_at=iso,
    )
    env["payload"].update(payload)
    return env


def stored_trade_ids(root: Path) -> list[str]:
    return [e.trade_id for e in RawReader(root).iter_events() if isinstance(e, Trade)]


async def _vector_ids(broker: Broker, queue: Any) -> list[str]:
    out = []
    while (msg := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(msg.message_id)
    return out


async def _wait_health(runtime: Runtime, check: str, ok: bool, limit_s: float) -> float:
    """Seconds until ``check`` reads ``ok``."""
    started = time.monotonic()

    async def probe() -> bool:
        return bool((await runtime.health_checks())[check]["ok"]) is ok

    while not await probe():
        assert time.monotonic() - started < limit_s, f"{check} never became ok={ok}"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
async def test_broker_fault_mid_stream_recovers_loses_nothing_and_publishes_once(
    tmp_path: Path, broker: Broker, rabbit_proxy: TcpProxy, fault: str
) -> None:
    await broker.declare_inputs()
    url = f"amqp://guest:guest@127.0.0.1:{rabbit_proxy.port}/?reconnect_interval=0.5"
    runtime = Runtime(_settings(tmp_path, broker, url))
    await runtime.start()
    reader = await broker.bind_reader()
    queue = broker.names.input("trade")
    base = _now_ms()
    try:
        for i in range(50):
            await broker.publish(queue, trade(i, base + i))
        await wait_until(lambda: len(stored_trade_ids(tmp_path / "raw")) == 50, 30, "stored")
        assert (await runtime.health_checks())["bus"]["ok"]

        rabbit_proxy.set_mode(fault)  # type: ignore[arg-type]
        for i in range(50, 150):  # the stream goes on at the broker meanwhile
            await broker.publish(queue, trade(i, _now_ms()))
            await asyncio.sleep(0.01)
        # Readiness tells the truth during the fault: a cut at once, a blackhole through the
        # missed heartbeats or the stuck publish confirms.
        await _wait_health(runtime, "bus", False, 30)

        rabbit_proxy.set_mode("pass")
        await _wait_health(runtime, "bus", True, 60)
        await wait_until(
            lambda: len(set(stored_trade_ids(tmp_path / "raw"))) == 150, 60, "all stored"
        )
        await asyncio.sleep(1.5)  # a few vectors after the recovery
    finally:
        await runtime.stop()

    ids = stored_trade_ids(tmp_path / "raw")
    assert sorted(ids) == [f"trade-{i:06d}" for i in range(150)]  # 0 lost, 0 duplicated
    assert await broker.ready_count(queue) == 0  # everything acknowledged
    vectors = await _vector_ids(broker, reader)
    duplicates = [k for k, n in Counter(vectors).items() if n > 1]
    assert vectors and duplicates == [], "at most one vector per (symbol, interval, boundary)"


POISON: list[tuple[str, Any, str]] = [
    # its topic "publicTrade.../../etc" is already garbled: refused there
    ("path symbol", lambda i, t: trade(i, t, "../../etc"), "unknown_topic"),
    ("path symbol in payload only", lambda i, t: trade(i, t, s="../../etc"), "bad_symbol"),
    ("slash symbol", lambda i, t: trade(i, t, "BTC/USDT"), "bad_symbol"),
    ("blank symbol", lambda i, t: trade(i, t, "BTC USDT"), "bad_symbol"),
    ("non-ascii symbol", lambda i, t: trade(i, t, "BTCUSDТ"), "bad_symbol"),
    ("300-char symbol", lambda i, t: trade(i, t, "A" * 300), "bad_symbol"),
    ("full-width digits", lambda i, t: trade(i, t, p="１２"), "bad_number"),
    ("1e308 price", lambda i, t: trade(i, t, p="1e308"), "out_of_range"),
    ("1e-320 size", lambda i, t: trade(i, t, v="1e-320"), "out_of_range"),
    ("year 9999", lambda i, t: {**trade(i, t), "timestamp": "9999-12-31T00:00:00"},
     "bad_timestamp"),
    ("5 MB body", lambda i, t: {**trade(i, t), "pad": "x" * 5_000_000}, "too_large"),
]  # fmt: skip


def _book(u: int, t_ms: int, kind: str, bid: str, ask: str) -> dict[str, Any]:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms / 1000)) + f".{t_ms % 1000:03d}000"
    return envelope_orderbook(
        "BTCUSDT", bids=[[bid, "1"]], asks=[[ask, "1"]], u=u, type=kind, seq=None,
        timestamp=iso, received_at=iso,
        # ws-gateway gives every message its own event_id; the ingest sequencer dedups on it
        event_id=f"book-{kind}-{u}-{t_ms}",
    )  # fmt: skip


async def test_poison_messages_are_dead_lettered_and_every_valid_one_is_stored_and_applied(
    tmp_path: Path, broker: Broker
) -> None:
    from tests.fixtures.bus import rabbitmq_url

    await broker.declare_inputs()
    runtime = Runtime(_settings(tmp_path, broker, rabbitmq_url(), prefetch=5))
    await runtime.start()
    base = _now_ms()
    trades = broker.names.input("trade")
    books = broker.names.input("orderbook")
    klines = broker.names.input("kline")
    expected_reasons: Counter[str] = Counter()
    try:
        # Five poison messages first (the reported stall: prefetch 5 and 100 good ones behind).
        for n, (_, build, reason) in enumerate(POISON):
            await broker.publish(trades, orjson.dumps(build(10_000 + n, base)))
            expected_reasons[reason] += 1
        for i in range(100):
            await broker.publish(trades, trade(i, base + i))
        # A string u, an inconsistent kline and a far-ahead u on the book stream.
        await broker.publish(books, _book(100, base, "snapshot", "99999.0", "100001.0"))
        string_u = _book(101, base, "delta", "99999.5", "100001.0")
        string_u["payload"]["u"] = "101"
        await broker.publish(books, string_u)
        expected_reasons["bad_number"] += 1
        await broker.publish(books, _book(10**9, base + 1, "delta", "99990.0", "100001.0"))
        for u in range(101, 111):  # the valid sequence goes on from 100
            bid = f"{99999 + u / 1000}"
            await broker.publish(books, _book(u, base + 2 + u, "delta", bid, "100001.0"))
        start = base // 60_000 * 60_000 - 60_000
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base / 1000))
        kline = envelope_kline(
            "BTCUSDT", start_ms=start, end_ms=start + 59_999, high="90000", low="100000",
            timestamp=iso, received_at=iso,
        )  # fmt: skip
        await broker.publish(klines, kline)
        expected_reasons["inconsistent"] += 1

        total_bad = sum(expected_reasons.values())
        await wait_until(
            lambda: sum(runtime.live.stats.rejected.values()) >= total_bad, 60, "rejections"
        )
        await wait_until(
            lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= 100 + 1 + 1 + 10,
            60,
            "valid messages stored",
        )
        book = runtime.engine.states["BTCUSDT"].book
    finally:
        await runtime.stop()

    dead = await broker.drain(broker.names.dead_letter, idle_s=0.3)
    assert Counter(m.headers["x-reject-reason"] for m in dead) == expected_reasons
    assert sorted(stored_trade_ids(tmp_path / "raw")) == [f"trade-{i:06d}" for i in range(100)]
    for kind in ("trade", "orderbook", "kline"):
        assert await broker.ready_count(broker.names.input(kind)) == 0
    # The far-ahead u was a gap, not a new baseline: the valid deltas after it were applied.
    assert book.update_id == 110 and book.usable


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
async def test_postgres_fault_gives_bounded_503_while_live_vectors_keep_flowing(
    tmp_path: Path, broker: Broker, fault: str
) -> None:
    import httpx

    from feature_service.app import create_app
    from tests.fixtures.bus import rabbitmq_url

    schema = await create_schema()
    pg = postgres_url()
    host_port = pg.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    await broker.declare_inputs()
    with TcpProxy(host or "127.0.0.1", int(port or 5432)) as proxy:
        url = pg.replace(host_port, f"127.0.0.1:{proxy.port}")
        sep = "&" if "?" in url else "?"
        settings = _settings(
            tmp_path,
            broker,
            rabbitmq_url(),
            database_url=f"{url}{sep}search_path={schema}",
            db_timeout_s=2.0,
            health_timeout_s=1.0,
            api_keys=["k"],
        )
        runtime = Runtime(settings)
        app = create_app(settings, runtime)
        transport = httpx.ASGITransport(app=app)
        queue = broker.names.input("trade")
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://t") as client,
            ):
                h = {"X-API-Key": "k"}
                assert (await client.get("/dataset/list", headers=h)).status_code == 200
                proxy.set_mode(fault)  # type: ignore[arg-type]
                started = time.monotonic()
                r = await client.get("/dataset/list", headers=h)
                elapsed = time.monotonic() - started
                assert r.status_code == 503 and r.headers["Retry-After"]
                assert elapsed < 10, f"took {elapsed:.1f} s: not bounded by db_timeout_s"
                health = await client.get("/health")
                assert health.status_code == 503
                assert health.json()["services"]["database"] == "disconnected"
                # Live vectors keep flowing meanwhile.
                before = runtime.live.stats.last_vector_us or 0
                for i in range(20):
                    await broker.publish(queue, trade(i, _now_ms()))
                await wait_until(
                    lambda: (runtime.live.stats.last_vector_us or 0) > before, 20, "vectors"
                )
                proxy.set_mode("pass")
                deadline = time.monotonic() + 60
                while (await client.get("/dataset/list", headers=h)).status_code != 200:
                    assert time.monotonic() < deadline, "no recovery without a restart"
                    await asyncio.sleep(0.5)
        finally:
            await drop_schema(schema)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the raw folder (real ENOSPC). Needs root; without mount rights the
    test says so and fails rather than skipping silently."""
    import subprocess

    mount = tmp_path / "raw"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (root needed): {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_full_disk_pauses_consumption_reports_it_and_resumes_exactly_once(
    tmp_path: Path, broker: Broker, tiny_disk: Path
) -> None:
    from feature_service.services.identity import validate_identity
    from tests.fixtures.bus import rabbitmq_url

    await broker.declare_inputs()
    runtime = Runtime(_settings(tmp_path, broker, rabbitmq_url(), prefetch=50))
    runtime.raw_writer.retry_max_s = 0.5
    await runtime.start()
    queue = broker.names.input("trade")
    base = _now_ms()
    filler = tiny_disk / "filler"
    try:
        for i in range(20):
            await broker.publish(queue, trade(i, base + i))
        await wait_until(lambda: len(stored_trade_ids(tiny_disk)) == 20, 30, "first stored")

        # Fill the disk to the last byte: every write now fails with ENOSPC.
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            for chunk in (65536, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)
        for i in range(20, 400):
            await broker.publish(queue, trade(i, _now_ms()))
        await _wait_health(runtime, "raw_storage", False, 30)
        checks = await runtime.health_checks()
        assert "No space left" in checks["raw_storage"]["reason"]
        assert checks["raw_storage"]["consumption_paused"] is True
        # Paused: the rest waits at the broker instead of being taken and held.
        await asyncio.sleep(1.0)
        assert await broker.ready_count(queue) > 0
        assert runtime.raw_writer.stats.retries_failed >= 1

        filler.unlink()  # space is back: no restart, it resumes by itself
        await _wait_health(runtime, "raw_storage", True, 30)
        await wait_until(lambda: len(stored_trade_ids(tiny_disk)) >= 400, 60, "all stored")
        await asyncio.sleep(1.5)
    finally:
        await runtime.stop()

    ids = stored_trade_ids(tiny_disk)
    assert sorted(ids) == [f"trade-{i:06d}" for i in range(400)]  # exactly once, none lost
    assert runtime.engine.events_processed == 400  # nothing applied twice
    assert await broker.ready_count(queue) == 0
    report = validate_identity(
        tiny_disk,
        tmp_path / "features",
        symbol="BTCUSDT",
        interval_s=1,
        start_us=0,
        end_us=2**62,
        intervals_s=[1],
    )
    assert report.ok and report.compared > 0, report.as_dict()
