"""Dataset builds: validate, queue, build in worker threads, record, announce.

Requests are checked completely before anything runs (a 400 with the reasons). Accepted builds
are recorded as ``queued`` and run by a bounded pool of workers in submission order; progress is
kept in memory for GET /dataset/{id} and persisted every few seconds. A finished build publishes
``{dataset_id, status, splits_info, download_urls}`` on ``features.dataset.ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from feature_service.adapters.bus import MessageBus
from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import DatasetRecord
from feature_service.datasets import DatasetBuildRequest, validate_request
from feature_service.logging import TRACE_ID, current_trace_id, get_logger, new_trace_id
from feature_service.registry.loader import Registry
from feature_service.services.dataset_builder import (
    BuildFailed,
    build_dataset,
    check_data_available,
)

log = get_logger(__name__)

SPLITS = ("train", "validation", "test")
# A rough planning figure for estimated_completion before a build has measured itself.
ASSUMED_SECONDS_PER_DAY_OF_DATA = 60.0


class BuildObserver(Protocol):
    """Told when a build starts and ends (metrics, the metrics table); must not raise."""

    def build_started(self, rec: DatasetRecord, trace_id: str) -> None: ...

    def build_finished(self, rec: DatasetRecord, duration_s: float, trace_id: str) -> None: ...


class DatasetRequestError(ValueError):
    """A request refused before anything ran; ``problems`` are meant for the caller."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class DatasetService:
    def __init__(
        self,
        store: MetadataStore,
        registry: Registry,
        raw_root: Path,
        datasets_dir: Path,
        *,
        bus: MessageBus | None = None,
        ready_queue: str = "features.dataset.ready",
        parallelism: int = 1,
        base_url: str = "",
        backfill: Any = None,
        observer: BuildObserver | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.raw_root = raw_root
        self.datasets_dir = datasets_dir
        self.bus = bus
        self.ready_queue = ready_queue
        self.base_url = base_url.rstrip("/")
        # FEATURE_SERVICE_BACKFILL_AUTO: missing klines/funding are backfilled before a build.
        self.backfill = backfill
        self._parallelism = max(1, parallelism)
        # The queue itself: its order is the place each waiting build reports.
        self._waiting: list[uuid.UUID] = []
        self._arrived = asyncio.Event()
        self._progress: dict[uuid.UUID, dict[str, Any]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._saved_at: dict[uuid.UUID, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.observer = observer
        # The trace of the request that asked for each build: its log lines, metrics row and
        # features.dataset.ready message carry it.
        self._traces: dict[uuid.UUID, str] = {}
        self._started_at: dict[uuid.UUID, float] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.declare_queue(self.ready_queue)
        # Builds a previous process accepted but did not finish run again, in order.
        unfinished = [
            rec
            for status in ("building", "queued")
            for rec in await self.store.list_datasets(status=status)
        ]
        for rec in sorted(unfinished, key=lambda r: r.created_at):
            if rec.request is None:
                await self._fail(rec.id, "interrupted by a restart; request not recorded")
                continue
            await self.store.update_dataset(rec.id, status="queued", progress=None)
            self._enqueue(rec.id)
        self._workers = [
            asyncio.create_task(self._worker(), name=f"dataset-worker-{i}")
            for i in range(self._parallelism)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()

    # -- requests ------------------------------------------------------------------------------
    async def submit(self, req: DatasetBuildRequest) -> DatasetRecord:
        problems = validate_request(req, self.registry)
        if not problems:
            missing = await asyncio.to_thread(check_data_available, self.raw_root, req)
            if missing and self.backfill is None:
                problems.append(missing)
        if problems:
            raise DatasetRequestError(problems)
        periods = {
            f"{name}_period_{edge}": getattr(req, f"{name}_period_{edge}")
            for name in SPLITS
            for edge in ("start", "end")
        }
        span = req.span()
        days = 0.0 if span is None else span.length_s / 86400
        rec = DatasetRecord(
            symbol=req.symbol,
            status="queued",
            split_strategy=req.split_strategy,
            walk_forward_config=(
                req.walk_forward_config.model_dump(mode="json") if req.walk_forward_config else None
            ),
            target_config=req.target_config.model_dump(mode="json"),
            feature_registry_version=req.feature_registry_version,
            output_format=req.output_format,
            feature_interval_s=req.interval_s,
            request=req.model_dump(mode="json"),
            estimated_completion=datetime.now(UTC)
            + timedelta(
                seconds=(len(self._waiting) + 1) * max(1.0, days * ASSUMED_SECONDS_PER_DAY_OF_DATA)
            ),
            **periods,
        )
        rec = await self.store.create_dataset(rec)
        self._traces[rec.id] = current_trace_id() or new_trace_id()
        self._enqueue(rec.id)
        log.info("dataset_queued", dataset_id=str(rec.id), symbol=req.symbol)
        return rec

    def _enqueue(self, dataset_id: uuid.UUID) -> None:
        self._waiting.append(dataset_id)
        self._arrived.set()

    def queue_position(self, dataset_id: uuid.UUID) -> int | None:
        """1 = next to run; None when not waiting."""
        try:
            return self._waiting.index(dataset_id) + 1
        except ValueError:
            return None

    def progress(self, dataset_id: uuid.UUID) -> dict[str, Any] | None:
        return self._progress.get(dataset_id)

    def dataset_dir(self, dataset_id: uuid.UUID) -> Path:
        return self.datasets_dir / str(dataset_id)

    def download_urls(self, rec: DatasetRecord) -> dict[str, str]:
        base = f"{self.base_url}/dataset/{rec.id}/download"
        urls = {"all": f"{base}?split=all"}
        for split in SPLITS:
            if getattr(rec, f"{split}_records"):
                urls[split] = f"{base}?split={split}"
        return urls

    # -- building ------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            dataset_id = self._waiting.pop(0)
            try:
                await self._build(dataset_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a worker never dies with a build
                log.exception("dataset_build_crashed", dataset_id=str(dataset_id))
                await self._fail(dataset_id, f"internal error: {exc!r}")

    async def _build(self, dataset_id: uuid.UUID) -> None:
        rec = await self.store.get_dataset(dataset_id)
        if rec is None or rec.request is None:
            return
        req = DatasetBuildRequest.model_validate(rec.request)
        trace = self._traces.setdefault(dataset_id, new_trace_id())
        TRACE_ID.set(trace)  # this worker task handles one build at a time
        self._started_at[dataset_id] = time.monotonic()
        if self.observer is not None:
            self.observer.build_started(rec, trace)
        out_dir = self.dataset_dir(dataset_id)
        await self.store.update_dataset(
            dataset_id, status="building", storage_path=str(out_dir), progress={"stage": "start"}
        )
        loop = asyncio.get_running_loop()

        def report(progress: dict[str, Any]) -> None:
            # Called from the build thread: hand it to the event loop.
            loop.call_soon_threadsafe(self._on_progress, dataset_id, progress)

        log.info("dataset_build_started", dataset_id=str(dataset_id), symbol=req.symbol)
        if self.backfill is not None:
            from feature_service.services.backfill_auto import backfill_before_build

            await backfill_before_build(self.backfill, req, self.registry, report)
        try:
            result = await asyncio.to_thread(
                build_dataset, req, self.registry, self.raw_root, out_dir, progress=report
            )
        except BuildFailed as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            await self._fail(dataset_id, str(exc))
            return
        rec = await self.store.update_dataset(
            dataset_id,
            status="ready",
            completed_at=datetime.now(UTC),
            train_records=result.counts["train"],
            validation_records=result.counts["validation"],
            test_records=result.counts["test"],
            folds=result.folds,
            warnings=result.warnings,
            manifest=result.manifest,
            progress=self._progress.get(dataset_id),
        )
        log.info(
            "dataset_ready",
            dataset_id=str(dataset_id),
            rows=result.rows,
            elapsed_s=round(result.elapsed_s, 3),
            **result.counts,
        )
        await self._announce(rec, result.splits_info)

    def _on_progress(self, dataset_id: uuid.UUID, progress: dict[str, Any]) -> None:
        self._progress[dataset_id] = progress
        now = time.monotonic()
        if now - self._saved_at.get(dataset_id, 0.0) > 2.0:
            # Persisted every few seconds so another instance or a restart can see it.
            self._saved_at[dataset_id] = now
            task = asyncio.get_running_loop().create_task(self._persist_progress(dataset_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _persist_progress(self, dataset_id: uuid.UUID) -> None:
        with contextlib.suppress(Exception):
            await self.store.update_dataset(dataset_id, progress=self._progress[dataset_id])

    async def _fail(self, dataset_id: uuid.UUID, message: str) -> None:
        log.warning("dataset_failed", dataset_id=str(dataset_id), reason=message)
        with contextlib.suppress(KeyError):
            rec = await self.store.update_dataset(
                dataset_id,
                status="failed",
                error_message=message,
                completed_at=datetime.now(UTC),
                progress=self._progress.get(dataset_id),
            )
            await self._announce(rec, {})

    async def _announce(self, rec: DatasetRecord, splits_info: dict[str, Any]) -> None:
        trace = self._traces.pop(rec.id, None) or new_trace_id()
        started = self._started_at.pop(rec.id, None)
        if self.observer is not None:
            duration = 0.0 if started is None else time.monotonic() - started
            self.observer.build_finished(rec, duration, trace)
        if self.bus is None:
            return
        body = {
            "dataset_id": str(rec.id),
            "status": rec.status,
            "symbol": rec.symbol,
            "splits_info": splits_info,
            "download_urls": self.download_urls(rec) if rec.status == "ready" else {},
            "error_message": rec.error_message,
            "trace_id": trace,
        }
        try:
            await self.bus.publish(
                "", orjson.dumps(body), routing_key=self.ready_queue, headers={"trace_id": trace}
            )
        except Exception:
            log.exception("dataset_ready_publish_failed", dataset_id=str(rec.id))
