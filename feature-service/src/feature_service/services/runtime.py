"""Runtime: builds and owns the live service's parts from Settings, starts and stops them.

Short names in configuration pick adapters (RABBITMQ_URL set -> RabbitMQ, else the in-process
bus fed by the replay source; DATABASE_URL set -> PostgreSQL, else SQLite). Everything is
created here, in the app's lifespan, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from feature_service.adapters.bus import MessageBus, QueueSpec, create_bus
from feature_service.adapters.bus.base import Delivery
from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.factory import create_metadata_store
from feature_service.adapters.metadata.guarded import GuardedStore
from feature_service.adapters.metadata.metrics_sink import sink_for_store
from feature_service.adapters.rawstore.layout import Kind
from feature_service.adapters.rawstore.schema import CheckpointMeta
from feature_service.adapters.rawstore.writer import RawWriter
from feature_service.adapters.vectorstore import VectorArchive
from feature_service.book.checkpoint import BookCheckpoint
from feature_service.config import Settings
from feature_service.engine.checkpoints import BookCheckpointer
from feature_service.engine.clocks import AcceleratedClock, ServiceClock, WallClock
from feature_service.engine.core import FeatureEngine
from feature_service.engine.live import LiveEngine, vector_message_id, vector_to_json
from feature_service.engine.vector import FeatureVector, interval_label
from feature_service.logging import get_logger
from feature_service.market.errors import MessageRejected
from feature_service.market.executions import parse_execution
from feature_service.metrics import build_registry
from feature_service.quality.monitor import QualityMonitor
from feature_service.registry.loader import Registry, load_registry
from feature_service.sample.generator import default_sample_path
from feature_service.services.backfill_jobs import build_backfill
from feature_service.services.datasets import DatasetService
from feature_service.services.depth_status import DepthWatch, depth_report
from feature_service.services.hot_reload import HotReload
from feature_service.services.live_queue import LiveQueueOutcome, ensure_live_queue
from feature_service.services.metrics_writer import BuildObservers, MetricsWriter
from feature_service.services.registry import RegistryService
from feature_service.services.registry_usage import ComputationUsage
from feature_service.services.replay import ReplaySource
from feature_service.services.statistics import StatisticsService, run_queue_poller
from feature_service.services.workers import RetentionWorker
from feature_service.telemetry import Telemetry

log = get_logger(__name__)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        bus: MessageBus | None = None,
        store: MetadataStore | None = None,
    ) -> None:
        self.settings = settings
        self.registry: Registry = load_registry(
            settings.registry_path, retention_days=settings.retention_days
        )
        if not self.registry.is_valid:
            raise ValueError(f"feature registry invalid: {list(self.registry.errors)}")
        self.embedded = settings.rabbitmq_url is None and bus is None
        self.bus: MessageBus = bus or create_bus(settings)
        from feature_service.services.quality_live import log_incident, quality_config

        self.quality_config = quality_config(settings)
        self.engine = FeatureEngine(
            intervals_s=settings.intervals,
            registry_version=self.registry.version,
            plan=self.registry.plan,  # type: ignore[arg-type]  # valid registries have one
            stale_after_s=settings.stale_after_s,
            latency_warning_ms=settings.latency_warning_ms,
            symbols=settings.symbols,
            quality=QualityMonitor(self.quality_config, on_incident=log_incident),
        )
        self.raw_writer = RawWriter(
            settings.raw_dir,
            flush_rows=settings.raw_flush_rows,
            flush_age_s=settings.raw_flush_age_s,
        )
        self.telemetry = Telemetry()
        # The monitor counts every incident when it is detected; /metrics reads that counter.
        self.telemetry.quality_incidents = self.engine.quality.detected
        self._started = time.monotonic()
        # The embedded replay swaps in its virtual clock once it knows where its recording starts.
        self.live = LiveEngine(
            self.engine,
            WallClock(),
            publisher=self._publish_vector,
            dead_letter=self.bus.dead_letter,
            raw_sink=self.raw_writer if settings.raw_store_enabled else None,
            on_vectors=self._archive_vectors,
            limits=settings.parse_limits,
            telemetry=self.telemetry,
            checkpointer=(
                BookCheckpointer(
                    self.engine, self._store_checkpoint, every_s=settings.checkpoint_interval_s
                )
                if settings.raw_store_enabled
                else None
            ),
        )
        self.warm_report: dict[str, Any] | None = None
        self.archive = VectorArchive(settings.vectors_dir, session_start_us=time.time_ns() // 1000)
        # Every call bounded (db_timeout_s) and a dead connection made a StoreUnavailable
        # (HTTP 503 with Retry-After), so a database outage never hangs a request.
        self.store: Any = GuardedStore(
            store
            or create_metadata_store(
                settings.database_url,
                settings.sqlite_path,
                settings.migrations_dir,
                timeout_s=settings.db_timeout_s,
            ),
            settings.db_timeout_s,
        )
        self.backfill = build_backfill(settings, self.store, self.registry)
        if self.backfill is not None:
            self.backfill.on_rows = self.telemetry.backfill_rows
            self.backfill.on_finished = self.telemetry.backfill_job
        self.metrics_writer = MetricsWriter(
            sink_for_store(self.store) if settings.metrics_tables_enabled else None,
            max_queue=settings.metrics_queue_size,
            flush_s=settings.metrics_flush_s,
            retention_days=settings.metrics_retention_days,
            write_timeout_s=settings.metrics_write_timeout_s,
        )
        self.datasets = DatasetService(
            self.store,
            self.registry,
            settings.raw_dir,
            settings.datasets_dir,
            bus=self.bus,
            ready_queue=settings.dataset_ready_queue,
            parallelism=settings.dataset_build_parallelism,
            max_period_days=settings.dataset_max_period_days,
            base_url=f"http://{settings.host}:{settings.port}",
            backfill=self.backfill if settings.backfill_auto else None,
            observer=BuildObservers(self.telemetry, self.metrics_writer),
        )
        from feature_service.adapters.qualitystore import QualityStore
        from feature_service.services.quality_report import QualityReports

        self.quality_store = QualityStore(settings.quality_dir)
        self.quality_reports = QualityReports(
            settings.raw_dir, self.quality_store, self.store, self.quality_config
        )
        self.quality_recorder: Any = None
        self.resyncer: Any = None
        # Registry versions: the store's active version replaces the file above at start-up.
        self.usage = ComputationUsage()
        self.hot_reload = HotReload(self)
        self.registry_service = RegistryService(
            self.store,
            settings.registry_dir,
            bundled_path=settings.registry_path,
            retention_days=settings.retention_days,
            apply=self.hot_reload.apply,
        )
        self.datasets.versions = self.registry_service.registry_for  # builds with any version
        self.replay: ReplaySource | None = None
        self.live_queue: LiveQueueOutcome | None = None
        self.subscriptions: Any = None
        self.depth_source: Any = None  # services/depth_source.RestDepthSource when "rest"
        self.depth_watch = DepthWatch()
        self.statistics = StatisticsService(self)
        self.metrics_registry = build_registry(self)
        self._consumers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.retention_worker = RetentionWorker()
        self.started_us: int | None = None  # live clock at start: market data is due from then

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.connect()
        applied = await self.store.upgrade()
        if applied:
            log.info("metadata_migrations_applied", versions=applied, store=self.store.kind)
        self.hot_reload.load(await self.registry_service.start())
        self.metrics_writer.start()
        await self.bus.connect()
        self.live_queue = await ensure_live_queue(self.bus, s)
        await self.raw_writer.start()
        if self.embedded and s.replay_enabled:
            await self._start_replay()
        if self.backfill is not None:
            # Before the warm start: with backfill_auto it waits for missing klines (issue 10).
            await self.backfill.start()
        # Live state starts now (empty, or warm from the raw store as of this moment): an
        # offline replay reproducing it starts here too, with the same state_as_of.
        self.archive.session_start_us = await self._warm_start()
        self.started_us = self.archive.session_start_us
        self.archive.start()
        for name in s.input_queues.values():
            spec = QueueSpec.ws_gateway(name)
            self._consumers.append(await self.bus.consume(spec, self.live.on_delivery))
        if s.consume_orders:
            spec = QueueSpec.ws_gateway(s.queue_order)
            self._consumers.append(await self.bus.consume(spec, self._on_execution))
        self._start_quality()
        self.live.start()
        await self.datasets.start()
        self._tasks.append(asyncio.create_task(self._retention_loop(), name="raw-retention"))
        self._tasks.append(asyncio.create_task(self.usage.run(self.store), name="registry-usage"))
        self._tasks.append(asyncio.create_task(run_queue_poller(self), name="queue-poller"))
        if s.ws_gateway_url:
            self._start_subscriptions()
        if s.depth_source == "rest":
            self._start_depth_source()
        self._tasks.append(asyncio.create_task(self._depth_watch_loop(), name="depth-watch"))
        log.info(
            "service_started",
            mode="embedded" if self.embedded else "rabbitmq",
            symbols=s.symbols,
            intervals=[interval_label(i) for i in s.intervals],
            registry_version=self.registry.version,
        )

    async def _start_replay(self) -> None:
        s = self.settings
        path = s.replay_path or default_sample_path()

        async def publish(queue: str, body: bytes) -> None:
            await self.bus.publish("", body, routing_key=queue)

        replay = ReplaySource(path, publish, s.input_queues, loop=s.replay_loop)
        start_us = await replay.prepare()
        now = time.time_ns() // 1000
        shift = ReplaySource.aligned_shift(start_us, now)
        clock: ServiceClock = (
            AcceleratedClock(s.replay_speed, origin_us=start_us + shift)
            if s.replay_speed != 1.0
            else WallClock()
        )
        self.live.clock = clock
        replay.start(shift, clock)
        self.replay = replay

    def _start_quality(self) -> None:
        from feature_service.services.book_resync import BookResyncer
        from feature_service.services.quality_live import QualityRecorder

        s = self.settings
        self.quality_recorder = QualityRecorder(
            self.engine.quality,
            self.quality_store,
            self.live.clock.now_us,
            store=self.store,
            symbols=s.symbols,
            interval_s=s.quality_recorder_interval_s,
        )
        self.quality_recorder.start()
        if s.ws_gateway_url and s.resync_enabled:
            from feature_service.adapters.clients.ws_gateway import WsGatewayClient

            client = WsGatewayClient(s.ws_gateway_url, s.ws_gateway_api_key or "")
            self.resyncer = BookResyncer(
                client,
                "feature-service",
                is_synced=self._book_usable,
                min_interval_s=s.resync_min_interval_s,
                max_interval_s=s.resync_max_interval_s,
                on_sent=self.telemetry.book_resync,
            )
            self.live.on_desync = self.resyncer.request

    def _book_usable(self, symbol: str) -> bool:
        state = self.engine.states.get(symbol)
        return state is not None and state.book.usable

    def _start_subscriptions(self) -> None:
        from feature_service.adapters.clients.ws_gateway import WsGatewayClient
        from feature_service.services.subscriptions import SubscriptionManager

        s = self.settings
        client = WsGatewayClient(s.ws_gateway_url or "", s.ws_gateway_api_key or "")
        self.subscriptions = SubscriptionManager(
            client,
            s.symbols,
            include_orders=s.consume_orders,
            include_funding=s.funding_stream,
            orderbook_depth=s.orderbook_depth,
            max_attempts=s.subscription_max_attempts,
            retry_interval_s=s.subscription_retry_interval_s,
        )
        self.subscriptions.start()

    def _start_depth_source(self) -> None:
        from feature_service.adapters.clients.bybit_rest import BybitRestClient, TokenBucket
        from feature_service.services.depth_source import SOURCE, RestDepthSource

        s = self.settings
        bucket = TokenBucket(max(1, int(s.depth_rest_max_rps * 5)), 5.0)
        client = BybitRestClient(
            s.bybit_rest_url,
            category=s.bybit_category,
            timeout_s=s.bybit_timeout_s,
            max_retries=0,  # the next poll comes soon: a retry would only spend the budget
            bucket=bucket,
        )

        def ingest(body: bytes) -> None:
            # Applied and stored like a consumed message, so replays see it too. The data age
            # /health reports stays the stream's: polls must not hide a silent stream.
            stream_last = self.live.stats.last_event_receive_us
            events, _fresh = self.live.ingest(body, SOURCE)
            self.live.stats.last_event_receive_us = stream_last
            for event in events:
                if s.raw_store_enabled:
                    self.raw_writer.submit(event, body).add_done_callback(_raw_done)

        self.depth_source = RestDepthSource(
            client,
            s.symbols,
            ingest,
            limit=s.depth_rest_limit,
            interval_s=s.depth_rest_interval_s,
            max_rps=s.depth_rest_max_rps,
        )
        self._tasks.append(asyncio.create_task(self.depth_source.run(), name="depth-rest"))

    def depth_status(self) -> dict[str, Any]:
        """Per-symbol book depth and the depth features it rules out (health, /stats)."""
        s = self.settings
        rest = self.depth_source.status() if self.depth_source is not None else None
        return depth_report(
            self.engine.states,
            self.live.clock.now_us(),
            source=s.depth_source,
            wanted_depth=s.orderbook_depth,
            rest_status=rest,
        )

    async def _depth_watch_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                self.depth_watch.check(self.depth_status())
            except Exception:  # observability must never take the service down
                log.exception("depth_watch_failed")

    async def _retention_loop(self) -> None:
        """Archive and expire raw data on a schedule; a failure is logged and retried later."""
        s = self.settings
        # The first run waits a little: start-up (and short-lived test services) should not
        # pay for spawning the worker process.
        await asyncio.sleep(min(60.0, s.retention_check_interval_s))
        while True:
            try:
                # Every action is logged by apply_retention itself; it runs in a worker
                # process so its CPU never stalls the live event loop.
                await self.retention_worker.run(
                    root=s.raw_dir,
                    archive_root=s.archive_dir,
                    now_us=time.time_ns() // 1000,
                    retention_days=s.retention_days,
                    archive_retention_days=s.archive_retention_days,
                    compact_after_days=s.compact_after_days,
                )
            except Exception:
                log.exception("raw_retention_failed")
            await asyncio.sleep(s.retention_check_interval_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.subscriptions is not None:
            await self.subscriptions.stop()
        if self.resyncer is not None:
            await self.resyncer.stop()
            await self.resyncer.client.aclose()
        if self.depth_source is not None:
            await self.depth_source.aclose()
        if self.replay is not None:
            await self.replay.stop()
        await self._stop_consuming()
        await self.datasets.stop()
        self.retention_worker.close()
        if self.backfill is not None:
            await self.backfill.stop()
        await self.live.stop()
        if self.quality_recorder is not None:
            await self.quality_recorder.stop()
        await self.raw_writer.close()
        await self.archive.close()
        await self.bus.close()
        await self.metrics_writer.close()
        await self.store.close()
        log.info("service_stopped")

    async def _warm_start(self) -> int:
        """Restore engine state from the raw store as of now, before consuming anything, so
        the first vectors after a restart are complete (services/state_asof.py)."""
        t0 = self.live.clock.now_us()
        s = self.settings
        if not s.warm_start or self.embedded:
            # The embedded demo replays a recording shifted to the wall clock: stored data of an
            # earlier demo run is not this run's past.
            return t0
        from feature_service.engine.warmup import Lookbacks
        from feature_service.services.backfill_auto import warm_start_backfill
        from feature_service.services.state_asof import state_as_of

        jobs = self.backfill if s.backfill_auto else None
        backfilled = await warm_start_backfill(jobs, s.raw_dir, s.symbols, t0)
        if backfilled:
            t0 = self.live.clock.now_us()  # the state is as of after the backfill
        _, report = await asyncio.to_thread(
            state_as_of,
            s.raw_dir,
            s.symbols,
            t0,
            engine=self.engine,
            boundary=self.live.boundary,
            lookbacks=Lookbacks.for_plan(self.engine.plan),
        )
        self.warm_report = {**report.as_dict(), "backfill": backfilled}
        log.info("warm_start_done", **self.warm_report)
        return t0

    def _store_checkpoint(self, checkpoint: BookCheckpoint, body: bytes) -> None:
        meta = CheckpointMeta.of(checkpoint)
        try:
            self.raw_writer.submit_record(Kind.ORDERBOOK_CHECKPOINTS, meta, body)
        except RuntimeError:  # writer closed during shutdown: checkpoints are derived data
            log.warning("checkpoint_not_stored", symbol=checkpoint.symbol)

    async def _stop_consuming(self) -> None:
        """Graceful (SIGTERM): stop taking deliveries, make what was taken durable so its acks
        go out on the still-open channels, then close them. Flushing repeatedly until every
        consumer has closed also catches rows of the handler that was in flight."""
        cancels = [asyncio.ensure_future(c.cancel()) for c in self._consumers]
        while cancels:
            with contextlib.suppress(Exception):  # a failing store: acks wait, the grace ends
                await self.raw_writer.flush()
            _, pending = await asyncio.wait(cancels, timeout=0.05)
            cancels = list(pending)
        self._consumers.clear()

    # -- plumbing ------------------------------------------------------------------------------
    async def _on_execution(self, delivery: Delivery) -> None:
        """Own executions: stored raw (acknowledged once on disk), never fed to features."""
        await self.live.wait_for_storage()
        try:
            meta = parse_execution(delivery.body, receive_ts=self.live.clock.now_us())
        except MessageRejected as exc:
            await self.live.reject(delivery, exc)
            return
        self.live.stats.consumed[delivery.queue] += 1
        self.live.ack_when_stored(
            delivery, [self.raw_writer.submit_record(Kind.EXECUTIONS, meta, delivery.body)]
        )

    def _archive_vectors(self, vectors: list[FeatureVector]) -> None:
        self.archive.add(vectors)
        self.usage.add(vectors)
        self.metrics_writer.on_vectors(vectors)

    async def _publish_vector(self, vector: FeatureVector) -> None:
        await self.bus.publish(
            self.settings.features_exchange,
            vector_to_json(vector),
            # One id per (symbol, interval, boundary): consumers dedup on it (issue 9).
            message_id=vector_message_id(vector),
            at_most_once=True,
            headers={
                "symbol": vector.symbol,
                "interval": interval_label(vector.interval_s),
                "feature_registry_version": vector.registry_version,
                "trace_id": vector.trace_id or "",
            },
        )

    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    # -- health --------------------------------------------------------------------------------
    async def health_checks(self) -> dict[str, dict[str, Any]]:
        from feature_service.services.health import health_checks

        return await health_checks(self)


def _raw_done(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("raw_store_failed", source="rest-depth", error=repr(fut.exception()))
