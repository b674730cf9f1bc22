"""Book recovery over the real RabbitMQ with the local fake ws-gateway (T156, T157, SC-006): a
``u`` gap makes the service resubscribe the order book topic through the gateway's REST API;
the gateway (as Bybit does on subscribe) publishes a snapshot, and the book is usable from the
moment that snapshot is applied. A flapping stream gets fewer, spaced-out resubscriptions."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from feature_service.config import Settings
from feature_service.market.events import BookDelta, BookSnapshot
from feature_service.market.recording import event_to_envelope
from feature_service.quality.incidents import IncidentKind
from feature_service.quality.report import merge_incidents
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.fake_ws_gateway import FakeWsGateway
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration
SYMBOL = "BTCUSDT"
KEY = "gw-key"


class Exchange:
    """The order book topic as Bybit would serve it: deltas with consecutive u, a snapshot of
    the current state whenever the topic is subscribed."""

    def __init__(self, broker: Broker, loop: asyncio.AbstractEventLoop) -> None:
        self.broker = broker
        self.loop = loop
        self.u = 100
        self.snapshots: list[int] = []

    def _envelope(self, event: Any) -> dict[str, Any]:
        return event_to_envelope(event, include_service_time=False)

    def snapshot(self) -> dict[str, Any]:
        return self._envelope(
            BookSnapshot(
                symbol=SYMBOL,
                topic=f"orderbook.1.{SYMBOL}",
                exchange_ts=(now := time.time_ns() // 1000),
                gateway_ts=now,
                receive_ts=now,
                bids=[(100.0, 1.0)],
                asks=[(100.1, 1.0)],
                update_id=self.u,
                seq=self.u,
                depth=1,
            )
        )

    def delta(self, *, skip: int = 0) -> dict[str, Any]:
        self.u += 1 + skip
        return self._envelope(
            BookDelta(
                symbol=SYMBOL,
                topic=f"orderbook.1.{SYMBOL}",
                exchange_ts=(now := time.time_ns() // 1000),
                gateway_ts=now,
                receive_ts=now,
                bids=[(100.0, 1.0 + self.u % 7)],
                asks=[],
                update_id=self.u,
                seq=self.u,
                depth=1,
            )
        )

    def on_subscribe(self, row: dict[str, Any]) -> None:
        """Called in the fake gateway's thread when a subscription row is created."""
        if row["channel_type"] != "orderbook":
            return
        self.snapshots.append(self.u)
        future = asyncio.run_coroutine_threadsafe(
            self.broker.publish(self.broker.names.input("orderbook"), self.snapshot()), self.loop
        )
        future.result(10)


async def _start(tmp_path: Path, broker: Broker, gw: FakeWsGateway, **extra: Any) -> Runtime:
    await broker.declare_inputs()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        ws_gateway_url=gw.base_url,
        ws_gateway_api_key=KEY,
        symbols=[SYMBOL],
        quality_recorder_interval_s=3600.0,  # keep incidents in the monitor for the test
        **broker.names.settings(),
        **extra,
    )
    runtime = Runtime(settings)
    await runtime.start()
    return runtime


def _book(runtime: Runtime) -> Any:
    state = runtime.engine.states.get(SYMBOL)
    return None if state is None else state.book


async def test_gap_resubscribes_and_the_snapshot_restores_the_book(
    tmp_path: Path, broker: Broker
) -> None:
    with FakeWsGateway(api_key=KEY) as gw:
        exchange = Exchange(broker, asyncio.get_running_loop())
        gw.on_subscribe = exchange.on_subscribe
        runtime = await _start(tmp_path, broker, gw)
        try:
            # Start-up subscribes the topic: that first snapshot makes the book usable.
            await wait_until(lambda: (b := _book(runtime)) is not None and b.usable, 30, "sync")
            queue = broker.names.input("orderbook")
            for _ in range(3):
                await broker.publish(queue, exchange.delta())
            await broker.publish(queue, exchange.delta(skip=2))  # two updates lost
            await wait_until(lambda: len(exchange.snapshots) == 2, 30, "resubscription")
            await wait_until(lambda: _book(runtime).update_id == exchange.u, 30, "snapshot")
            assert _book(runtime).usable
            deletes = gw.requests_to("DELETE")
            assert len(deletes) == 1  # the old subscription row, then a new POST
            active = [r for r in gw.rows() if r["is_active"] and r["channel_type"] == "orderbook"]
            assert len(active) == 1 and active[0]["topic"] == f"orderbook.1.{SYMBOL}"
            # Deltas continue on the fresh book.
            await broker.publish(queue, exchange.delta())
            await wait_until(lambda: _book(runtime).update_id == exchange.u, 30, "next delta")
            assert _book(runtime).usable
            _, records = runtime.engine.quality.drain()
        finally:
            await runtime.stop()
    found = merge_incidents(records)
    assert [i.kind for i in found] == [IncidentKind.U_GAP, IncidentKind.BOOK_DESYNC]
    gap, desync = found
    assert gap.magnitude == 2
    # Usable at the snapshot's own receive time: the desync ends exactly when it is applied.
    assert desync.end_us is not None and desync.start_us == gap.start_us < desync.end_us
    assert runtime.resyncer.stats.sent == 1


async def test_flapping_stream_is_throttled(tmp_path: Path, broker: Broker) -> None:
    with FakeWsGateway(api_key=KEY) as gw:
        exchange = Exchange(broker, asyncio.get_running_loop())
        gw.on_subscribe = exchange.on_subscribe
        runtime = await _start(
            tmp_path, broker, gw, resync_min_interval_s=0.5, resync_max_interval_s=2.0
        )
        try:
            await wait_until(lambda: (b := _book(runtime)) is not None and b.usable, 30, "sync")
            queue = broker.names.input("orderbook")
            desyncs = 0
            for _ in range(6):  # a gap right after every recovery
                before = len(exchange.snapshots)
                await broker.publish(queue, exchange.delta(skip=1))
                desyncs += 1
                await wait_until(lambda b=before: len(exchange.snapshots) > b, 30, "resync")
                await wait_until(lambda: _book(runtime).update_id == exchange.u, 30, "snapshot")
        finally:
            await runtime.stop()
    stats = runtime.resyncer.stats
    assert stats.sent == desyncs and stats.delayed == desyncs - 1
    at = orderbook_posts(gw)[1:]  # the first one is the start-up subscription
    assert len(at) == desyncs
    # The spacing doubles from 0.5 s while it keeps flapping, capped at 2 s: lower bounds on
    # the gaps between requests (nothing here asserts how fast anything is).
    gaps = [b - a for a, b in itertools.pairwise(at)]
    # (0.7: each request's own round trips shift it a little against the spacing's origin)
    assert all(g >= 0.7 * s for g, s in zip(gaps, [1.0, 2.0, 2.0, 2.0, 2.0], strict=True)), gaps


def orderbook_posts(gw: FakeWsGateway) -> list[float]:
    return [r.at for r in gw.requests_to("POST") if r.body["channel_type"] == "orderbook"]
