"""Dataset builds: validate, queue, build in worker processes, record, announce.

Requests are checked completely before anything runs (a 400 with the reasons). Accepted builds
are recorded as ``queued`` and run by a bounded pool of workers in submission order; progress is
kept in memory for GET /dataset/{id} and persisted every few seconds. A finished build publishes
``{dataset_id, status, splits_info, download_urls}`` on ``features.dataset.ready``.

Bounded (issue 9): a period longer than ``max_period_days`` (default 366) is refused, and so is
one reaching more than a day beyond the stored raw data on either side, both with a 400 naming
the limit; each build runs in its own process (services/workers.py), never in the live event
loop, and ``cancel`` stops it (or takes it off the queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from feature_service.adapters.bus import MessageBus
from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import DatasetRecord
from feature_service.datasets import DatasetBuildRequest, validate_request, with_concrete_version
from feature_service.logging import TRACE_ID, current_trace_id, get_logger, new_trace_id
from feature_service.registry.loader import Registry
from feature_service.services.dataset_builder import (
    BuildFailed,
    available_period,
    check_data_available,
)
from feature_service.services.workers import BuildCancelled, BuildProcess

log = get_logger(__name__)

SPLITS = ("train", "validation", "test")
# A rough planning figure for estimated_completion before a build has measured itself.
ASSUMED_SECONDS_PER_DAY_OF_DATA = 60.0
US_PER_DAY = 86_400_000_000
CANCELLED = "cancelled by request"


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
        max_period_days: float = 366.0,
        build_runner: Callable[..., BuildProcess] = BuildProcess,
        backfill: Any = None,
        observer: BuildObserver | None = None,
    ) -> None:
        # (request dict, registry, raw root, out dir) -> a runner with run()/cancel();
        # the default is a worker process, tests substitute an in-thread one.
        self._build_runner = build_runner
        self.max_period_days = max_period_days
        self._running: dict[uuid.UUID, BuildProcess] = {}
        self.store = store
        self.registry = registry  # the active version (hot reload replaces it)
        # Another stored version by name (RegistryService.registry_for); None: only the active.
        self.versions: Callable[[str], Awaitable[Registry | None]] | None = None
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
        # Cancelling the workers terminates their build processes; the records stay
        # "building", so the next start resumes them.
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()

    # -- requests ------------------------------------------------------------------------------
    async def registry_for(self, version: str) -> Registry | None:
        """The registry a build with ``feature_registry_version`` = ``version`` computes."""
        if version == self.registry.version:
            return self.registry
        return None if self.versions is None else await self.versions(version)

    async def submit(self, req: DatasetBuildRequest) -> DatasetRecord:
        req = with_concrete_version(req, self.registry.version)
        registry = await self.registry_for(req.feature_registry_version)
        if registry is None:
            stored = f"{req.feature_registry_version!r} is not a stored registry version"
            raise DatasetRequestError([f"feature_registry_version {stored}"])
        problems = validate_request(req, registry)
        if not problems:
            # With a backfill configured, missing data is fetched before the build.
            problems += await self._bounds_problems(req, check_data=self.backfill is None)
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
        # Known from the start, so a client polling a queued build already sees where it goes.
        rec.storage_path = str(self.dataset_dir(rec.id))
        rec = await self.store.create_dataset(rec)
        self._traces[rec.id] = current_trace_id() or new_trace_id()
        self._enqueue(rec.id)
        log.info("dataset_queued", dataset_id=str(rec.id), symbol=req.symbol)
        return rec

    async def _bounds_problems(
        self, req: DatasetBuildRequest, *, check_data: bool = True
    ) -> list[str]:
        span = req.span()
        if span is None:
            return []
        days = span.length_s / 86_400
        if days > self.max_period_days:
            return [
                f"the requested period is {days:,.1f} days long; the limit is "
                f"{self.max_period_days:g} days (FEATURE_SERVICE_DATASET_MAX_PERIOD_DAYS)"
            ]
        if not check_data:
            return []
        missing = await asyncio.to_thread(check_data_available, self.raw_root, req)
        if missing:
            return [missing]
        have = await asyncio.to_thread(available_period, self.raw_root, req.symbol)
        if have is not None and (
            span.start_us < have.start_us - US_PER_DAY or span.end_us > have.end_us + US_PER_DAY
        ):
            d = have.to_dict()
            return [
                f"the requested period reaches more than 1 day beyond the stored data for "
                f"{req.symbol} ([{d['start']}, {d['end']})); periods must lie within it"
            ]
        return []

    async def cancel(self, dataset_id: uuid.UUID) -> DatasetRecord | None:
        """Stop a running build or take a queued one off the queue; None when it had already
        finished (ready or failed). ``KeyError`` for an unknown id."""
        rec = await self.store.get_dataset(dataset_id)
        if rec is None:
            raise KeyError(dataset_id)
        if rec.status not in ("queued", "building"):
            return None
        if dataset_id in self._waiting:
            self._waiting.remove(dataset_id)
            await self._fail(dataset_id, CANCELLED)
        process = self._running.get(dataset_id)
        if process is not None:
            process.cancel()  # the worker loop records the failure when the process is gone
        elif rec.status == "building":  # building in another instance or a lost process
            await self._fail(dataset_id, CANCELLED)
        log.info("dataset_cancelled", dataset_id=str(dataset_id))
        return await self.store.get_dataset(dataset_id)

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
        # The version the request named (recorded concrete), whatever is active by now.
        registry = await self.registry_for(req.feature_registry_version)
        if registry is None:
            await self._fail(dataset_id, f"registry version {req.feature_registry_version} is gone")
            return
        await self.store.update_dataset(
            dataset_id, status="building", storage_path=str(out_dir), progress={"stage": "start"}
        )
        log.info("dataset_build_started", dataset_id=str(dataset_id), symbol=req.symbol)
        if self.backfill is not None:
            from feature_service.services.backfill_auto import backfill_before_build

            await backfill_before_build(
                self.backfill, req, registry, lambda p: self._on_progress(dataset_id, p)
            )
        process = self._build_runner(req.model_dump(mode="json"), registry, self.raw_root, out_dir)
        self._running[dataset_id] = process
        try:
            result = await process.run(lambda p: self._on_progress(dataset_id, p))
        except (BuildFailed, BuildCancelled) as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            await self._fail(dataset_id, str(exc))
            return
        finally:
            self._running.pop(dataset_id, None)
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
