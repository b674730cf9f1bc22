"""Registry validation: one test per rule of ``loader.RULES``, each error naming the feature and
the rule; the valid / invalid / leaking fixtures (tests/fixtures/registry) as whole documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_service.registry.loader import RULES, load_registry, validate_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


def _errors(*entries: dict[str, object], retention_days: float | None = None) -> list[str]:
    config = {"version": "9.0.0", "features": list(entries)}
    return list(validate_config(config, retention_days=retention_days).errors)


def _one(errors: list[str], feature: str, rule: str) -> None:
    assert any(e.startswith(f"feature {feature}: {rule}:") for e in errors), errors
    assert rule in RULES


def test_valid_fixture_builds_a_plan_with_its_names_in_order() -> None:
    registry = load_registry(FIXTURES / "valid.yaml")
    assert registry.errors == ()
    assert registry.plan is not None
    assert registry.feature_names == (
        "mid_price",
        "vwap_30s",
        "rsi_7",
        "rsi_7_z_score",
        "spread_abs",
    )
    assert registry.lookbacks["rsi_7_z_score"] == 8 * 60 + 300
    assert registry.lookbacks["spread_abs"] == 60


def test_invalid_fixture_reports_each_problem() -> None:
    errors = list(load_registry(FIXTURES / "invalid.yaml").errors)
    _one(errors, "vwap_30s", "unknown_family")
    assert any("unknown_param" in e and "length" in e for e in errors), errors
    _one(errors, "mid_price", "duplicate")


def test_leaking_fixture_is_refused() -> None:
    errors = list(load_registry(FIXTURES / "leaking.yaml").errors)
    _one(errors, "returns_1m", "lookahead")
    _one(errors, "relative_volume_24h", "lookback")


def test_rule_schema() -> None:
    assert validate_config([]).errors == ("schema: registry must be a mapping",)
    assert "schema: missing 'version'" in validate_config({"features": [{"name": "x"}]}).errors
    _one(_errors({"name": "mid_price", "colour": "red"}), "mid_price", "schema")
    _one(_errors({"name": "trade_count_3s", "dtype": "float"}), "trade_count_3s", "schema")


def test_rule_unknown_family() -> None:
    _one(_errors({"name": "future_price"}), "future_price", "unknown_family")
    _one(_errors({"name": "x", "family": "astrology"}), "x", "unknown_family")


def test_rule_unknown_param() -> None:
    errors = _errors({"family": "vwap", "params": {"span": "30s"}})
    assert any("unknown_param" in e and "span" in e for e in errors), errors
    errors = _errors({"family": "rsi", "params": {"period": 1}})
    assert any("unknown_param" in e and "out of range" in e for e in errors), errors


def test_rule_name_mismatch() -> None:
    _one(
        _errors({"name": "vwap_15s", "family": "vwap", "params": {"window": "30s"}}),
        "vwap_15s",
        "name_mismatch",
    )
    _one(_errors({"name": "roc_60m"}), "roc_60m", "name_mismatch")


def test_rule_duplicate() -> None:
    _one(
        _errors({"name": "rsi_7"}, {"family": "rsi", "params": {"period": 7}}), "rsi_7", "duplicate"
    )
    # a normalised output "beside" must not collide with a raw name either
    norm = {"method": "z_score", "window": "1m", "output": "beside"}
    _one(
        _errors({"name": "mid_price", "normalization": norm}, {"name": "mid_price_z_score"}),
        "mid_price_z_score",
        "unknown_family",
    )


def test_rule_lookahead() -> None:
    _one(_errors({"name": "vwap_3s", "lookahead_forbidden": False}), "vwap_3s", "lookahead")
    assert _errors({"name": "vwap_3s"}) == []  # absent means forbidden


def test_rule_lookback() -> None:
    _one(_errors({"name": "vwap_3s", "lookback_window": "5s"}), "vwap_3s", "lookback")
    _one(
        _errors({"name": "relative_volume_24h", "max_lookback_days": 0}),
        "relative_volume_24h",
        "lookback",
    )
    _one(_errors({"name": "vwap_3s", "lookback_window": "soon"}), "vwap_3s", "lookback")


def test_rule_retention() -> None:
    entry = {"name": "relative_volume_168h", "max_lookback_days": 7}
    assert _errors(entry, retention_days=30) == []
    _one(_errors(entry, retention_days=3), "relative_volume_168h", "retention")


def test_rule_inputs() -> None:
    _one(_errors({"name": "vwap_3s", "input_sources": ["orderbook"]}), "vwap_3s", "inputs")
    _one(_errors({"name": "vwap_3s", "input_sources": ["news"]}), "vwap_3s", "inputs")
    _one(_errors({"name": "vwap_3s", "data_sources": [{"source": "tea"}]}), "vwap_3s", "inputs")


@pytest.mark.parametrize(
    "norm",
    [
        {"method": "softmax", "window": "1m"},
        {"method": "z_score"},
        "z_score",
        {"method": "min_max", "window": "1m", "output": "both"},
    ],
)
def test_rule_normalization(norm: object) -> None:
    _one(_errors({"name": "mid_price", "normalization": norm}), "mid_price", "normalization")
