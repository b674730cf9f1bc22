"""No loss across crashes: the service is killed with SIGKILL mid-stream and restarted; every
published message ends up in Parquet exactly once on read, and every file is readable.

This drives the real `feature-service serve` process against the real RabbitMQ: messages are
acknowledged only after the batch holding them is durably on disk, so whatever the killed process
had not stored is redelivered to the next one, and the reader drops the duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore.reader import RawReader
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.market_messages import envelope_trade
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

# The current minute: recent enough for retention and for the parser's time window.
BASE_MS = time.time_ns() // 60_000_000_000 * 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """`feature-service serve` as a child process with its own data dir and queue names."""

    def __init__(self, data_dir: Path, broker: Broker) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "FEATURE_SERVICE_RABBITMQ_URL": rabbitmq_url(),
            "FEATURE_SERVICE_DATA_DIR": str(data_dir),
            "FEATURE_SERVICE_PORT": str(self.port),
            "FEATURE_SERVICE_RAW_FLUSH_AGE_S": "0.3",
            "FEATURE_SERVICE_RAW_FLUSH_ROWS": "500",
            "FEATURE_SERVICE_PREFETCH": "2000",
            "FEATURE_SERVICE_LOG_FORMAT": "json",
            "FEATURE_SERVICE_LOG_LEVEL": "WARNING",
            **broker.names.env(),
        }
        self.log = data_dir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "feature-service"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(exe), "serve"], env=self.env, stdout=log, stderr=log)

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0)
                    return r.status_code == 200
                return False

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                if await ready():
                    return
                await asyncio.sleep(0.2)
        raise AssertionError(f"service did not become ready: {self.log.read_text()[-2000:]}")

    def consumed(self) -> int:
        """Messages consumed so far, from /metrics (0 while it does not answer)."""
        try:
            r = httpx.get(
                f"http://127.0.0.1:{self.port}/metrics",
                headers={"X-API-Key": "demo-key"},
                timeout=1.0,
            )
        except httpx.HTTPError:
            return 0
        total = 0.0
        for line in r.text.splitlines():
            if line.startswith("feature_service_messages_consumed_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def service_factory(tmp_path: Path, broker: Broker) -> Iterator[type]:
    started: list[ServiceProcess] = []

    def make() -> ServiceProcess:
        svc = ServiceProcess(tmp_path, broker)
        started.append(svc)
        return svc

    yield make  # type: ignore[misc]
    for svc in started:
        svc.stop()


def trade_message(i: int) -> dict[str, object]:
    t_ms = BASE_MS + i
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms / 1000)) + f".{t_ms % 1000:03d}000"
    return envelope_trade(
        price=f"{100000 + (i % 50) / 10:.1f}",
        size="0.001",
        side="Buy" if i % 3 else "Sell",
        trade_time_ms=t_ms,
        trade_id=f"trade-{i:06d}",
        event_id=f"00000000-0000-4000-8000-{i:012d}",
        timestamp=iso,
        received_at=iso,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, broker: Broker, service_factory, seed: int
) -> None:
    rng = random.Random(seed)
    n = 6000
    await broker.declare_inputs()
    first = service_factory()
    first.start()
    await first.wait_ready()

    queue = broker.names.input("trade")
    kill_after = rng.randint(n // 5, 4 * n // 5)

    async def publish(start: int, stop: int) -> None:
        for i in range(start, stop):
            await broker.publish(queue, trade_message(i))
            if i % 200 == 0:
                await asyncio.sleep(0.02)  # a paced stream, not one burst

    await publish(0, kill_after)
    raw = tmp_path / "raw"
    await wait_until(lambda: any(raw.rglob("*.parquet")), 30, "a first stored batch")
    first.kill()  # mid-stream: consumed, partly stored, partly acknowledged
    stored_before = sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet"))
    assert 0 < stored_before < n
    second = service_factory()
    second.start()
    await publish(kill_after, n)  # the stream goes on while the service restarts
    await second.wait_ready()

    def stored_keys() -> list[str]:
        return [r.raw for r in RawReader(raw).iter_records(kinds=["trades"], symbols=["BTCUSDT"])]

    await wait_until(lambda: len(stored_keys()) >= n, 90, f"{n} stored messages")
    second.stop()

    records = list(RawReader(raw).iter_records(kinds=["trades"], symbols=["BTCUSDT"]))
    events = list(RawReader(raw).iter_events(kinds=["trades"], symbols=["BTCUSDT"]))
    assert len(records) == n
    ids = sorted(e.trade_id for e in events)
    assert ids == [f"trade-{i:06d}" for i in range(n)]
    for path in raw.rglob("*.parquet"):
        assert pq.read_table(path).num_rows > 0, path
    assert await broker.message_count(queue) == 0


async def test_sigterm_stops_consuming_flushes_and_acks_everything_it_took(
    tmp_path: Path, broker: Broker, service_factory
) -> None:
    """Graceful shutdown: every message the process took is stored and acknowledged before it
    exits, so nothing is lost and nothing is stored twice by the next process."""
    n = 3000
    await broker.declare_inputs()
    first = service_factory()
    first.env["FEATURE_SERVICE_RAW_FLUSH_AGE_S"] = "30"  # only the shutdown flush writes
    first.env["FEATURE_SERVICE_RAW_FLUSH_ROWS"] = "100000"
    first.start()
    await first.wait_ready()
    queue = broker.names.input("trade")
    for i in range(n):
        await broker.publish(queue, trade_message(i))
    raw = tmp_path / "raw"
    await wait_until(lambda: first.consumed() > 0, 30, "consumption started")
    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM.
    assert first.proc.wait(timeout=60) in (0, -signal.SIGTERM), first.log.read_text()[-3000:]
    stored = sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet"))
    left = await broker.ready_count(queue)
    assert stored > 0, "nothing was flushed at shutdown"
    assert stored + left == n, f"stored {stored} + still queued {left} != {n}"

    second = service_factory()
    second.start()
    await second.wait_ready()
    await wait_until(
        lambda: sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet")) >= n,
        90,
        "the rest stored",
    )
    second.stop()
    physical = sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet"))
    assert physical == n, "a message stored by the first process was delivered again"
    ids = sorted(e.trade_id for e in RawReader(raw).iter_events(kinds=["trades"]))
    assert ids == [f"trade-{i:06d}" for i in range(n)]
