"""GET /data-quality/report: the contract's DataQualityReport of a symbol over a period, plus
the incidents, computed from stored data (precomputed summaries or the raw store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError
from feature_service.api.schemas import ErrorOut
from feature_service.services.quality_report import InvalidPeriod, check_period, report_body

router = APIRouter(tags=["data-quality"])


class IncidentOut(BaseModel):
    kind: str
    category: str = Field(description="missing, anomaly, sequence, timestamp or desync")
    symbol: str
    stream: str
    start: str
    end: str | None = Field(description="null while still open at the end of the period")
    magnitude: float
    detail: str


class DataQualityReportOut(BaseModel):
    id: str
    symbol: str
    period_start: str
    period_end: str
    missing_rate: float = Field(ge=0, le=1)
    anomaly_rate: float = Field(ge=0, le=1)
    sequence_gaps: int = Field(ge=0)
    desynchronization_events: int = Field(ge=0)
    anomaly_details: dict[str, Any]
    sequence_gap_details: dict[str, Any]
    recommendations: list[str]
    created_at: str
    completeness: dict[str, float] = Field(description="per stream, 0-1")
    messages: dict[str, int] = Field(description="messages per stream in the period")
    timestamp_details: dict[str, Any] = Field(description="receive-vs-exchange skew distribution")
    desync_details: dict[str, Any]
    source: str = Field(description="live_summaries, raw_summaries or raw_replay")
    incidents: list[IncidentOut]


def parse_time(value: str, name: str) -> int:
    """ISO-8601 date-time (or date) -> µs; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"'{name}' is not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


@router.get(
    "/data-quality/report",
    response_model=DataQualityReportOut,
    responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 500: {"model": ErrorOut}},
    summary="Data quality report of a symbol over a period",
)
async def data_quality_report(
    runtime: RuntimeDep,
    symbol: Annotated[str, Query(pattern=r"^[A-Za-z0-9]{2,20}$", examples=["BTCUSDT"])],
    from_: Annotated[str, Query(alias="from", description="period start, ISO-8601 (UTC)")],
    to: Annotated[str, Query(description="period end, ISO-8601 (UTC), exclusive")],
) -> dict[str, Any]:
    start_us, end_us = parse_time(from_, "from"), parse_time(to, "to")
    try:
        check_period(start_us, end_us)
    except InvalidPeriod as exc:
        raise ApiError(400, f"invalid period: {exc}") from None
    result = await runtime.quality_reports.report(symbol.upper(), start_us, end_us)
    return report_body(result.report, result.record, result.source)
