"""Schemas of GET /stats* (T235-T240), in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class UsageOut(BaseModel):
    size_bytes: int = Field(ge=0)
    file_count: int = Field(ge=0)


class RawKindUsageOut(UsageOut):
    days: dict[str, UsageOut] = Field(description="per UTC day folder (YYYY-MM-DD)")


class RawStorageOut(UsageOut):
    kinds: dict[str, RawKindUsageOut] = Field(
        description="per raw kind (orderbook/snapshots, orderbook/deltas, trades, ...)"
    )


class DatasetStorageOut(UsageOut):
    datasets: int = Field(ge=0, description="dataset folders")


class StorageStatsOut(BaseModel):
    raw_data_storage: RawStorageOut
    dataset_storage: DatasetStorageOut
    archive_storage: UsageOut
    computed_at: datetime


class SymbolProcessingOut(BaseModel):
    symbol: str
    events_processed_1h: int
    events_processed_24h: int
    features_computed_1h: dict[str, int] = Field(description="vectors per interval, last hour")
    features_computed_24h: dict[str, int] = Field(description="vectors per interval, last 24 h")


class ProcessingStatsOut(BaseModel):
    """Sliding counts (per minute, on the service clock): not totals since start."""

    events_processed_1h: int
    events_processed_24h: int
    features_computed_1h: int
    features_computed_24h: int
    events_processed_since_start: int
    features_computed_since_start: int
    symbols: list[SymbolProcessingOut]
    computed_at: datetime
    clock_now: str | None = Field(description="the service clock the windows end at")


class BookLevelsOut(BaseModel):
    bids: int
    asks: int


class BookDepthOut(BaseModel):
    """What the upstream's book depth allows (services/depth_status.py)."""

    stream_depth: int | None = Field(description="depth of the stream's topic (1 for orderbook.1)")
    depth_features_from: str = Field(description="stream | rest | none")
    rest_depth_age_s: float | None = Field(description="age of the REST depth book, if any")
    unavailable_features: list[str] = Field(description="depth features that cannot be computed")
    reason: str | None = Field(description="stream_depth_limited | depth_stale | null")


class RollingWindowsStatsOut(BaseModel):
    symbol: str
    intervals: dict[str, int] = Field(description="vectors computed per interval since start")
    total_trades_count: int = Field(description="trades held in the trade windows")
    total_klines_count: int = Field(description="confirmed 1 m candles held")
    book_levels: BookLevelsOut
    book_status: str
    book_depth: BookDepthOut
    memory_usage_bytes: int = Field(
        description="measured: bytes of the symbol's state and everything it references"
    )
    last_update: str | None = Field(description="close time of the symbol's latest vector")


class SubscriptionStatsOut(BaseModel):
    queue_name: str
    messages_in_queue: int | None = Field(description="ready messages (broker's count)")
    active_consumers: int | None
    subscription_status: str = Field(description="consuming | idle | missing | unreachable")
    messages_consumed: int = Field(description="messages this process consumed since start")
    backend: str = Field(description="rabbitmq, or memory (the embedded in-process bus)")


class ServiceStatsOut(BaseModel):
    tracked_symbols: list[str]
    service_status: str = Field(description="healthy | unhealthy (as /health)")
    last_health_check: str | None
    mode: str = Field(description="embedded | rabbitmq")
    version: str
    registry_version: str
    intervals: list[str]
    uptime_seconds: float


class AllStatsOut(BaseModel):
    """Every part, collected concurrently; a part that failed is null and its error is in
    ``errors`` (the other parts are still served)."""

    storage: StorageStatsOut | None
    processing: ProcessingStatsOut | None
    rolling_windows: list[RollingWindowsStatsOut] | None
    subscriptions: list[SubscriptionStatsOut] | None
    service: ServiceStatsOut | None
    errors: dict[str, str]
    collected_at: datetime
