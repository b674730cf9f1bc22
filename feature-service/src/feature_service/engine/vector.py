"""FeatureVector: what the engine emits, the API serves and features.live carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from feature_service.market.timeutil import format_iso_us
from feature_service.quality.monitor import QualityMask


def interval_label(seconds: int) -> str:
    """1 -> "1s", 60 -> "1m", 3600 -> "1h": the names the API and queue consumers use."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_interval(label: str) -> int:
    """The inverse of ``interval_label``: "1s" -> 1, "1m" -> 60, "60s" -> 60, "1h" -> 3600."""
    text = label.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    if not text or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"bad interval {label!r} (expected e.g. 1s, 3s, 15s, 1m)")
    return int(text[:-1]) * units[text[-1]]


@dataclass(slots=True, frozen=True)
class FeatureVector:
    symbol: str
    timestamp: int  # close time t, µs on the service receive clock
    interval_s: int
    features: dict[str, float | int | None]  # shared between intervals closing at t: read-only
    registry_version: str
    null_reasons: dict[str, str] = field(default_factory=dict)
    trace_id: str | None = None  # trace_id of the last event the vector includes
    computation_us: float = 0.0  # wall time spent computing (not part of the features)
    data_age_ms: float | None = None  # t - receive time of the symbol's last event
    stale: bool = False
    depth_age_ms: float | None = None  # t - receive time of the REST depth book (None: no REST)
    quality: QualityMask | None = None  # input freshness and book sync (not a feature)

    def to_message(self) -> dict[str, Any]:
        """The JSON document published on features.live and served by GET /features/latest
        (schema: specs/005-feature-service/contracts/features-live.schema.json)."""
        return {
            "symbol": self.symbol,
            "timestamp": format_iso_us(self.timestamp) + "Z",
            "timestamp_us": self.timestamp,
            "interval": interval_label(self.interval_s),
            "features": self.features,
            "feature_registry_version": self.registry_version,
            "trace_id": self.trace_id,
            "computation_latency_ms": round(self.computation_us / 1000.0, 4),
            "data_age_ms": self.data_age_ms,
            "stale": self.stale,
            "depth_age_ms": self.depth_age_ms,
            "null_reasons": self.null_reasons,
            **quality_fields(self.quality),
        }


def quality_fields(mask: QualityMask | None) -> dict[str, Any]:
    """``quality_ok`` and ``quality`` (reasons, book sync, age of each input stream's last
    message in ms), kept apart from ``features``: the feature values never change."""
    if mask is None:
        return {}
    return {"quality_ok": mask.ok, "quality": mask.to_message()}
