"""Backfill jobs: accepted, stored, run one at a time outside the live event loop, resumable.

A job is a row of ``backfill_jobs`` (metadata store). The worker runs each job in a thread with
its own event loop and its own Bybit client (HTTP, Parquet writes and validation never touch the
live loop); after every day the thread records the day in ``completed_days`` through the live
loop's store and waits for that write, so a job killed at any moment resumes (on the next start)
by skipping what was recorded. A day written but not yet recorded is found complete on disk and
skipped too: nothing is stored twice. Jobs run one at a time, so their requests share one
rate limit. ``stop()`` interrupts a running job between days and leaves it ``running`` in the
store (it resumes at the next start); ``cancel()`` ends it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from uuid import UUID

from feature_service.adapters.clients.bybit_rest import BybitBannedError, BybitRestClient
from feature_service.adapters.metadata.backfill_jobs import ACTIVE_STATUSES, BackfillJobRecord
from feature_service.logging import get_logger
from feature_service.services.backfill import (
    PRESENT_ONLY,
    Backfiller,
    DayOutcome,
    days_between,
    parse_data_types,
)

log = get_logger(__name__)
FUNDING_CHUNK_DAYS = 30
ProgressFn = Callable[[BackfillJobRecord], None]


class BackfillRequestError(ValueError):
    """A job refused before it ran; the message is meant for the caller."""


class _Interrupted(Exception):
    pass


class BackfillJobs:
    def __init__(
        self,
        store: Any,
        raw_root: Path,
        client_factory: Callable[[], BybitRestClient],
        *,
        registry: Any = None,
        max_days: int = 90,
        interval: str = "1",
        category: str = "linear",
        now_ms: Callable[[], int] | None = None,
        resume_triggers: tuple[str, ...] = ("api", "auto", "dataset", "warm_start"),
    ) -> None:
        self.store = store
        self.raw_root = Path(raw_root)
        self.client_factory = client_factory
        self.registry = registry
        self.max_days = max_days
        self.interval = interval
        self.category = category
        self.now_ms = now_ms
        self.resume_triggers = resume_triggers
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._cancel: set[UUID] = set()
        self._done: dict[UUID, asyncio.Event] = {}
        self._busy = False
        self.unavailable: str | None = None  # why jobs cannot run, when they cannot
        self.on_progress: ProgressFn | None = None
        # Telemetry observers (the runtime wires /metrics here); never required.
        self.on_rows: Callable[[str, str, int], None] | None = None
        self.on_finished: Callable[[str], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, *, resume: bool = True) -> None:
        try:
            unfinished = [
                job
                for status in ACTIVE_STATUSES
                for job in await self.store.list_backfill_jobs(status=status, limit=1000)
                if job.trigger in self.resume_triggers
            ]
        except Exception as exc:
            # The table comes with migration 023; without it the service still serves
            # features and the backfill routes answer 503 with this reason.
            self.unavailable = f"backfill jobs table not usable (migration 023 applied?): {exc}"
            log.error("backfill_unavailable", reason=self.unavailable)
            return
        if resume:
            for job in sorted(unfinished, key=lambda j: j.created_at):
                log.info("backfill_job_resumed", job_id=str(job.id), done=len(job.completed_days))
                self._enqueue(job.id)
        self._worker = asyncio.create_task(self._run_worker(), name="backfill-worker")

    async def stop(self, grace_s: float = 30.0) -> None:
        """Let a running job finish its current day (it stays ``running`` and resumes at the
        next start), then stop the worker."""
        self._stop.set()
        if self._worker is not None:
            if self._busy:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(self._worker), grace_s)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    # -- requests ------------------------------------------------------------------------------
    def _today(self) -> dt.date:
        if self.now_ms is not None:
            return dt.datetime.fromtimestamp(self.now_ms() / 1000, dt.UTC).date()
        return dt.datetime.now(dt.UTC).date()

    async def submit(
        self,
        symbol: str,
        start_date: dt.date,
        end_date: dt.date,
        data_types: list[str] | None = None,
        *,
        category: str | None = None,
        trigger: str = "api",
        enqueue: bool = True,
    ) -> BackfillJobRecord:
        try:
            types = parse_data_types(data_types, self.registry)
        except ValueError as exc:
            raise BackfillRequestError(str(exc)) from None
        if end_date < start_date:
            raise BackfillRequestError(f"end_date {end_date} is before start_date {start_date}")
        if end_date > self._today():
            raise BackfillRequestError(f"end_date {end_date} is in the future")
        days = (end_date - start_date).days + 1
        if days > self.max_days:
            raise BackfillRequestError(
                f"{days} days requested; at most {self.max_days} per job"
                " (FEATURE_SERVICE_BACKFILL_MAX_DAYS)"
            )
        job = BackfillJobRecord(
            symbol=symbol.upper(),
            category=category or self.category,
            start_date=start_date,
            end_date=end_date,
            data_types=types,
            trigger=trigger,
            unavailable={t: PRESENT_ONLY[t] for t in types if t in PRESENT_ONLY},
            progress={"days_total": days * _history_count(types), "days_done": 0},
        )
        job = await self.store.create_backfill_job(job)
        log.info("backfill_job_accepted", job_id=str(job.id), symbol=job.symbol, types=types)
        if enqueue:
            self._enqueue(job.id)
        return job

    async def submit_auto(self, symbol: str, *, trigger: str = "auto") -> BackfillJobRecord:
        """Fill what is missing of the last ``max_days`` days (complete days are skipped)."""
        today = self._today()
        return await self.submit(
            symbol, today - dt.timedelta(days=self.max_days - 1), today, trigger=trigger
        )

    async def cancel(self, job_id: UUID) -> BackfillJobRecord | None:
        job = await self.store.get_backfill_job(job_id)
        if job is None or job.status not in ACTIVE_STATUSES:
            return job
        self._cancel.add(job_id)
        if job.status == "pending":
            return await self._finish(job_id, "cancelled", error="cancelled before it started")
        return await self.store.update_backfill_job(job_id, cancel_requested=True)

    async def get(self, job_id: UUID) -> BackfillJobRecord | None:
        return await self.store.get_backfill_job(job_id)

    async def wait(self, job_id: UUID) -> BackfillJobRecord:
        """Until the job has left pending/running (for builds that backfill first)."""
        event = self._done.setdefault(job_id, asyncio.Event())
        job = await self.store.get_backfill_job(job_id)
        while job is not None and job.status in ACTIVE_STATUSES:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 1.0)
            job = await self.store.get_backfill_job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _enqueue(self, job_id: UUID) -> None:
        self._done.setdefault(job_id, asyncio.Event())
        self._queue.put_nowait(job_id)

    # -- running -------------------------------------------------------------------------------
    async def _run_worker(self) -> None:
        while not self._stop.is_set():
            job_id = await self._queue.get()
            self._busy = True
            try:
                await self.run_job(job_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the worker outlives any job
                log.exception("backfill_job_crashed", job_id=str(job_id))
                with contextlib.suppress(Exception):
                    await self._finish(job_id, "failed", error=f"internal error: {exc!r}")
            finally:
                self._busy = False

    async def run_job(self, job_id: UUID) -> BackfillJobRecord | None:
        job = await self.store.get_backfill_job(job_id)
        if job is None or job.status not in ACTIVE_STATUSES:
            return job
        job = await self.store.update_backfill_job(
            job_id, status="running", started_at=job.started_at or _now()
        )
        loop = asyncio.get_running_loop()

        def call(coro: Coroutine[Any, Any, Any]) -> Any:
            # Bounded: a live loop that is gone must not leave this thread waiting forever.
            return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

        try:
            outcome = await asyncio.to_thread(lambda: asyncio.run(self._execute(job, call)))
        except _Interrupted:
            log.info("backfill_job_interrupted", job_id=str(job_id))
            return await self.store.get_backfill_job(job_id)
        status, error = outcome
        return await self._finish(job_id, status, error=error)

    async def _finish(self, job_id: UUID, status: str, *, error: str | None) -> BackfillJobRecord:
        job = await self.store.update_backfill_job(
            job_id, status=status, error_message=error, finished_at=_now()
        )
        self._cancel.discard(job_id)
        self._done.setdefault(job_id, asyncio.Event()).set()
        if self.on_finished is not None:
            self.on_finished(status)
        log.info("backfill_job_finished", job_id=str(job_id), status=status, error=error)
        return job

    async def _execute(
        self, job: BackfillJobRecord, call: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> tuple[str, str | None]:
        """Runs in the job's own thread and loop; ``call`` runs a store coroutine in the live
        loop and waits for it."""
        client = self.client_factory()
        bf = Backfiller(
            client, self.raw_root, category=job.category, interval=self.interval,
            now_ms=self.now_ms,
        )  # fmt: skip
        done = list(job.completed_days)
        failed = list(job.failed_days)
        days = days_between(job.start_date, job.end_date)

        def record(outcomes: list[DayOutcome]) -> None:
            for o in outcomes:
                if o.rows and self.on_rows is not None:
                    self.on_rows(job.symbol, o.data_type, o.rows)
                key = f"{o.data_type}:{o.day}"
                failed[:] = [f for f in failed if f"{f['data_type']}:{f['day']}" != key]
                if o.status == "failed":
                    failed.append(o.as_dict())
                elif key not in done:
                    done.append(key)
            progress = dict(job.progress or {})
            progress |= {"days_done": len(done), "days_failed": len(failed)}
            progress |= {"current_day": outcomes[-1].day if outcomes else None}
            progress["requests"] = bf.requests
            updated = call(
                self.store.update_backfill_job(
                    job.id, completed_days=done, failed_days=failed, progress=progress
                )
            )
            if self.on_progress is not None:
                self.on_progress(updated)

        def check() -> None:
            if self._stop.is_set():
                raise _Interrupted()
            if job.id in self._cancel:
                raise _Cancelled()

        try:
            if "klines" in job.data_types:
                for day in days:
                    if f"klines:{day}" in done:
                        continue
                    check()
                    record([await bf.klines_day(job.symbol, day)])
            if "funding" in job.data_types:
                todo = [d for d in days if f"funding:{d}" not in done]
                for i in range(0, len(todo), FUNDING_CHUNK_DAYS):
                    check()
                    record(await bf.funding_days(job.symbol, todo[i : i + FUNDING_CHUNK_DAYS]))
        except _Cancelled:
            return "cancelled", "cancelled on request"
        except _Interrupted:
            raise
        except BybitBannedError as exc:
            return "failed", f"stopped: {exc}"
        except Exception as exc:
            log.warning("backfill_job_failed", job_id=str(job.id), error=repr(exc))
            return "failed", str(exc) or repr(exc)
        finally:
            await client.aclose()
        return ("partial", f"{len(failed)} day(s) failed") if failed else ("completed", None)


class _Cancelled(Exception):
    pass


def _history_count(types: list[str]) -> int:
    return sum(1 for t in types if t not in PRESENT_ONLY) or 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def build_backfill(settings: Any, store: Any, registry: Any) -> BackfillJobs | None:
    """The service's job runner from ``FEATURE_SERVICE_BACKFILL_*`` (None when disabled)."""
    if not settings.backfill_enabled:
        return None
    from feature_service.adapters.clients.bybit_rest import client_from_settings

    return BackfillJobs(
        store,
        settings.raw_dir,
        lambda: client_from_settings(settings),
        registry=registry,
        max_days=settings.backfill_max_days,
        interval=settings.backfill_default_interval,
        category=settings.bybit_category,
    )
