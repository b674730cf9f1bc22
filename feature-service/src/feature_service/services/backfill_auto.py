"""Automatic backfill (T267): a dataset build, or a warm start, fetches missing history first.

Only klines and funding have REST history; the registry decides whether they are needed. The
jobs skip days already complete on disk, so calling these for data that exists costs a few
directory listings and no request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from feature_service.adapters.metadata.backfill_jobs import BackfillJobRecord
from feature_service.adapters.rawstore.layout import US_PER_DAY
from feature_service.logging import get_logger
from feature_service.services.backfill import HISTORY_TYPES, required_data_types
from feature_service.services.backfill_jobs import BackfillJobs

log = get_logger(__name__)
WARM_START_KLINES_US = 25 * 3_600 * 1_000_000  # the candle features' longest warm-up
WARM_START_BACKFILL_TIMEOUT_S = 120.0  # 25 h of 1 m klines is two requests; never block start


def _date(us: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=us // US_PER_DAY)


async def backfill_range(
    jobs: BackfillJobs,
    symbol: str,
    start_us: int,
    end_us: int,
    *,
    trigger: str,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> BackfillJobRecord | None:
    """Backfill klines/funding (those the registry needs) over ``[start_us, end_us)``, clamped
    to today and to ``max_days`` ending at ``end_us``; waits for the job."""
    types = [t for t in required_data_types(jobs.registry) if t in HISTORY_TYPES]
    if jobs.unavailable or not types or end_us <= start_us:
        return None
    last = min(_date(end_us - 1), jobs._today())
    first = max(_date(start_us), last - dt.timedelta(days=jobs.max_days - 1))
    if last < first:
        return None
    job = await jobs.submit(symbol, first, last, types, trigger=trigger)
    log.info("backfill_auto_started", job_id=str(job.id), symbol=symbol, trigger=trigger)
    if report is not None:
        report({"stage": "backfill", "backfill_job_id": str(job.id), "fraction": 0.0})
        jobs.on_progress = lambda j: report(
            {"stage": "backfill", "backfill_job_id": str(j.id), "backfill": j.progress}
        )
    try:
        return await jobs.wait(job.id)
    finally:
        jobs.on_progress = None


async def backfill_for_dataset(
    jobs: BackfillJobs,
    symbol: str,
    window_start_us: int,
    window_end_us: int,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> BackfillJobRecord | None:
    """Backfill `[window_start_us, window_end_us)` for a build."""
    return await backfill_range(
        jobs, symbol, window_start_us, window_end_us, trigger="dataset", report=report
    )


async def ensure_warm_start_klines(
    jobs: BackfillJobs, raw_root: Any, symbol: str, now_us: int
) -> BackfillJobRecord | None:
    """For the warm start (issue 8): when fewer than 25 h of klines are stored before
    ``now_us``, backfill them before serving. Returns the finished job, or None when enough
    klines were there already."""
    from feature_service.adapters.rawstore.reader import RawReader

    found = RawReader(raw_root).available_range(symbol, ["klines"])
    if (
        found is not None
        and found[0] <= now_us - WARM_START_KLINES_US
        and found[1] >= now_us - 120_000_000
    ):
        return None
    return await backfill_range(
        jobs, symbol, now_us - WARM_START_KLINES_US, now_us, trigger="warm_start"
    )


async def warm_start_backfill(
    jobs: BackfillJobs | None,
    raw_root: Any,
    symbols: list[str],
    now_us: int,
    *,
    timeout_s: float = WARM_START_BACKFILL_TIMEOUT_S,
) -> dict[str, str]:
    """The runtime's warm start with ``FEATURE_SERVICE_BACKFILL_AUTO`` (``jobs`` None when it is
    off): ``ensure_warm_start_klines`` for every symbol, before the state is restored, so candle
    features are complete after a restart even when the store lacks the candles. A failure is
    logged and the warm start goes on with what is stored; so does one that waits longer than
    ``timeout_s`` (the worker may be busy with a long resumed job; this one then finishes in
    the background). ``{symbol: job status}`` of the symbols that needed a backfill."""
    if jobs is None or jobs.unavailable:
        return {}
    done: dict[str, str] = {}
    for symbol in symbols:
        try:
            job = await asyncio.wait_for(
                ensure_warm_start_klines(jobs, raw_root, symbol, now_us), timeout_s
            )
        except TimeoutError:
            log.error("warm_start_backfill_timeout", symbol=symbol, timeout_s=timeout_s)
            done[symbol] = "timeout"
            continue
        except Exception as exc:
            log.error("warm_start_backfill_failed", symbol=symbol, error=repr(exc))
            done[symbol] = f"failed: {type(exc).__name__}"
            continue
        if job is not None:
            done[symbol] = job.status
            log.info("warm_start_backfilled", symbol=symbol, job_id=str(job.id), status=job.status)
    return done


async def backfill_before_build(
    jobs: BackfillJobs, req: Any, registry: Any, report: Callable[[dict[str, Any]], None]
) -> BackfillJobRecord | None:
    """The dataset service's hook: backfill the build's read window (period + lookback)."""
    from feature_service.datasets import LeakageGuard

    span = req.span()
    if span is None:
        return None
    window = LeakageGuard.for_request(req, registry).read_window(span)
    return await backfill_for_dataset(jobs, req.symbol, window.start_us, window.end_us, report)
