"""Optional own-execution consumer: stored raw (kind executions), never fed to features, bad
bodies dead-lettered. Runs on the in-process bus, which the bus contract suite ties to RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq

from feature_service.config import Settings
from feature_service.services.runtime import Runtime
from tests.fixtures.waiting import wait_until


async def test_executions_are_stored_and_not_featurised(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        replay_enabled=False,
        consume_orders=True,
        raw_flush_age_s=0.1,
    )
    runtime = Runtime(settings)
    await runtime.start()
    order = {
        "event_id": "e-1",
        "event_type": "order",
        "topic": "order",
        "timestamp": "2026-11-25T10:00:00.100000",
        "received_at": "2026-11-25T10:00:00.105000",
        "payload": {"symbol": "BTCUSDT", "orderId": "o-1", "side": "Buy", "qty": "0.01"},
        "trace_id": "t-1",
    }
    try:
        await runtime.bus.publish("", orjson.dumps(order), routing_key="ws-gateway.order")
        await runtime.bus.publish("", b"[1, 2]", routing_key="ws-gateway.order")
        await wait_until(
            lambda: sum(runtime.raw_writer.stats.rows_written.values()) >= 1, 10, "stored"
        )
        await wait_until(lambda: sum(runtime.live.stats.rejected.values()) == 1, 10, "reject")
    finally:
        await runtime.stop()
    (part,) = list((tmp_path / "raw" / "executions").rglob("*.parquet"))
    table = pq.read_table(part).to_pylist()
    assert [(r["symbol"], r["event_id"], r["trace_id"]) for r in table] == [
        ("BTCUSDT", "e-1", "t-1")
    ]
    assert orjson.loads(table[0]["raw"]) == order
    assert runtime.engine.events_processed == 0
    assert runtime.live.stats.rejected[("ws-gateway.order", "not_an_object")] == 1
