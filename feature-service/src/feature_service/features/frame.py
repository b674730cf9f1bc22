"""FeatureFrame: one vector's values plus the reason each missing value is missing."""

from __future__ import annotations

import math

from feature_service.features.catalog import FEATURE_NAMES, INT_FEATURES


class FeatureFrame:
    """Collects feature values. Every catalog name ends up either with a finite value or with a
    null reason; NaN and infinities are refused here so no caller can leak them."""

    __slots__ = ("reasons", "values")

    def __init__(self) -> None:
        self.values: dict[str, float | int | None] = {}
        self.reasons: dict[str, str] = {}

    def set(self, name: str, value: float | int | None, reason_if_none: str = "no_data") -> None:
        if value is None:
            self.null(name, reason_if_none)
            return
        if name in INT_FEATURES:
            self.values[name] = int(value)
            self.reasons.pop(name, None)
            return
        value = float(value)
        if not math.isfinite(value):
            self.null(name, "non_finite")
            return
        self.values[name] = value
        self.reasons.pop(name, None)

    def null(self, name: str, reason: str) -> None:
        self.values[name] = None
        self.reasons[name] = reason

    def complete(self) -> dict[str, float | int | None]:
        """Every catalog name in catalog order; one nobody set is null ("not_computed")."""
        out: dict[str, float | int | None] = {}
        for name in FEATURE_NAMES:
            if name not in self.values:
                self.null(name, "not_computed")
            out[name] = self.values[name]
        return out
