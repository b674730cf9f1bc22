"""Perpetual features: funding rate and time to funding on the service clock."""

from __future__ import annotations

import pytest

from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.features.perpetual import PERPETUAL_FEATURES, compute_perpetual

S = 1_000_000
T = 1_700_000_100 * S


def compute(rate: float | None, next_time: int | None, t: int = T) -> FeatureFrame:
    out = FeatureFrame()
    compute_perpetual(rate, next_time, t, out)
    return out


def test_feature_names_are_the_catalog_perpetual_family() -> None:
    assert set(PERPETUAL_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "perpetual"}


def test_values_hand_computed() -> None:
    out = compute(0.0001, T + 3600 * S + 250_000)
    assert out.values["funding_rate"] == 0.0001
    assert out.values["time_to_funding"] == 3600.25
    assert out.reasons == {}


def test_negative_and_zero_rates_are_values() -> None:
    assert compute(-0.00025, None).values["funding_rate"] == -0.00025
    assert compute(0.0, None).values["funding_rate"] == 0.0


def test_time_to_funding_follows_t_not_a_clock() -> None:
    next_time = T + 100 * S
    assert compute(0.0001, next_time, t=T).values["time_to_funding"] == 100.0
    assert compute(0.0001, next_time, t=T + 99 * S).values["time_to_funding"] == 1.0
    assert compute(0.0001, next_time, t=next_time - 1).values["time_to_funding"] == 1e-6


def test_nothing_seen() -> None:
    out = compute(None, None)
    assert out.values == {"funding_rate": None, "time_to_funding": None}
    assert out.reasons == {"funding_rate": "no_funding_data", "time_to_funding": "no_funding_data"}


@pytest.mark.parametrize("delta", [0, -1, -3600 * S])
def test_funding_time_passed(delta: int) -> None:
    out = compute(0.0001, T + delta)
    assert out.values["time_to_funding"] is None
    assert out.reasons["time_to_funding"] == "funding_time_passed"
    assert out.values["funding_rate"] == 0.0001
