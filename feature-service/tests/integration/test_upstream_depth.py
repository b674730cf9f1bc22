"""The service on a depth-1 upstream, end to end: what /health says, and the REST depth source
against a local fake Bybit REST server (depth features computed, stored in the raw store, and
reproduced bit for bit by an offline rebuild from it).

The stream is what ws-gateway delivers for ``orderbook.1``: snapshots of one level a side.
The in-process bus carries it (this is about the book, not the broker).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.vectorstore import read_archived
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.engine.core import FeatureEngine
from feature_service.features.depth import LEVELS_NEEDED
from feature_service.market.events import BookSnapshot
from feature_service.market.timeutil import format_iso_us
from feature_service.services.identity import validate_identity
from feature_service.services.runtime import Runtime
from tests.fixtures.fake_bybit import FakeBybit
from tests.fixtures.market_messages import envelope_orderbook, to_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEPTH_FEATURES = list(LEVELS_NEEDED)
QUEUE = "ws-gateway.orderbook"


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        replay_enabled=False,
        raw_flush_age_s=0.2,
        compact_after_days=None,
        **overrides,
    )


class Service:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.http = http
        self.u = 0

    async def publish_depth_1(self, bid: float = 100.0) -> None:
        """One orderbook.1 snapshot, as ws-gateway publishes it."""
        self.u += 1
        now = format_iso_us(time.time_ns() // 1000)
        message = envelope_orderbook(
            bids=[(bid, 2.0)], asks=[(bid + 0.5, 3.0)], depth=1, u=self.u,
            timestamp=now, received_at=now,
        )  # fmt: skip
        await self.runtime.bus.publish("", to_bytes(message), routing_key=QUEUE)

    async def feed_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.publish_depth_1()
            await asyncio.sleep(0.1)

    def latest(self) -> Any:
        return self.runtime.live.latest_vector("BTCUSDT", 1)


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[Service]:
    runtime = Runtime(settings)
    await runtime.start()
    app = create_app(settings, runtime)
    app.state.runtime = runtime
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Service(runtime, http)
    finally:
        await runtime.stop()


async def test_a_depth_1_stream_is_named_in_health_and_the_log(tmp_path: Path) -> None:
    async with _service(_settings(tmp_path)) as service:
        await service.feed_for(2.5)
        vector = service.latest()
        assert vector is not None and vector.features["mid_price"] == 100.25
        assert {vector.null_reasons[n] for n in DEPTH_FEATURES} == {"stream_depth_limited"}
        assert vector.depth_age_ms is None

        r = await service.http.get("/health")
        assert r.status_code == 200  # a limitation is a warning, not a failure
        body = r.json()
        assert body["status"] == "healthy"
        depth = body["checks"]["book_depth"]
        assert depth["ok"] is True and depth["limited_symbols"] == ["BTCUSDT"]
        assert depth["symbols"]["BTCUSDT"]["stream_depth"] == 1
        assert depth["symbols"]["BTCUSDT"]["unavailable_features"] == DEPTH_FEATURES
        assert "has depth 1" in depth["warnings"][0]
        assert "depth_imbalance_top5" in depth["warnings"][0]
        assert service.runtime.depth_status()["symbols"] == depth["symbols"]
        stats = await service.http.get("/stats/rolling-windows", headers={"X-API-Key": "demo-key"})
        [row] = stats.json()
        assert row["book_depth"]["stream_depth"] == 1
        assert row["book_depth"]["unavailable_features"] == DEPTH_FEATURES
        assert row["book_depth"]["reason"] == "stream_depth_limited"

        with capture_logs() as logs:
            service.runtime.depth_watch.check(service.runtime.depth_status())
        [logged] = [e for e in logs if e["event"] == "orderbook_depth_limited"]
        assert logged["symbol"] == "BTCUSDT" and logged["stream_depth"] == 1


def _fake_depth(levels: int, side: str) -> dict[str, float]:
    """The fake Bybit book's depths, recomputed from its documented construction."""
    sizes = [float(f"{1 + i * 0.1:.3f}") for i in range(levels)]
    total5 = sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4]
    total10 = total5
    for size in sizes[5:10]:
        total10 += size
    return {f"depth_{side}_top5": total5, f"depth_{side}_top10": total10}


