"""Trace ids: a message's trace id reaches the log lines of its handling, its raw row and the
vector that includes it; a message without one gets a new one; foreign tracebacks are one line."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.bus import QueueSpec
from feature_service.config import Settings
from feature_service.logging import configure_logging
from feature_service.services.runtime import Runtime
from tests.fixtures import events as ev
from tests.fixtures.waiting import wait_until

T0 = 1_795_600_000_000_000 + 200_000  # 0.2 s past a whole second


class ManualClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


def captured(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr()
    return out.out + out.err


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    configure_logging("INFO", "json")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        replay_enabled=False,
        intervals=[1],
        raw_flush_age_s=0.05,
        latency_warning_ms=0.0,  # every computation logs a warning: a line to look for
    )
    rt = Runtime(settings)
    rt.live.clock = ManualClock(T0)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()
        configure_logging("INFO", "console")


async def send(rt: Runtime, body: bytes, trace: str | None) -> None:
    headers = {"trace_id": trace} if trace else {}
    queue = rt.settings.queue_trade
    await rt.bus.publish("", body, routing_key=queue, headers=headers)


def raw_traces(rt: Runtime) -> list[str | None]:
    out: list[str | None] = []
    for path in sorted(rt.settings.raw_dir.rglob("part-*.parquet")):
        out.extend(pq.read_table(path, columns=["trace_id"]).column("trace_id").to_pylist())
    return out


async def test_trace_id_reaches_log_lines_raw_row_and_vector(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = runtime
    first = ev.trade(T0, 0)
    first.trace_id = "trace-first"
    await send(rt, ev.body(first), first.trace_id)
    await wait_until(lambda: rt.engine.events_processed == 1, 10, "first trade")
    # The second message closes the boundary after the first: its handling computes a vector.
    rt.live.clock.now = T0 + 1_000_000
    second = ev.trade(T0 + 1_000_000, 1)
    second.trace_id = "trace-second"
    await send(rt, ev.body(second), second.trace_id)
    await wait_until(lambda: rt.engine.events_processed == 2, 10, "second trade")
    lines = log_lines(captured(capsys))
    slow = [line for line in lines if line["event"] == "feature_computation_slow"]
    assert slow and slow[0]["trace_id"] == "trace-second"
    vector = rt.live.latest_vector("BTCUSDT", 1)
    assert vector is not None and vector.trace_id == "trace-first"
    # The timer closes the next boundary: that vector includes the second message.
    rt.live.clock.now = T0 + 2_000_000
    rt.live.tick()
    vector = rt.live.latest_vector("BTCUSDT", 1)
    assert vector is not None and vector.trace_id == "trace-second"
    assert orjson.loads(vector_json(vector))["trace_id"] == "trace-second"
    await wait_until(lambda: len(raw_traces(rt)) == 2, 10, "raw rows")
    assert sorted(t or "" for t in raw_traces(rt)) == ["trace-first", "trace-second"]
    # features.live carries it in the body and as a header.
    published: list[Any] = []

    async def take(delivery: Any) -> None:
        published.append(delivery)
        await delivery.ack()

    consumer = await rt.bus.consume(QueueSpec(rt.settings.features_exchange), take)
    await wait_until(lambda: len(published) == 2, 10, "two published vectors")
    await consumer.cancel()
    last = published[-1]
    assert last.headers["trace_id"] == orjson.loads(last.body)["trace_id"] == "trace-second"


def vector_json(vector: Any) -> bytes:
    from feature_service.engine.live import vector_to_json

    return vector_to_json(vector)


async def test_message_without_trace_gets_a_new_one_everywhere(runtime: Runtime) -> None:
    rt = runtime
    event = ev.trade(T0, 0)
    event.trace_id = None
    await send(rt, ev.body(event), None)
    await wait_until(lambda: rt.engine.events_processed == 1, 10, "trade")
    rt.live.clock.now = T0 + 1_000_000
    rt.live.tick()
    vector = rt.live.latest_vector("BTCUSDT", 1)
    assert vector is not None and vector.trace_id is not None
    assert str(uuid.UUID(vector.trace_id)) == vector.trace_id
    await wait_until(lambda: len(raw_traces(rt)) == 1, 10, "raw row")
    assert raw_traces(rt) == [vector.trace_id]


async def test_rejected_message_logs_its_trace(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    await send(runtime, b"{not json", "trace-bad")
    await wait_until(lambda: sum(runtime.live.stats.rejected.values()) == 1, 10, "rejection")
    lines = log_lines(captured(capsys))
    [rejected] = [line for line in lines if line["event"] == "message_rejected"]
    assert rejected["trace_id"] == "trace-bad"


def test_foreign_traceback_becomes_one_structured_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    try:
        try:
            raise ConnectionResetError("Connection reset by peer")
        except ConnectionResetError:
            logging.getLogger("aiormq.connection").exception("Unexpected connection close")
        err = capsys.readouterr().err
    finally:
        configure_logging("INFO", "console")
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    record = json.loads(lines[0])
    assert record["event"] == "Unexpected connection close"
    assert record["error_type"] == "ConnectionResetError"
    assert record["error"] == "Connection reset by peer"
    assert record["logger"] == "aiormq.connection"
    assert "test_tracing.py" in record["error_at"]
