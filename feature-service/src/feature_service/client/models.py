"""What the service returns, as pydantic models (unknown fields are ignored, so a newer
service does not break an older client)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FeatureVector(_Model):
    """One vector (GET /features/latest, features.live): ``features`` holds only computed
    features; every other feature of the version is a key of ``null_reasons``."""

    symbol: str
    timestamp: datetime
    timestamp_us: int
    interval: str
    features: dict[str, float]
    feature_registry_version: str
    trace_id: str | None = None
    computation_latency_ms: float | None = None
    data_age_ms: float | None = None
    stale: bool = False
    null_reasons: dict[str, str] = Field(default_factory=dict)


DatasetStatus = Literal["building", "ready", "failed"]


class DatasetSummary(_Model):
    """An item of GET /dataset/list."""

    id: UUID
    symbol: str
    status: DatasetStatus
    split_strategy: str
    train_records: int
    validation_records: int
    test_records: int
    feature_registry_version: str
    created_at: datetime
    completed_at: datetime | None = None


class DatasetMetadata(DatasetSummary):
    """GET /dataset/{id}: a build's state, progress, counts and where to download it."""

    state: str | None = None
    train_period_start: datetime | None = None
    train_period_end: datetime | None = None
    validation_period_start: datetime | None = None
    validation_period_end: datetime | None = None
    test_period_start: datetime | None = None
    test_period_end: datetime | None = None
    walk_forward_config: dict[str, Any] | None = None
    target_config: dict[str, Any] = Field(default_factory=dict)
    output_format: str = "parquet"
    feature_interval: str | None = None
    storage_path: str | None = None
    estimated_completion: datetime | None = None
    error_message: str | None = None
    queue_position: int | None = None
    progress: dict[str, Any] | None = None
    folds: list[dict[str, Any]] | None = None
    warnings: list[str] = Field(default_factory=list)
    download_urls: dict[str, str] = Field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Build progress 0-1 (1 when ready)."""
        if self.status == "ready":
            return 1.0
        return float((self.progress or {}).get("fraction") or 0.0)
