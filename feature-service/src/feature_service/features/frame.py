"""FeatureFrame: one vector's values plus the reason each missing value is missing."""

from __future__ import annotations

import math
from collections.abc import Sequence


class FeatureFrame:
    """Collects feature values. Every plan name ends up either with a finite value or with a
    null reason; NaN and infinities are refused here so no caller can leak them.

    ``names`` (vector order) and ``ints`` (int-typed names) come from the active plan; without
    them the bundled catalog's are used."""

    __slots__ = ("ints", "names", "reasons", "values")

    def __init__(
        self, names: Sequence[str] | None = None, ints: frozenset[str] | None = None
    ) -> None:
        if names is None or ints is None:
            from feature_service.features.catalog import FEATURE_NAMES, INT_FEATURES

            names = FEATURE_NAMES if names is None else names
            ints = INT_FEATURES if ints is None else ints
        self.names = names
        self.ints = ints
        self.values: dict[str, float | int | None] = {}
        self.reasons: dict[str, str] = {}

    def set(self, name: str, value: float | int | None, reason_if_none: str = "no_data") -> None:
        if value is None:
            self.null(name, reason_if_none)
            return
        if name in self.ints:
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
        """Every plan name in plan order; one nobody set is null ("not_computed")."""
        out: dict[str, float | int | None] = {}
        values = self.values
        for name in self.names:
            if name not in values:
                self.null(name, "not_computed")
            out[name] = values[name]
        return out