async def test_rest_depth_source_fills_the_depth_features_reproducibly(tmp_path: Path) -> None:
    fake = FakeBybit(now_ms=time.time_ns() // 1_000_000)
    fake.start()
    try:
        settings = _settings(
            tmp_path,
            depth_source="rest",
            bybit_rest_url=fake.base_url,
            depth_rest_interval_s=0.2,
            depth_rest_limit=50,
        )
        started_us = time.time_ns() // 1000
        async with _service(settings) as service:
            await service.feed_for(3.0)
            vector = service.latest()
            assert vector is not None
            features = vector.features
            assert features["mid_price"] == 100.25  # the stream's (the REST mid is 50000.25)
            for side in ("bid", "ask"):
                for name, value in _fake_depth(50, side).items():
                    assert features[name] == value, name
            assert features["depth_imbalance_top5"] == 0.0  # the fake's sides are symmetric
            assert not set(DEPTH_FEATURES) & set(vector.null_reasons)
            assert vector.depth_age_ms is not None and 0 < vector.depth_age_ms < 10_000
            depth = (await service.http.get("/health")).json()["checks"]["book_depth"]
            assert depth["symbols"]["BTCUSDT"]["depth_features_from"] == "rest"
            assert depth["warnings"] == []
            polls = depth["rest"]["symbols"]["BTCUSDT"]
            assert polls["requests"] >= 5 and polls["failures"] == 0
            assert service.runtime.live.stats.consumed["rest-depth"] == polls["requests"]
        requests = fake.request_count("/v5/market/orderbook")
        ended_us = time.time_ns() // 1000
    finally:
        fake.stop()
    # Polled at the configured cadence (0.2 s), not faster: about 15 in 3 s, never 30.
    assert 5 <= requests <= 25

    # Stored like any input: the REST snapshots are in the raw store, marked as such.
    raw = tmp_path / "raw"
    books = [
        e for e in RawReader(raw).iter_events(kinds=["snapshots"]) if isinstance(e, BookSnapshot)
    ]
    rest_books = [e for e in books if e.feed == "rest"]
    assert len(rest_books) >= 5 and all(e.topic == "orderbook.50.BTCUSDT" for e in rest_books)
    assert {e.depth for e in books if e.feed is None} == {1}

    # Reproduced bit for bit by an offline rebuild from the raw store.
    report = validate_identity(
        raw,
        settings.vectors_dir,
        symbol="BTCUSDT",
        interval_s=1,
        start_us=started_us - 1_000_000,
        end_us=ended_us,
        intervals_s=settings.intervals,
    )
    assert report.ok, report.as_dict()
    assert report.compared >= 2
    live = read_archived(settings.vectors_dir, "BTCUSDT", 1, started_us - 1_000_000, ended_us)
    offline = _offline_depth_ages(
        raw, settings.intervals, int(live["timestamp"].max().value // 1000)
    )
    compared = 0
    for ts, age in zip(
        live["timestamp"].dt.as_unit("us").astype("int64"), live["depth_age_ms"], strict=True
    ):
        expected = offline[int(ts)]
        assert (math.isnan(age) and expected is None) or age == expected
        compared += expected is not None
    assert compared >= 2


def _offline_depth_ages(raw: Path, intervals: list[int], last_us: int) -> dict[int, float | None]:
    engine = FeatureEngine(intervals_s=intervals)
    ages: dict[int, float | None] = {}
    vectors = []
    for event in RawReader(raw).iter_events(symbols=["BTCUSDT"]):
        vectors.extend(engine.process(event))
    vectors.extend(engine.advance_to(last_us))
    for vector in vectors:
        if vector.interval_s == 1:
            ages[vector.timestamp] = vector.depth_age_ms
    return ages
