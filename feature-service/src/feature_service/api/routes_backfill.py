"""Backfill endpoints (thin: ``BackfillJobs`` does the work)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from feature_service.adapters.metadata.backfill_jobs import BackfillJobRecord
from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError
from feature_service.api.schemas import ErrorOut
from feature_service.services.backfill_jobs import BackfillJobs, BackfillRequestError

router = APIRouter(prefix="/backfill", tags=["backfill"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


class BackfillHistoricalIn(BaseModel):
    symbol: str = Field(examples=["BTCUSDT"], min_length=1, max_length=20)
    start_date: dt.date
    end_date: dt.date
    data_types: list[str] | None = Field(
        None,
        description="klines, funding (history); trades, orderbook, ticker have no REST history "
        "and are reported as unavailable. Default: what the Feature Registry needs.",
    )
    category: str | None = Field(None, pattern="^(linear|spot|inverse)$")


class BackfillAutoIn(BaseModel):
    symbol: str = Field(examples=["BTCUSDT"], min_length=1, max_length=20)


class BackfillAcceptedOut(BaseModel):
    job_id: uuid.UUID
    status: str


class BackfillStatusOut(BaseModel):
    job_id: uuid.UUID
    symbol: str
    category: str
    start_date: dt.date
    end_date: dt.date
    data_types: list[str]
    status: str = Field(description="pending, running, completed, partial, failed, cancelled")
    trigger: str
    progress: dict[str, Any] | None
    completed_days: list[str] = Field(description="'<data_type>:<YYYY-MM-DD>' entries")
    failed_days: list[dict[str, Any]]
    unavailable: dict[str, str] = Field(description="data types that cannot be fetched, and why")
    error_message: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


def _jobs(rt: Any) -> BackfillJobs:
    jobs = getattr(rt, "backfill", None)
    if jobs is None:
        raise ApiError(503, "backfill is disabled (FEATURE_SERVICE_BACKFILL_ENABLED=false)")
    if jobs.unavailable:
        raise ApiError(503, jobs.unavailable)
    return jobs


def _out(job: BackfillJobRecord) -> BackfillStatusOut:
    return BackfillStatusOut(
        job_id=job.id,
        **{k: getattr(job, k) for k in BackfillStatusOut.model_fields if k != "job_id"},
    )


@router.post(
    "/historical", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS,
    response_model=BackfillAcceptedOut,
)  # fmt: skip
async def backfill_historical(body: BackfillHistoricalIn, rt: RuntimeDep) -> BackfillAcceptedOut:
    try:
        job = await _jobs(rt).submit(
            body.symbol, body.start_date, body.end_date, body.data_types, category=body.category
        )
    except BackfillRequestError as exc:
        raise ApiError(400, str(exc)) from None
    return BackfillAcceptedOut(job_id=job.id, status=job.status)


@router.post(
    "/auto", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS,
    response_model=BackfillAcceptedOut,
)  # fmt: skip
async def backfill_auto(body: BackfillAutoIn, rt: RuntimeDep) -> BackfillAcceptedOut:
    try:
        job = await _jobs(rt).submit_auto(body.symbol)
    except BackfillRequestError as exc:
        raise ApiError(400, str(exc)) from None
    return BackfillAcceptedOut(job_id=job.id, status=job.status)


@router.get("/status/{job_id}", responses=ERRORS, response_model=BackfillStatusOut)
async def backfill_status(job_id: uuid.UUID, rt: RuntimeDep) -> BackfillStatusOut:
    job = await _jobs(rt).get(job_id)
    if job is None:
        raise ApiError(404, f"no backfill job {job_id}")
    return _out(job)


@router.post("/{job_id}/cancel", responses=ERRORS, response_model=BackfillStatusOut)
async def backfill_cancel(job_id: uuid.UUID, rt: RuntimeDep) -> BackfillStatusOut:
    job = await _jobs(rt).cancel(job_id)
    if job is None:
        raise ApiError(404, f"no backfill job {job_id}")
    return _out(job)
