"""Memory: the demo's RSS over a long replay, and RSS per tracked symbol in production mode.

Demo: ``feature-service demo`` as a child process (in-process bus, bundled recording, nothing
consuming features.live), its replay clock at ``DEMO_SPEED`` x the wall, so 30 minutes of replay
pass in 30 / DEMO_SPEED wall minutes. RSS (VmRSS of the child) is read when the replay clock
has advanced 1 min and 30 min past the service start. Goal (issue 17): within 50 MB.

Production: the real ``Runtime`` over RabbitMQ in a child process, tracking 1 and then
``MANY_SYMBOLS`` symbols, each fed book deltas and trades (the live benchmark's feed) at
``RATE_PER_SYMBOL`` msgs/s; its service clock runs at ``PROD_SPEED`` x so the longest window
(1 h of trades) reaches its full span during the run: steady state in window span, at the
feed's density. Per-symbol RSS = (RSS(many) - RSS(1)) / (many - 1).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Result

DEMO_SPEED = 30.0
MANY_SYMBOLS = 4
RATE_PER_SYMBOL = 50.0
PROD_SPEED = 30.0
PROD_WALL_S = 122.0  # > 3600 / PROD_SPEED: every window spans its full length at the end


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(port: int, limit_s: float) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("demo did not answer /health")


def demo_rss(replay_minutes: tuple[float, float], speed: float) -> tuple[float, float]:
    """RSS (MB) of ``feature-service demo`` at the two replay times (minutes)."""
    exe = Path(sys.executable).with_name("feature-service")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FEATURE_SERVICE_DATA_DIR": tmp,
            "FEATURE_SERVICE_PORT": str(port),
            "FEATURE_SERVICE_REPLAY_SPEED": str(speed),
            "FEATURE_SERVICE_LOG_LEVEL": "WARNING",
        }
        env.pop("FEATURE_SERVICE_RABBITMQ_URL", None)
        child = subprocess.Popen(
            [str(exe), "demo"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_health(port, 120)
            # The replay clock starts with the service, just before /health answers.
            started = time.monotonic()
            out = []
            for minutes in replay_minutes:
                due = started + minutes * 60 / speed
                time.sleep(max(0.0, due - time.monotonic()))
                out.append(rss_mb(child.pid))
        finally:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
    return out[0], out[1]


def _prod_child(pipe: Any, url: str, symbols: list[str], wall_s: float) -> None:
    try:
        asyncio.run(_prod_run(pipe, url, symbols, wall_s))
    except BaseException as exc:  # report to the parent instead of hanging it
        pipe.send(("error", repr(exc)))


async def _prod_run(pipe: Any, url: str, symbols: list[str], wall_s: float) -> None:
    import aio_pika

    from benchmarks.bench_live import Admin, Names, _settings, build_feed, quiet_service_logs
    from feature_service.engine.clocks import AcceleratedClock
    from feature_service.services.runtime import Runtime

    names = Names()
    admin = await Admin.open(url)
    await admin.declare_inputs(names)
    total = int(RATE_PER_SYMBOL * len(symbols) * wall_s)
    feed = build_feed(total, symbols=symbols)
    with quiet_service_logs(), tempfile.TemporaryDirectory() as tmp:
        settings = _settings(url, names, Path(tmp)).model_copy(
            update={"symbols": symbols, "intervals": [1, 3, 15, 60]}
        )
        runtime = Runtime(settings)
        now = time.time_ns() // 1000
        runtime.live.clock = AcceleratedClock(PROD_SPEED, origin_us=now)
        await runtime.start()
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        try:
            started = time.monotonic()
            step = 1.0 / (RATE_PER_SYMBOL * len(symbols))
            sent = 0
            for i, message in enumerate(feed):
                due = started + i * step
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif time.monotonic() - started > wall_s:
                    break  # a busy machine: the run's length, not its message count, is fixed
                sent += 1
                body = message.body(runtime.live.clock.now_us())
                await channel.default_exchange.publish(
                    aio_pika.Message(body, headers=message.headers),
                    routing_key=names.input(message.kind),
                )
            await asyncio.sleep(2.0)
            # Answer before the clean-up: a slow shutdown must not lose the measurement.
            pipe.send(("ok", (rss_mb(os.getpid()), sent / len(feed))))
        finally:
            await connection.close()
            await runtime.stop()
            await admin.cleanup(names)
            await admin.close()


def prod_rss(url: str, symbols: list[str], wall_s: float) -> tuple[float, float]:
    """(RSS MB, share of the planned feed actually sent) of the service tracking symbols."""
    ctx = mp.get_context("spawn")
    parent, child_end = ctx.Pipe()
    process = ctx.Process(target=_prod_child, args=(child_end, url, symbols, wall_s))
    process.start()
    try:
        if not parent.poll(wall_s + 120):
            raise RuntimeError("production memory child did not answer")
        status, value = parent.recv()
    finally:
        process.join(60)
        if process.is_alive():
            process.kill()
    if status != "ok":
        raise RuntimeError(f"production memory child failed: {value}")
    return float(value[0]), float(value[1])


def run(quick: bool) -> list[Result]:
    from benchmarks.bench_live import SYMBOLS, rabbitmq_url

    minutes = (1.0, 5.0) if quick else (1.0, 30.0)
    at_1, at_30 = demo_rss(minutes, DEMO_SPEED)
    wall_s = 10.0 if quick else PROD_WALL_S
    many = list(SYMBOLS[:MANY_SYMBOLS])
    one, sent_one = prod_rss(rabbitmq_url(), many[:1], wall_s)
    several, sent_many = prod_rss(rabbitmq_url(), many, wall_s)
    per_symbol = max(0.01, (several - one) / (len(many) - 1))
    speed_note = f"replay at {DEMO_SPEED:g}x: {minutes[1]:g} min of replay in "
    speed_note += f"{minutes[1] * 60 / DEMO_SPEED:.0f} s wall; goal within 50 MB"
    return [
        Result(
            name="demo RSS at 1 min of replay",
            value=round(at_1, 1),
            unit="MB",
            note=f"feature-service demo, nothing consuming features.live; {speed_note}",
        ),
        Result(
            name=f"demo RSS at {minutes[1]:g} min of replay",
            value=round(at_30, 1),
            unit="MB",
            baseline="demo RSS at 1 min",
            baseline_value=round(at_1, 1),
            ratio=round(at_30 / at_1, 3),
            note=f"growth {at_30 - at_1:+.1f} MB; {speed_note}",
        ),
        Result(
            name="production RSS per tracked symbol (steady state)",
            value=round(per_symbol, 2),
            unit="MB",
            baseline=f"RSS tracking 1 symbol: {one:.1f} MB",
            baseline_value=round(one, 1),
            ratio=round(per_symbol / one, 4),
            note=(
                f"Runtime over RabbitMQ, 1 vs {len(many)} symbols at {RATE_PER_SYMBOL:g} "
                f"msgs/s each for {wall_s:g} s wall with the service clock at {PROD_SPEED:g}x "
                f"(windows at full 1 h span); {len(many)} symbols: {several:.1f} MB; feed "
                f"sent {sent_one:.0%} / {sent_many:.0%} of plan"
            ),
        ),
    ]
