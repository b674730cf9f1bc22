"""The dataset build request (POST /dataset/build) and its semantic validation.

Pydantic checks shapes and types (a 422 territory); ``validate_request`` checks what only the
whole request plus the loaded registry can tell — period order, folds that fit, horizons that
fit, configurations that purge and embargo would empty — and returns every problem as a
sentence, so the API can answer 400 with all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from feature_service.engine.vector import parse_interval

if TYPE_CHECKING:
    from feature_service.registry.loader import Registry

TargetType = Literal["regression", "classification", "risk_adjusted"]
SplitStrategy = Literal["time_based", "walk_forward", "random"]
OutputFormat = Literal["parquet", "csv", "hdf5"]
FeatureInterval = Literal["1s", "3s", "15s", "1m"]

SPLIT_NAMES: tuple[str, str, str] = ("train", "validation", "test")
DAY_S = 86_400
# The feature risk-adjusted targets divide by (FR-011.2): its lookback joins the embargo.
RISK_VOLATILITY_FEATURE = "volatility_1m"


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (the contract's examples carry no offset)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_us(value: datetime) -> int:
    """Exact integer microseconds since the epoch (no float round trip)."""
    delta = to_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * DAY_S + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open time range [start_us, end_us) in integer microseconds UTC."""

    start_us: int
    end_us: int

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Period:
        return cls(to_us(start), to_us(end))

    @property
    def start(self) -> datetime:
        return from_us(self.start_us)

    @property
    def end(self) -> datetime:
        return from_us(self.end_us)

    @property
    def length_s(self) -> float:
        return (self.end_us - self.start_us) / 1e6

    def to_dict(self) -> dict[str, str]:
        return {"start": _iso(self.start), "end": _iso(self.end)}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class _Strict(BaseModel):
    # Unknown keys are refused: a misspelt "treshold" must not silently become the default.
    model_config = ConfigDict(extra="forbid")


class TargetConfig(_Strict):
    type: TargetType
    horizon: int = Field(gt=0, description="seconds ahead of the row's close time")
    threshold: float = Field(default=0.001, ge=0, description="classification: |r| <= thr is flat")


class WalkForwardConfig(_Strict):
    train_window_days: int = Field(gt=0)
    validation_window_days: int = Field(gt=0)
    step_days: int = Field(gt=0)
    start_date: datetime
    end_date: datetime
    min_train_samples: int = Field(default=1000, ge=0)
    # FR-014.2: the last usable fold's validation window serves as the test set.
    last_fold_as_test: bool = True

    @field_validator("start_date", "end_date")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return to_utc(value)


class RandomSplitConfig(_Strict):
    """FR-014.3, for testing only: rows of [start_date, end_date) go to splits at random."""

    start_date: datetime
    end_date: datetime
    train_fraction: float = Field(default=0.7, gt=0, lt=1)
    validation_fraction: float = Field(default=0.15, ge=0, lt=1)
    seed: int = 0

    @field_validator("start_date", "end_date")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return to_utc(value)

    @property
    def test_fraction(self) -> float:
        return max(0.0, 1.0 - self.train_fraction - self.validation_fraction)


class DatasetBuildRequest(_Strict):
    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$")
    split_strategy: SplitStrategy
    train_period_start: datetime | None = None
    train_period_end: datetime | None = None
    validation_period_start: datetime | None = None
    validation_period_end: datetime | None = None
    test_period_start: datetime | None = None
    test_period_end: datetime | None = None
    walk_forward_config: WalkForwardConfig | None = None
    random_config: RandomSplitConfig | None = None
    target_config: TargetConfig
    feature_registry_version: str = Field(min_length=1)
    data_leakage_check: bool = True
    output_format: OutputFormat = "parquet"
    feature_interval: FeatureInterval = "1s"
    features: list[str] | None = None
    # Drop rows whose quality mask is not ok (stale input or book out of sync); the manifest
    # says how many. Targets are computed before, from every row.
    quality_filter: bool = False

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "train_period_start",
        "train_period_end",
        "validation_period_start",
        "validation_period_end",
        "test_period_start",
        "test_period_end",
    )
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value)

    @property
    def interval_s(self) -> int:
        return parse_interval(self.feature_interval)

    def selected_features(self, registry: Registry) -> tuple[str, ...]:
        """The requested subset in registry order, or every registry feature."""
        if self.features is None:
            return registry.feature_names
        wanted = set(self.features)
        return tuple(name for name in registry.feature_names if name in wanted)

    def periods(self) -> dict[str, Period]:
        """The time-based periods that are fully given (start and end), by split name."""
        out: dict[str, Period] = {}
        for name in SPLIT_NAMES:
            start = getattr(self, f"{name}_period_start")
            end = getattr(self, f"{name}_period_end")
            if start is not None and end is not None:
                out[name] = Period.of(start, end)
        return out

    def span(self) -> Period | None:
        """The range whose rows the splits can use (before warm-up and label look-ahead)."""
        if self.split_strategy == "walk_forward":
            cfg = self.walk_forward_config
            return None if cfg is None else Period.of(cfg.start_date, cfg.end_date)
        if self.split_strategy == "random":
            rnd = self.random_config
            return None if rnd is None else Period.of(rnd.start_date, rnd.end_date)
        periods = self.periods()
        if not periods:
            return None
        return Period(
            min(p.start_us for p in periods.values()), max(p.end_us for p in periods.values())
        )


