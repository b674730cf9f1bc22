"""Time-of-day features: the position of ``t`` in its UTC day on the unit circle.

time_of_day_sin / time_of_day_cos = sin / cos(2π · s / 86 400), where s is the number of seconds
(with the microseconds as a fraction) since the UTC midnight of ``t``. Unix time has no leap
seconds, so every UTC day is exactly 86 400 s and no calendar is needed. Never null. The pair
is continuous across midnight (23:59:59 is next to 00:00:00), which a raw hour is not.
"""

from __future__ import annotations

import math

from feature_service.features.frame import FeatureFrame

US_PER_DAY = 86_400_000_000
_RADIANS_PER_US = 2.0 * math.pi / US_PER_DAY

TEMPORAL_FEATURES: tuple[str, ...] = ("time_of_day_sin", "time_of_day_cos")


def compute_temporal(t: int, out: FeatureFrame) -> None:
    """Set the time-of-day pair for ``t`` (int microseconds since the epoch, UTC)."""
    angle = (t % US_PER_DAY) * _RADIANS_PER_US  # Python's % is non-negative for t < 0 too
    out.set("time_of_day_sin", math.sin(angle))
    out.set("time_of_day_cos", math.cos(angle))
