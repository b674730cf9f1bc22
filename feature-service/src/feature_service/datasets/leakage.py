"""Leakage prevention: purge, embargo, and the automatic after-build check (FR-012, SC-003).

A row at close time t has features computed from events in [t - lookback, t) and a label
computed from the book mid at t + horizon. Between a split and the next one (train ->
validation -> test) two cuts keep them apart:

* purge: an earlier-split row is dropped when its label window reaches the next split's start
  (t + horizon > next_start);
* embargo: a later-split row is dropped when it lies within ``embargo`` of its own split's
  start (t - embargo < start). By default the embargo is one horizon (FR-012: features use only
  data before t, and a row's features reading an earlier split's data read the past, which is
  not leakage; what leaks is a label reaching into a later split, which the purge prevents).
  A request may raise it (``embargo_seconds``) or ask for the conservative rule, the longest
  lookback of the features used (``"embargo": "max_lookback"``).

The raw data read before the first split is the longest lookback either way (warm-up), so
features are as warm at a split's start as in the live service.

Both cuts depend only on the split boundaries, never on neighbouring rows, so they apply to a
whole frame or batch by batch alike; on time-sorted rows each is one binary search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from feature_service.datasets.request import RISK_VOLATILITY_FEATURE, Period, from_us

if TYPE_CHECKING:
    from feature_service.datasets.request import DatasetBuildRequest
    from feature_service.registry.loader import Registry

_US = 1_000_000


def timestamps_us(df: pd.DataFrame) -> np.ndarray:
    """The ``timestamp`` column as int64 microseconds UTC (naive datetimes are UTC; integer
    columns are taken as microseconds already)."""
    col = df["timestamp"]
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.to_numpy(dtype=np.int64)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    return col.to_numpy(dtype="datetime64[us]").view(np.int64)


def require_sorted(ts: np.ndarray, what: str = "rows") -> None:
    if ts.size > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        raise ValueError(
            f"{what}: timestamps must be strictly increasing (one symbol, one interval)"
        )


def embargo_for(
    registry: Registry, features: Sequence[str] | None, target_type: str | None = None
) -> int:
    """The longest lookback (s) among the features a dataset uses; a risk-adjusted target
    also reads ``volatility_1m`` from each row, so that feature's lookback counts too."""
    lookback = registry.lookbacks
    names = list(registry.feature_names if features is None else features)
    if target_type == "risk_adjusted":
        names.append(RISK_VOLATILITY_FEATURE)
    return max((lookback[n] for n in names if n in lookback), default=0)


def embargo_rule(req: DatasetBuildRequest) -> str:
    """``horizon`` (default), ``max_lookback``, or ``seconds`` (an explicit embargo_seconds)."""
    if req.embargo_seconds is not None:
        return "seconds"
    return req.embargo or "horizon"


def embargo_seconds_for(req: DatasetBuildRequest, registry: Registry) -> int:
    rule = embargo_rule(req)
    if rule == "seconds":
        assert req.embargo_seconds is not None
        return req.embargo_seconds
    if rule == "max_lookback":
        return embargo_for(registry, req.features, req.target_config.type)
    return req.target_config.horizon


def embargo_problems(req: DatasetBuildRequest) -> list[str]:
    if req.embargo_seconds is None:
        return []
    if req.embargo is not None:
        return ["give either embargo or embargo_seconds, not both"]
    if req.embargo_seconds < req.target_config.horizon:
        return [
            f"embargo_seconds {req.embargo_seconds} is below the target horizon "
            f"{req.target_config.horizon} s (the default embargo); it can only be raised"
        ]
    return []


def validate_registry_for_leakage(registry: Registry) -> list[str]:
    """FR-022: every feature must forbid lookahead and look back a non-negative span."""
    problems = [f"registry: {e}" for e in registry.errors]
    if not registry.features:
        problems.append("registry declares no features")
    for feature in registry.features:
        if not feature.lookahead_forbidden:
            problems.append(f"feature {feature.name}: lookahead_forbidden must be true")
        if feature.lookback_s < 0:
            problems.append(f"feature {feature.name}: negative lookback {feature.lookback_s} s")
    return problems


@dataclass(slots=True)
class Split:
    """One split's rows (time-sorted) and the period they were cut from (None: random)."""

    name: str
    frame: pd.DataFrame
    period: Period | None = None
    purged: int = 0  # rows dropped because their label window reached the next split
    embargoed: int = 0  # rows dropped because their lookback reached the previous split
    empty_reason: str | None = None  # no_data_in_period | purge | embargo | purge_and_embargo
    # A streamed build's summary of a split already written: ``frame`` holds only its first
    # and last timestamps (all the leakage check reads), ``count`` its rows.
    count: int | None = None

    @property
    def records(self) -> int:
        return len(self.frame) if self.count is None else self.count

    def info(self) -> dict[str, object]:
        """The contract's splits_info entry plus the leakage bookkeeping."""
        out: dict[str, object] = {
            "records": self.records,
            "period_start": None if self.period is None else self.period.to_dict()["start"],
            "period_end": None if self.period is None else self.period.to_dict()["end"],
            "purged": self.purged,
            "embargoed": self.embargoed,
        }
        if self.empty_reason is not None:
            out["empty_reason"] = self.empty_reason
        return out


