"""feature_service.client against the running service (uvicorn on a loopback port), embedded
and over RabbitMQ; everything it receives also parses with the Model Service's own models
(issue 15): vectors, dataset metadata while building and ready, the ready message. The Model
Service's default retraining request (30/7/1 days back to back, 23:59:59 ends, all features,
``latest``, classification), scaled to the 20 dense minutes of the bundled sample, builds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import uvicorn

from feature_service.adapters.bus import QueueSpec
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.app import create_app
from feature_service.client import (
    BadRequest,
    DatasetMetadata,
    FeatureServiceClient,
    NotFound,
    Unauthorized,
)
from feature_service.config import Settings
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.events import MarketEvent, event_type_of
from feature_service.market.recording import event_to_envelope, iter_recording
from feature_service.services.runtime import Runtime
from tests.fixtures.broker import Broker
from tests.fixtures.bus import rabbitmq_url
from tests.fixtures.market_messages import recent, shift_to_now
from tests.fixtures.model_service import Dataset, DatasetReadyMessage, FeatureVector

pytestmark = pytest.mark.integration

KEY = "demo-key"


def default_request(**overrides: Any) -> dict[str, Any]:
    """The Model Service's default shape on the sample's dense part (2025-01-28 01:00-01:20):
    train, validation and test back to back, each ending at :59 (inclusive in its reading),
    every feature, the registry named "latest", classification with horizon and threshold."""
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": "2025-01-28T01:00:00",
        "train_period_end": "2025-01-28T01:09:59",
        "validation_period_start": "2025-01-28T01:10:00",
        "validation_period_end": "2025-01-28T01:14:59",
        "test_period_start": "2025-01-28T01:15:00",
        "test_period_end": "2025-01-28T01:18:59",
        "target_config": {"type": "classification", "horizon": 60, "threshold": 0.001},
        "feature_registry_version": "latest",
        "output_format": "parquet",
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory: pytest.TempPathFactory, sample_path: Path) -> Path:
    root = tmp_path_factory.mktemp("client-data")
    events = list(iter_recording(sample_path))
    bodies = [orjson.dumps(event_to_envelope(e, include_service_time=False)) for e in events]
    RawWriterSync(root / "raw").write_events(events, bodies)
    return root


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]

    async def __aenter__(self) -> RunningService:
        self.task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 60
        while not self.server.started:
            if self.task.done() or time.monotonic() > deadline:
                raise AssertionError("the service did not start")
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


async def _first_latest(client: FeatureServiceClient, limit_s: float = 60) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return await client.latest("BTCUSDT", "1s")
        except NotFound:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.fixture
async def embedded(tmp_path: Path, sample_data: Path) -> AsyncIterator[RunningService]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        port=_port(),
        data_dir=sample_data,
        replay_speed=10.0,
        # The sample is dated in the past: keep retention from archiving it.
        retention_days=100_000,
        archive_retention_days=100_000,
        compact_after_days=None,
        dataset_ready_queue=f"ready-{tmp_path.name}",
    )
    async with RunningService(settings) as service:
        yield service


async def test_client_against_the_embedded_service(embedded: RunningService) -> None:
    ready_messages: list[bytes] = []
    got_ready = asyncio.Event()

    async def on_ready(delivery: Any) -> None:
        ready_messages.append(delivery.body)
        got_ready.set()
        await delivery.ack()

    ready_queue = embedded.settings.dataset_ready_queue
    await embedded.runtime.bus.consume(QueueSpec(ready_queue), on_ready)

    async with FeatureServiceClient(embedded.url, KEY) as client:
        vector = await _first_latest(client)
        FeatureVector.model_validate(vector.model_dump(mode="json"))
        assert vector.features["mid_price"] > 0
        assert set(vector.features) | set(vector.null_reasons) == set(FEATURE_NAMES)
        with pytest.raises(NotFound):
            await client.latest("ETHUSDT")

        seen: list[DatasetMetadata] = []
        meta = await client.build_dataset(
            default_request(), on_progress=seen.append, poll_interval_s=0.2, timeout_s=300
        )
        # Every state the client saw (queued/building, then ready) parses as the Model Service's
        # Dataset: id, status, periods, target_config, records, storage_path, times.
        for state in [*seen, meta]:
            Dataset.model_validate(state.model_dump(mode="json"))
        raw = (await client._http.get(f"/dataset/{meta.id}")).json()
        assert Dataset.model_validate(raw).id == meta.id and raw["dataset_id"] == str(meta.id)
        assert seen[0].status in ("building", "ready")
        assert meta.status == "ready"
        assert meta.feature_registry_version == "1.1.0"  # the concrete version, not "latest"
        assert min(meta.train_records, meta.validation_records, meta.test_records) > 0
        assert meta.storage_path

        train = await client.download(meta.id, "train")
        assert isinstance(train, pd.DataFrame) and len(train) == meta.train_records
        assert set(FEATURE_NAMES) <= set(train.columns)  # every feature column, NaN kept
        path = await client.download(meta.id, "test", embedded.settings.data_dir / "test.parquet")
        assert isinstance(path, Path)
        assert len(pd.read_parquet(path)) == meta.test_records
        listed = await client.list_datasets(status="ready")
        assert meta.id in [d.id for d in listed]

        # Today's conservative rule cannot fit a 1-day (here: 4-minute) test split.
        with pytest.raises(BadRequest) as refused:
            await client.build_dataset(default_request(embargo="max_lookback"))
        assert "leakage protection would empty" in refused.value.message
        with pytest.raises(NotFound):
            await client.download(meta.id, "validation", fold=3)

    await asyncio.wait_for(got_ready.wait(), 10)
    (message,) = [orjson.loads(b) for b in ready_messages]
    ready = DatasetReadyMessage.model_validate(message)
    assert ready.dataset_id == meta.id and ready.symbol == "BTCUSDT"
    assert ready.download_urls["train"].endswith(f"/dataset/{meta.id}/download?split=train")

    async with FeatureServiceClient(embedded.url, "wrong-key") as bad:
        with pytest.raises(Unauthorized):
            await bad.latest("BTCUSDT")


async def _feed(broker: Broker, events: list[MarketEvent]) -> None:
    shift = shift_to_now(events[-1].receive_ts)
    for event in events:
        kind = event_type_of(event).value
        await broker.publish(
            broker.names.input(kind),
            recent(event_to_envelope(event, include_service_time=False), shift),
        )


async def test_client_over_rabbitmq_reads_live_vectors(
    tmp_path: Path, broker: Broker, sample_events: list[MarketEvent]
) -> None:
    await broker.declare_inputs()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        port=_port(),
        rabbitmq_url=rabbitmq_url(),
        data_dir=tmp_path,
        raw_flush_age_s=0.2,
        **broker.names.settings(),
    )
    async with (
        RunningService(settings) as service,
        FeatureServiceClient(
            service.url, KEY, amqp_url=rabbitmq_url(), exchange=broker.names.features
        ) as client,
    ):
        stream = client.vectors(symbols=["BTCUSDT"], intervals=["1s"])
        feeder = asyncio.create_task(_feed(broker, sample_events[-600:]))
        try:
            started = time.time()
            received = []
            async with asyncio.timeout(30):
                async for vector in stream:
                    FeatureVector.model_validate(vector.model_dump(mode="json"))
                    received.append(vector)
                    if len(received) == 3:
                        break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            await feeder
        assert all(v.interval == "1s" and v.symbol == "BTCUSDT" for v in received)
        # its own queue starts with current vectors: none closed before the client started
        assert received[0].timestamp_us / 1e6 >= started - 1.0
        latest = await client.latest("BTCUSDT")
        assert latest.timestamp_us >= received[-1].timestamp_us
