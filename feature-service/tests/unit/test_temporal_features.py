"""Time-of-day features: known instants, continuity across midnight, and a datetime cross-check."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.features.temporal import TEMPORAL_FEATURES, compute_temporal

S = 1_000_000
MIDNIGHT = int(datetime(2024, 3, 10, tzinfo=UTC).timestamp()) * S


def compute(t: int) -> tuple[float, float]:
    out = FeatureFrame()
    compute_temporal(t, out)
    sin, cos = out.values["time_of_day_sin"], out.values["time_of_day_cos"]
    assert isinstance(sin, float) and isinstance(cos, float)
    return sin, cos


def test_feature_names_are_the_catalog_temporal_family() -> None:
    assert set(TEMPORAL_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "temporal"}


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (0, (0.0, 1.0)),
        (6, (1.0, 0.0)),
        (12, (0.0, -1.0)),
        (18, (-1.0, 0.0)),
        (3, (0.5**0.5, 0.5**0.5)),
    ],
)
def test_known_times_of_day(hours: int, expected: tuple[float, float]) -> None:
    sin, cos = compute(MIDNIGHT + hours * 3600 * S)
    assert sin == pytest.approx(expected[0], abs=1e-12)
    assert cos == pytest.approx(expected[1], abs=1e-12)


def test_same_time_on_different_days_is_identical() -> None:
    t = MIDNIGHT + 45_296 * S + 123_456
    assert compute(t) == compute(t + 86_400 * S * 1000)


def test_continuous_across_midnight() -> None:
    before = compute(MIDNIGHT - 1)
    after = compute(MIDNIGHT)
    assert math.dist(before, after) < 1e-9


def test_before_the_epoch() -> None:
    sin, cos = compute(-6 * 3600 * S)  # 1969-12-31 18:00 UTC
    assert sin == pytest.approx(-1.0, abs=1e-12)
    assert cos == pytest.approx(0.0, abs=1e-12)


def test_matches_datetime_seconds_since_midnight() -> None:
    rng = np.random.default_rng(3)
    for t in rng.integers(0, 4_000_000_000 * S, size=200).tolist():
        dt = datetime.fromtimestamp(t // S, tz=UTC)
        seconds = dt.hour * 3600 + dt.minute * 60 + dt.second + (t % S) / S
        sin, cos = compute(t)
        assert sin == pytest.approx(math.sin(2 * math.pi * seconds / 86_400), abs=1e-12)
        assert cos == pytest.approx(math.cos(2 * math.pi * seconds / 86_400), abs=1e-12)