def walk_forward_windows(cfg: WalkForwardConfig) -> list[tuple[Period, Period]]:
    """Every fold's (train, validation) periods: fold k starts k * step_days after start_date,
    and folds are generated while the validation window ends no later than end_date."""
    start = to_us(cfg.start_date)
    end = to_us(cfg.end_date)
    day_us = DAY_S * 1_000_000
    train_us = cfg.train_window_days * day_us
    val_us = cfg.validation_window_days * day_us
    step_us = cfg.step_days * day_us
    windows: list[tuple[Period, Period]] = []
    fold_start = start
    while fold_start + train_us + val_us <= end:
        split_at = fold_start + train_us
        windows.append((Period(fold_start, split_at), Period(split_at, split_at + val_us)))
        fold_start += step_us
    return windows


def validate_request(
    req: DatasetBuildRequest, registry: Registry, *, embargo_s: int | None = None
) -> list[str]:
    """Every semantic problem of ``req`` against the loaded ``registry`` (empty = buildable).

    ``embargo_s`` overrides the embargo derived from the registry (tests); leakage problems
    are reported only when ``data_leakage_check`` is on — purge and embargo are applied to
    every build regardless, so with the check off such a build yields empty splits and
    warnings instead of a refusal.
    """
    # leakage.py builds on this module's types, so it is imported here, not at the top
    from feature_service.datasets.leakage import embargo_for, validate_registry_for_leakage

    problems: list[str] = []
    if not registry.is_valid:
        problems.append("the loaded feature registry is invalid: " + "; ".join(registry.errors))
    if req.feature_registry_version != registry.version:
        problems.append(
            f"feature_registry_version {req.feature_registry_version!r} does not match the "
            f"loaded registry version {registry.version!r}"
        )
    problems.extend(_feature_problems(req, registry))

    horizon = req.target_config.horizon
    if horizon % req.interval_s:
        problems.append(
            f"target_config.horizon {horizon} s is not a multiple of the feature interval "
            f"{req.feature_interval} ({req.interval_s} s)"
        )
    if embargo_s is None:
        embargo_s = embargo_for(registry, req.features, req.target_config.type)
    leakage: list[str] = []
    if req.data_leakage_check:
        leakage.extend(validate_registry_for_leakage(registry))

    if req.split_strategy == "time_based":
        problems.extend(_time_based_problems(req, horizon, embargo_s, leakage))
    elif req.split_strategy == "walk_forward":
        problems.extend(_walk_forward_problems(req, horizon, embargo_s, leakage))
    else:
        problems.extend(_random_problems(req))
    if req.data_leakage_check:
        problems.extend(leakage)
    return problems


def _feature_problems(req: DatasetBuildRequest, registry: Registry) -> list[str]:
    if req.features is None:
        return []
    problems: list[str] = []
    if not req.features:
        problems.append("features must not be empty (omit it to use every registry feature)")
    known = set(registry.feature_names)
    unknown = sorted({f for f in req.features if f not in known})
    if unknown:
        problems.append(
            f"unknown features (not in registry {registry.version!r}): {', '.join(unknown)}"
        )
    duplicated = sorted({f for f in req.features if req.features.count(f) > 1})
    if duplicated:
        problems.append(f"features listed more than once: {', '.join(duplicated)}")
    return problems


def _time_based_problems(
    req: DatasetBuildRequest, horizon: int, embargo_s: int, leakage: list[str]
) -> list[str]:
    missing = [
        f"{name}_period_{edge}"
        for name in SPLIT_NAMES
        for edge in ("start", "end")
        if getattr(req, f"{name}_period_{edge}") is None
    ]
    if missing:
        return [f"time_based split needs every period; missing: {', '.join(missing)}"]
    periods = req.periods()
    problems: list[str] = []
    for name, period in periods.items():
        if period.start_us >= period.end_us:
            problems.append(
                f"{name}_period_start {_iso(period.start)} must be before "
                f"{name}_period_end {_iso(period.end)}"
            )
    for earlier, later in (("train", "validation"), ("validation", "test")):
        a, b = periods[earlier], periods[later]
        if a.end_us > b.start_us:
            problems.append(
                f"{earlier} and {later} periods overlap or are out of order: {earlier}_period_end "
                f"{_iso(a.end)} is after {later}_period_start {_iso(b.start)} (periods must be "
                f"ordered train < validation < test; a shared boundary is allowed)"
            )
    if problems:
        return problems
    for name in ("validation", "test"):
        if horizon > periods[name].length_s:
            problems.append(
                f"target horizon {horizon} s is longer than the {name} period "
                f"({periods[name].length_s:g} s)"
            )
    # What purge and embargo would keep of each split: train loses rows whose label window
    # reaches the next split's start; later splits lose rows whose lookback reaches before
    # their own start.
    guarded = _guarded_spans(periods, horizon, embargo_s)
    for name, (lo, hi) in guarded.items():
        if hi <= lo:
            leakage.append(_empty_reason(name, periods[name], horizon, embargo_s))
    return problems


