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

from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family
from feature_service.features.frame import FeatureFrame
from feature_service.market.events import US_PER_S

NO_FUNDING_DATA = "no_funding_data"
FUNDING_TIME_PASSED = "funding_time_passed"

PERPETUAL_FEATURES: tuple[str, ...] = ("funding_rate", "time_to_funding")


class FundingFamily(Family):
    key = "funding"
    group = "perpetual"
    inputs = ("funding", "ticker")
    templates: ClassVar = {o: o for o in PERPETUAL_FEATURES}
    short: ClassVar = templates

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        if "funding_rate" in names:
            out.set(names["funding_rate"], ctx.funding_rate, NO_FUNDING_DATA)
        if "time_to_funding" in names:
            name = names["time_to_funding"]
            next_time = ctx.next_funding_time
            if next_time is None:
                out.null(name, NO_FUNDING_DATA)
            elif next_time <= ctx.t:
                out.null(name, FUNDING_TIME_PASSED)
            else:
                out.set(name, (next_time - ctx.t) / US_PER_S)


FAMILIES: tuple[type[Family], ...] = (FundingFamily,)


def compute_perpetual(
    funding_rate: float | None,
    next_funding_time: int | None,
    t: int,
    out: FeatureFrame,
) -> None:
    """``funding_rate`` and ``time_to_funding`` as of ``t`` (microseconds), by the operator
    ``SymbolState`` runs."""
    from feature_service.features.library import run_group

    ctx = ComputeContext()
    ctx.at(t)
    ctx.funding_rate = funding_rate
    ctx.next_funding_time = next_funding_time
    run_group(PERPETUAL_FEATURES, ctx, out)
