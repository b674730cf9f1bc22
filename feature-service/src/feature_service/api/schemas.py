"""HTTP schemas (OpenAPI). Names carry their role: ...Out is what the API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    error: str = Field(examples=["not_found"])
    message: str = Field(examples=["no features yet for symbol ETHUSDT"])
    trace_id: str


class FeatureVectorOut(BaseModel):
    """The contract's FeatureVector plus the live-service fields (interval, latency, staleness)."""

    timestamp: datetime = Field(description="interval close time (service receive clock, UTC)")
    timestamp_us: int = Field(description="the same instant in microseconds since the epoch")
    symbol: str = Field(examples=["BTCUSDT"])
    interval: Literal["1s", "3s", "15s", "1m"] | str = Field(examples=["1s"])
    features: dict[str, float | int | None] = Field(
        description="every feature of the registry; null when it cannot be computed"
    )
    feature_registry_version: str = Field(examples=["1.1.0"])
    trace_id: str | None = Field(None, description="trace_id of the last input message included")
    computation_latency_ms: float
    data_age_ms: float | None = Field(description="close time minus the last event's receive time")
    stale: bool = Field(description="true when the symbol's data is older than the stale limit")
    depth_age_ms: float | None = Field(
        None,
        description="close time minus the receive time of the REST depth book that fed the"
        " depth features (FEATURE_SERVICE_DEPTH_SOURCE=rest); null when they come from the stream",
    )
    null_reasons: dict[str, str] = Field(description="why each null feature is null")
    quality_ok: bool | None = Field(
        None, description="true when every input was fresh and the book in sync at t"
    )
    quality: dict[str, Any] | None = Field(
        None, description="reasons (when not ok), book_in_sync, age_ms of each input stream"
    )


class HealthCheckOut(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: datetime
    services: dict[str, str] = Field(
        description="contract form: database, message_queue, position_manager -> "
        "connected/disconnected, or not_applicable for a dependency this service does not "
        "have (position_manager always)"
    )
    checks: dict[str, dict[str, object]] = Field(
        description="readiness detail, each with ok and, when not ok, a reason: bus, "
        "metadata_store, registry, raw_storage, market_data, computation, subscriptions"
    )
    ready: bool
    # T204: flat fields beside ``checks``, so a dashboard reads them without parsing JSON.
    database_connected: bool | None = None
    queue_connected: bool | None = None
    feature_registry_loaded: bool | None = None
    latest_feature_computation_timestamp: datetime | None = Field(
        None, description="close time of the newest vector (service clock)"
    )
    average_latency_ms_last_5min: float | None = Field(
        None, description="mean vector computation time over the last 5 minutes"
    )
    data_quality_ok: bool | None = Field(
        None, description="no stale symbol and every book usable (and the quality check, if any)"
    )
    active_dataset_builds_count: int | None = None
    last_dataset_build_duration_seconds: float | None = None