def _guarded_spans(
    periods: dict[str, Period], horizon: int, embargo_s: int
) -> dict[str, tuple[int, int]]:
    h_us, e_us = horizon * 1_000_000, embargo_s * 1_000_000
    out: dict[str, tuple[int, int]] = {}
    names = [n for n in SPLIT_NAMES if n in periods]
    for i, name in enumerate(names):
        period = periods[name]
        lo = period.start_us + (e_us if i > 0 else 0)
        hi = period.end_us
        if i + 1 < len(names):
            hi = min(hi, periods[names[i + 1]].start_us - h_us)
        out[name] = (lo, hi)
    return out


def _empty_reason(name: str, period: Period, horizon: int, embargo_s: int) -> str:
    if name == "train":
        return (
            f"leakage protection would empty the train split: the purge of {horizon} s (target "
            f"horizon) removes every row of the {period.length_s:g} s train period, since each "
            f"label window would reach into validation"
        )
    return (
        f"leakage protection would empty the {name} split: the embargo of {embargo_s} s "
        f"(longest feature lookback) plus the purge of {horizon} s cover the whole "
        f"{period.length_s:g} s {name} period, so every row's features would see the previous "
        f"split's data or its label would reach the next split"
    )


def _walk_forward_problems(
    req: DatasetBuildRequest, horizon: int, embargo_s: int, leakage: list[str]
) -> list[str]:
    cfg = req.walk_forward_config
    if cfg is None:
        return ["walk_forward split needs walk_forward_config"]
    if cfg.start_date >= cfg.end_date:
        return [
            f"walk_forward_config.start_date {_iso(cfg.start_date)} must be before "
            f"end_date {_iso(cfg.end_date)}"
        ]
    problems: list[str] = []
    fold_days = cfg.train_window_days + cfg.validation_window_days
    if not walk_forward_windows(cfg):
        span_days = (cfg.end_date - cfg.start_date).total_seconds() / DAY_S
        problems.append(
            f"walk-forward range of {span_days:g} days is shorter than one fold "
            f"(train_window_days {cfg.train_window_days} + validation_window_days "
            f"{cfg.validation_window_days} = {fold_days} days)"
        )
    val_s = cfg.validation_window_days * DAY_S
    train_s = cfg.train_window_days * DAY_S
    if horizon > val_s:
        problems.append(
            f"target horizon {horizon} s is longer than the validation window ({val_s} s)"
        )
    max_rows = train_s // req.interval_s
    if max_rows < cfg.min_train_samples:
        problems.append(
            f"a {cfg.train_window_days}-day train window at {req.feature_interval} holds at most "
            f"{max_rows} rows, fewer than min_train_samples {cfg.min_train_samples}: every fold "
            f"would be skipped"
        )
    if horizon >= train_s:
        leakage.append(
            f"leakage protection would empty every fold's train split: the purge of {horizon} s "
            f"(target horizon) covers the whole {train_s} s train window"
        )
    if embargo_s >= val_s:
        leakage.append(
            f"leakage protection would empty every fold's validation split: the embargo of "
            f"{embargo_s} s (longest feature lookback) covers the whole {val_s} s validation "
            f"window"
        )
    return problems


def _random_problems(req: DatasetBuildRequest) -> list[str]:
    rnd = req.random_config
    if rnd is None:
        return ["random split needs random_config"]
    problems: list[str] = []
    if rnd.start_date >= rnd.end_date:
        problems.append(
            f"random_config.start_date {_iso(rnd.start_date)} must be before "
            f"end_date {_iso(rnd.end_date)}"
        )
    if rnd.train_fraction + rnd.validation_fraction > 1.0 + 1e-12:
        problems.append(
            f"train_fraction {rnd.train_fraction} + validation_fraction "
            f"{rnd.validation_fraction} exceeds 1"
        )
    if req.data_leakage_check:
        problems.append(
            "a random split interleaves the splits in time, so it cannot be leak-free; it is "
            "for testing only: set data_leakage_check to false to build it anyway"
        )
    return problems
