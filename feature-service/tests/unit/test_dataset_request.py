"""DatasetBuildRequest parsing and the semantic checks behind a 400 (FR-031, FR-032, FR-052)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from feature_service.datasets.request import (
    DatasetBuildRequest,
    Period,
    TargetConfig,
    validate_request,
)
from feature_service.registry.loader import Registry, load_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def time_based(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": "2024-01-01T00:00:00Z",
        "train_period_end": "2024-02-01T00:00:00Z",
        "validation_period_start": "2024-02-01T00:00:00Z",
        "validation_period_end": "2024-02-08T00:00:00Z",
        "test_period_start": "2024-02-08T00:00:00Z",
        "test_period_end": "2024-02-15T00:00:00Z",
        "target_config": {"type": "regression", "horizon": 60},
        "feature_registry_version": "1.1.0",
    }
    body.update(overrides)
    return body


def walk_forward(**cfg: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "train_window_days": 30,
        "validation_window_days": 7,
        "step_days": 7,
        "start_date": "2024-01-01T00:00:00",
        "end_date": "2024-03-01T00:00:00",
        "min_train_samples": 1000,
    }
    config.update(cfg)
    return {
        "symbol": "ETHUSDT",
        "split_strategy": "walk_forward",
        "walk_forward_config": config,
        "target_config": {"type": "classification", "horizon": 300, "threshold": 0.001},
        "feature_registry_version": "1.1.0",
    }


def problems(body: dict[str, Any], registry: Registry, **kw: Any) -> list[str]:
    return validate_request(DatasetBuildRequest.model_validate(body), registry, **kw)


def test_quickstart_time_based_request_is_valid(registry: Registry) -> None:
    req = DatasetBuildRequest.model_validate(time_based())
    assert validate_request(req, registry) == []
    assert req.data_leakage_check is True
    assert req.output_format == "parquet"
    assert req.feature_interval == "1s" and req.interval_s == 1
    assert req.target_config.threshold == 0.001
    assert req.selected_features(registry) == registry.feature_names


def test_quickstart_walk_forward_request_is_valid(registry: Registry) -> None:
    assert problems(walk_forward(), registry) == []


def test_symbol_is_upper_cased_and_checked() -> None:
    assert DatasetBuildRequest.model_validate(time_based(symbol=" btcusdt ")).symbol == "BTCUSDT"
    for bad in ("B", "BTC-USDT", "A" * 21):
        with pytest.raises(ValidationError):
            DatasetBuildRequest.model_validate(time_based(symbol=bad))


def test_datetimes_are_utc() -> None:
    req = DatasetBuildRequest.model_validate(
        time_based(
            train_period_start="2024-01-01T00:00:00",  # naive: UTC
            train_period_end="2024-02-01T02:00:00+02:00",  # converted
        )
    )
    assert req.train_period_start == datetime(2024, 1, 1, tzinfo=UTC)
    assert req.train_period_end == datetime(2024, 2, 1, tzinfo=UTC)
    assert req.train_period_end.tzinfo == UTC
    aware = datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert Period.of(aware, aware).start == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "target",
    [
        {"type": "regression", "horizon": 0},
        {"type": "regression", "horizon": -60},
        {"type": "classification", "horizon": 60, "threshold": -0.1},
        {"type": "sharpe", "horizon": 60},
        {"type": "regression", "horizon": 60, "treshold": 0.1},  # misspelt: refused
        {"type": "regression"},
    ],
)
def test_bad_target_config_is_refused(target: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DatasetBuildRequest.model_validate(time_based(target_config=target))


@pytest.mark.parametrize(
    ("field", "value"),
    [("split_strategy", "expanding"), ("output_format", "xlsx"), ("feature_interval", "5s")],
)
def test_bad_enums_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        DatasetBuildRequest.model_validate(time_based(**{field: value}))


def test_target_config_accepts_risk_adjusted() -> None:
    assert TargetConfig(type="risk_adjusted", horizon=60).type == "risk_adjusted"


def test_missing_periods_are_listed(registry: Registry) -> None:
    body = time_based(test_period_start=None)
    del body["validation_period_end"]
    assert problems(body, registry) == [
        "time_based split needs every period; missing: validation_period_end, test_period_start"
    ]


def test_overlapping_periods(registry: Registry) -> None:
    body = time_based(train_period_end="2024-02-02T00:00:00Z")
    assert problems(body, registry) == [
        "train and validation periods overlap or are out of order: train_period_end "
        "2024-02-02T00:00:00Z is after validation_period_start 2024-02-01T00:00:00Z (periods "
        "must be ordered train < validation < test; a shared boundary is allowed)"
    ]


def test_disordered_periods(registry: Registry) -> None:
    body = time_based(
        validation_period_start="2024-02-08T00:00:00Z",
        validation_period_end="2024-02-15T00:00:00Z",
        test_period_start="2024-02-01T00:00:00Z",
        test_period_end="2024-02-08T00:00:00Z",
    )
    found = problems(body, registry)
    assert len(found) == 1
    assert found[0].startswith("validation and test periods overlap or are out of order")


def test_start_must_precede_end(registry: Registry) -> None:
    body = time_based(test_period_end="2024-02-08T00:00:00Z")
    assert problems(body, registry) == [
        "test_period_start 2024-02-08T00:00:00Z must be before test_period_end 2024-02-08T00:00:00Z"
    ]


def test_gaps_between_periods_are_allowed(registry: Registry) -> None:
    body = time_based(validation_period_start="2024-02-01T12:00:00Z")
    assert problems(body, registry) == []


def test_horizon_longer_than_validation_or_test(registry: Registry) -> None:
    body = time_based(
        target_config={"type": "regression", "horizon": 8 * 86_400},
        data_leakage_check=False,
    )
    assert problems(body, registry) == [
        "target horizon 691200 s is longer than the validation period (604800 s)",
        "target horizon 691200 s is longer than the test period (604800 s)",
    ]


def test_horizon_must_fit_the_interval(registry: Registry) -> None:
    body = time_based(feature_interval="1m", target_config={"type": "regression", "horizon": 90})
    assert problems(body, registry) == [
        "target_config.horizon 90 s is not a multiple of the feature interval 1m (60 s)"
    ]


def test_registry_version_mismatch(registry: Registry) -> None:
    assert problems(time_based(feature_registry_version="0.9.0"), registry) == [
        "feature_registry_version '0.9.0' does not match the loaded registry version '1.1.0'"
    ]


def test_feature_subset(registry: Registry) -> None:
    body = time_based(features=["returns_1s", "mid_price", "bogus", "nope", "mid_price"])
    assert problems(body, registry) == [
        "unknown features (not in registry '1.1.0'): bogus, nope",
        "features listed more than once: mid_price",
    ]
    assert problems(time_based(features=[]), registry) == [
        "features must not be empty (omit it to use every registry feature)"
    ]
    req = DatasetBuildRequest.model_validate(time_based(features=["returns_1s", "mid_price"]))
    assert req.selected_features(registry) == ("mid_price", "returns_1s")  # registry order


def test_validation_period_inside_the_embargo_cannot_be_leak_free(registry: Registry) -> None:
    body = time_based(
        validation_period_end="2024-02-01T12:00:00Z",
        test_period_start="2024-02-01T12:00:00Z",
        embargo="max_lookback",  # the conservative rule: the longest lookback (24 h)
    )
    assert problems(body, registry) == [
        "leakage protection would empty the validation split: the embargo of 86400 s "
        "plus the purge of 60 s cover the whole 43200 s validation period, "
        "so every row's features would see the previous split's data or its label would reach "
        "the next split"
    ]
    # the default embargo is one horizon (60 s): the same periods are fine
    assert problems({**body, "embargo": None}, registry) == []
    # a subset with short lookbacks has a short embargo and fits
    assert problems({**body, "features": ["mid_price", "returns_1m"]}, registry) == []
    # with the check off the request is accepted (the build still purges and embargoes)
    assert problems({**body, "data_leakage_check": False}, registry) == []


def test_train_period_consumed_by_the_purge(registry: Registry) -> None:
    body = time_based(
        train_period_start="2024-01-31T23:59:00Z",
        target_config={"type": "regression", "horizon": 120},
    )
    found = problems(body, registry)
    assert found == [
        "leakage protection would empty the train split: the purge of 120 s (target horizon) "
        "removes every row of the 60 s train period, since each label window would reach into "
        "validation"
    ]


def test_embargo_override(registry: Registry) -> None:
    body = time_based(
        validation_period_end="2024-02-01T12:00:00Z", test_period_start="2024-02-01T12:00:00Z"
    )
    assert problems(body, registry, embargo_s=3600) == []


def test_risk_adjusted_embargo_counts_volatility_lookback(registry: Registry) -> None:
    body = time_based(
        features=["mid_price"],
        target_config={"type": "risk_adjusted", "horizon": 1},
        validation_period_end="2024-02-01T00:01:00Z",
        test_period_start="2024-02-01T00:01:00Z",
    )
    body["embargo"] = "max_lookback"
    assert len(problems(body, registry)) == 1  # the 60 s volatility lookback fills validation
    body["target_config"] = {"type": "regression", "horizon": 1}
    assert problems(body, registry) == []


def test_invalid_registry_is_reported(registry: Registry) -> None:
    broken = Registry("1.1.0", registry.features, {}, "", "", ("missing 'version'",))
    found = problems(time_based(), broken)
    assert found[0] == "the loaded feature registry is invalid: missing 'version'"
    assert "registry: missing 'version'" in found


def test_walk_forward_needs_its_config(registry: Registry) -> None:
    body = walk_forward()
    del body["walk_forward_config"]
    assert problems(body, registry) == ["walk_forward split needs walk_forward_config"]


def test_walk_forward_range_checks(registry: Registry) -> None:
    assert problems(walk_forward(end_date="2024-01-01T00:00:00"), registry) == [
        "walk_forward_config.start_date 2024-01-01T00:00:00Z must be before end_date "
        "2024-01-01T00:00:00Z"
    ]
    assert problems(walk_forward(end_date="2024-02-06T00:00:00"), registry) == [
        "walk-forward range of 36 days is shorter than one fold (train_window_days 30 + "
        "validation_window_days 7 = 37 days)"
    ]


def test_walk_forward_min_train_samples_unreachable(registry: Registry) -> None:
    body = walk_forward(train_window_days=1, min_train_samples=5000)
    body["feature_interval"] = "1m"
    assert problems(body, registry) == [
        "a 1-day train window at 1m holds at most 1440 rows, fewer than min_train_samples 5000: "
        "every fold would be skipped"
    ]


def test_walk_forward_leakage_checks(registry: Registry) -> None:
    body = walk_forward(validation_window_days=1)
    assert problems(body, registry) == []  # default embargo: one horizon (300 s)
    body["embargo"] = "max_lookback"
    assert problems(body, registry) == [
        "leakage protection would empty every fold's validation split: the embargo of 86400 s "
        "covers the whole 86400 s validation window"
    ]
    del body["embargo"]
    body["target_config"] = {"type": "regression", "horizon": 2 * 86_400}
    assert problems({**body, "data_leakage_check": False}, registry) == [
        "target horizon 172800 s is longer than the validation window (86400 s)"
    ]


def test_walk_forward_values_must_be_positive() -> None:
    for field in ("train_window_days", "validation_window_days", "step_days"):
        with pytest.raises(ValidationError):
            DatasetBuildRequest.model_validate(walk_forward(**{field: 0}))
    with pytest.raises(ValidationError):
        DatasetBuildRequest.model_validate(walk_forward(min_train_samples=-1))


def random_body(**cfg: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-01-02T00:00:00Z",
        "train_fraction": 0.6,
        "validation_fraction": 0.2,
        "seed": 42,
    }
    config.update(cfg)
    return {
        "symbol": "BTCUSDT",
        "split_strategy": "random",
        "random_config": config,
        "target_config": {"type": "regression", "horizon": 60},
        "feature_registry_version": "1.1.0",
        "data_leakage_check": False,
    }


def test_random_split_is_for_testing_only(registry: Registry) -> None:
    assert problems(random_body(), registry) == []
    found = problems({**random_body(), "data_leakage_check": True}, registry)
    assert found == [
        "a random split interleaves the splits in time, so it cannot be leak-free; it is for "
        "testing only: set data_leakage_check to false to build it anyway"
    ]
    assert problems(random_body(train_fraction=0.9, validation_fraction=0.2), registry) == [
        "train_fraction 0.9 + validation_fraction 0.2 exceeds 1"
    ]
    body = random_body()
    del body["random_config"]
    assert problems(body, registry) == ["random split needs random_config"]


def test_periods_and_span() -> None:
    req = DatasetBuildRequest.model_validate(time_based())
    periods = req.periods()
    assert list(periods) == ["train", "validation", "test"]
    assert periods["validation"].start == datetime(2024, 2, 1, tzinfo=UTC)
    assert periods["validation"].length_s == 7 * 86_400
    assert req.span() == Period.of(datetime(2024, 1, 1), datetime(2024, 2, 15))
    wf = DatasetBuildRequest.model_validate(walk_forward())
    assert wf.span() == Period.of(datetime(2024, 1, 1), datetime(2024, 3, 1))
    rnd = DatasetBuildRequest.model_validate(random_body())
    assert rnd.span() == Period.of(datetime(2024, 1, 1), datetime(2024, 1, 2))
    assert rnd.random_config is not None
    assert rnd.random_config.test_fraction == pytest.approx(0.2)


def test_period_microseconds_are_exact() -> None:
    moment = datetime(2024, 3, 10, 12, 34, 56, 789_123, tzinfo=UTC)
    p = Period.of(moment, moment + timedelta(microseconds=1))
    assert p.end_us - p.start_us == 1
    assert p.start == moment
    assert p.to_dict() == {
        "start": "2024-03-10T12:34:56.789123Z",
        "end": "2024-03-10T12:34:56.789124Z",
    }


def test_embargo_defaults_to_the_horizon_and_can_only_be_raised(registry: Registry) -> None:
    from feature_service.datasets.leakage import LeakageGuard

    def guard(**overrides: Any) -> LeakageGuard:
        return LeakageGuard.for_request(
            DatasetBuildRequest.model_validate(time_based(**overrides)), registry
        )

    assert (guard().embargo_s, guard().embargo_rule, guard().warmup_s) == (60, "horizon", 86_400)
    assert guard(embargo="max_lookback").embargo_s == 86_400
    assert guard(embargo_seconds=900).embargo_s == 900
    assert guard(embargo_seconds=900).embargo_rule == "seconds"
    # the warm-up read before the first split is the longest lookback whatever the embargo
    span = Period.of(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 15, tzinfo=UTC))
    assert guard().read_window(span).start_us == span.start_us - 86_400 * 1_000_000
    assert problems(time_based(embargo_seconds=30), registry) == [
        "embargo_seconds 30 is below the target horizon 60 s (the default embargo); it can only "
        "be raised"
    ]
    assert problems(time_based(embargo_seconds=600, embargo="max_lookback"), registry) == [
        "give either embargo or embargo_seconds, not both"
    ]
    with pytest.raises(ValidationError):
        DatasetBuildRequest.model_validate(time_based(embargo="forever"))


@pytest.mark.parametrize("alias", ["latest", "active"])
def test_latest_and_active_mean_the_loaded_version(registry: Registry, alias: str) -> None:
    from feature_service.datasets.request import with_concrete_version

    req = DatasetBuildRequest.model_validate(time_based(feature_registry_version=alias))
    assert validate_request(req, registry) == []
    assert with_concrete_version(req, registry.version).feature_registry_version == "1.1.0"
    assert with_concrete_version(req, registry.version).model_dump(
        exclude={"feature_registry_version"}
    ) == req.model_dump(exclude={"feature_registry_version"})


def test_model_service_default_request_shape_is_valid(registry: Registry) -> None:
    """30/7/1 days back to back with 23:59:59 ends, every feature, latest, classification."""
    body = time_based(
        train_period_start="2024-01-01T00:00:00",
        train_period_end="2024-01-30T23:59:59",
        validation_period_start="2024-01-31T00:00:00",
        validation_period_end="2024-02-06T23:59:59",
        test_period_start="2024-02-07T00:00:00",
        test_period_end="2024-02-07T23:59:59",
        target_config={"type": "classification", "horizon": 300, "threshold": 0.001},
        feature_registry_version="latest",
    )
    assert problems(body, registry) == []
    assert problems({**body, "embargo": "max_lookback"}, registry) != []  # refused as before
