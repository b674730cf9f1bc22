"""Time-of-day features: the position of ``t`` in its UTC day on the unit circle.

time_of_day_sin / time_of_day_cos = sin / cos(2π · s / 86 400), where s is the number of seconds
(with the microseconds as a fraction) since the UTC midnight of ``t``. Unix time has no leap
seconds, so every UTC day is exactly 86 400 s and no calendar is needed. Never null. The pair
is continuous across midnight (23:59:59 is next to 00:00:00), which a raw hour is not.
"""

from __future__ import annotations

import math
from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame

US_PER_DAY = 86_400_000_000
_RADIANS_PER_US = 2.0 * math.pi / US_PER_DAY

TEMPORAL_FEATURES: tuple[str, ...] = ("time_of_day_sin", "time_of_day_cos")


class TimeOfDay(Family):
    key = "time_of_day"
    group = "temporal"
    inputs = ("clock",)
    templates: ClassVar = {"sin": "time_of_day_sin", "cos": "time_of_day_cos"}
    short: ClassVar = templates

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        angle = (ctx.t % US_PER_DAY) * _RADIANS_PER_US  # Python's % is non-negative for t < 0
        names = self.names
        if "sin" in names:
            out.set(names["sin"], math.sin(angle))
        if "cos" in names:
            out.set(names["cos"], math.cos(angle))


FAMILIES: tuple[type[Family], ...] = (TimeOfDay,)


def compute_temporal(t: int, out: FeatureFrame) -> None:
    """Set the time-of-day pair for ``t`` (int microseconds since the epoch, UTC)."""
    from feature_service.features.library import run_group

    ctx = ComputeContext()
    ctx.at(t)
    run_group(TEMPORAL_FEATURES, ctx, out)