@dataclass(frozen=True, slots=True)
class LeakageGuard:
    horizon_s: int
    embargo_s: int
    warmup_s: int = 0  # raw data read before the first split (the longest lookback)
    embargo_rule: str = "seconds"

    def __post_init__(self) -> None:
        if self.horizon_s <= 0 or self.embargo_s < 0 or self.warmup_s < 0:
            raise ValueError("horizon_s must be > 0, embargo_s and warmup_s >= 0")

    @classmethod
    def for_request(cls, req: DatasetBuildRequest, registry: Registry) -> LeakageGuard:
        return cls(
            req.target_config.horizon,
            embargo_seconds_for(req, registry),
            warmup_s=embargo_for(registry, req.features, req.target_config.type),
            embargo_rule=embargo_rule(req),
        )

    @property
    def purge_s(self) -> int:
        return self.horizon_s

    def read_window(self, span: Period) -> Period:
        """The raw-data range a build must replay: feature warm-up before the first split,
        label look-ahead after the last."""
        before = max(self.embargo_s, self.warmup_s) * _US
        return Period(span.start_us - before, span.end_us + self.horizon_s * _US)

    def purge_and_embargo(
        self, train: Split, validation: Split, test: Split | None = None
    ) -> list[Split]:
        return self.apply([s for s in (train, validation, test) if s is not None])

    def apply(self, splits: Sequence[Split]) -> list[Split]:
        """Cut each split (given in time order, each with its period) against its neighbours;
        counts add to what the split already carries, so batches can be guarded one by one."""
        out: list[Split] = []
        for i, split in enumerate(splits):
            if split.period is None:
                raise ValueError(f"{split.name}: purge and embargo need the split's period")
            nxt = splits[i + 1] if i + 1 < len(splits) else None
            if nxt is not None and nxt.period is None:
                raise ValueError(f"{nxt.name}: purge and embargo need the split's period")
            ts = timestamps_us(split.frame)
            require_sorted(ts, split.name)
            n = ts.size
            lo = 0
            if i > 0:
                lo = int(np.searchsorted(ts, split.period.start_us + self.embargo_s * _US))
            hi = n
            if nxt is not None:
                assert nxt.period is not None
                # keep t + horizon <= next_start, i.e. t < next_start - horizon + 1 us
                limit = nxt.period.start_us - self.horizon_s * _US + 1
                hi = int(np.searchsorted(ts, limit))
            embargoed = min(lo, n)
            purged = n - max(hi, embargoed)
            frame = split.frame.iloc[lo:hi] if hi > lo else split.frame.iloc[0:0]
            out.append(
                replace(
                    split,
                    frame=frame,
                    purged=split.purged + purged,
                    embargoed=split.embargoed + embargoed,
                )
            )
        return out


def check_no_leakage(splits: Iterable[Split], horizon_s: int, embargo_s: int) -> list[str]:
    """Verify on the final rows (splits in time order) that no split can see another's data:
    rows lie in their own period and in time order; for every earlier split i and later
    split j, max t_i + horizon <= min t_j and <= j's start; min t_j - embargo >= j's start and
    >= max t_i + horizon. Empty list = leak-free (SC-003, SC-009)."""
    h_us, e_us = horizon_s * _US, embargo_s * _US
    bounds: list[tuple[Split, int, int]] = []
    problems: list[str] = []
    for split in splits:
        ts = timestamps_us(split.frame)
        if ts.size == 0:
            continue
        if ts.size > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            problems.append(f"{split.name}: rows are not in strictly increasing time order")
        lo, hi = int(ts.min()), int(ts.max())
        if split.period is not None and (lo < split.period.start_us or hi >= split.period.end_us):
            problems.append(
                f"{split.name}: rows from {_fmt(lo)} to {_fmt(hi)} fall outside its period "
                f"[{_fmt(split.period.start_us)}, {_fmt(split.period.end_us)})"
            )
        bounds.append((split, lo, hi))
    for j, (later, lo_j, _) in enumerate(bounds):
        if j > 0 and later.period is not None and lo_j - e_us < later.period.start_us:
            problems.append(
                f"{later.name}: the row at {_fmt(lo_j)} has a {embargo_s} s feature lookback "
                f"reaching before the split's start {_fmt(later.period.start_us)} (embargo)"
            )
        for earlier, _, hi_i in bounds[:j]:
            if hi_i >= lo_j:
                problems.append(
                    f"{earlier.name} and {later.name} overlap in time: {earlier.name} ends at "
                    f"{_fmt(hi_i)}, {later.name} starts at {_fmt(lo_j)}"
                )
                continue
            if hi_i + h_us > lo_j or (
                later.period is not None and hi_i + h_us > later.period.start_us
            ):
                problems.append(
                    f"{earlier.name} row at {_fmt(hi_i)} has a {horizon_s} s label window "
                    f"reaching into {later.name} (purge)"
                )
            elif lo_j - e_us < hi_i + h_us:
                problems.append(
                    f"{later.name} row at {_fmt(lo_j)} has a {embargo_s} s feature lookback "
                    f"reaching data {earlier.name} used up to {_fmt(hi_i + h_us)} (embargo)"
                )
    return problems


def _fmt(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")
