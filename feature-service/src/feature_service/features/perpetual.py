"""Perpetual-contract features: the funding rate and the time left to the next funding.

Inputs are the latest known values; the caller keeps them, taking each from whichever of the
funding stream and the ticker delivered it most recently (receive time), so both features come
from the service clock and never from a wall-clock read here.
- funding_rate = the latest funding rate (a fraction per funding period, e.g. 0.0001 = 0.01 %).
  Null ``no_funding_data`` when none has been seen.
- time_to_funding = (next_funding_time - t) / 1e6, seconds (times in microseconds). Null
  ``no_funding_data`` when no next funding time has been seen, ``funding_time_passed`` when it
  is at or before ``t`` (the announced funding is over and no newer time has arrived yet).
"""

from __future__ import annotations

from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S

NO_FUNDING_DATA = "no_funding_data"
FUNDING_TIME_PASSED = "funding_time_passed"

PERPETUAL_FEATURES: tuple[str, ...] = ("funding_rate", "time_to_funding")


def compute_perpetual(
    funding_rate: float | None,
    next_funding_time: int | None,
    t: int,
    out: FeatureFrame,
) -> None:
    """Set ``funding_rate`` and ``time_to_funding`` as of ``t`` (microseconds)."""
    out.set("funding_rate", funding_rate, NO_FUNDING_DATA)
    if next_funding_time is None:
        out.null("time_to_funding", NO_FUNDING_DATA)
    elif next_funding_time <= t:
        out.null("time_to_funding", FUNDING_TIME_PASSED)
    else:
        out.set("time_to_funding", (next_funding_time - t) / US_PER_S)
