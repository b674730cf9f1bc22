"""Compatibility of a registry version with the active one (FR-065): breaking changes need an
acknowledgement, additions and longer lookbacks are warnings."""

from __future__ import annotations

from feature_service.features.catalog import BUNDLED_PLAN, FEATURE_NAMES
from feature_service.features.library import FeaturePlan, resolve
from feature_service.features.normalization import NormalizationSpec
from feature_service.registry.compat import compare


def test_same_plan_is_compatible() -> None:
    result = compare(BUNDLED_PLAN, FeaturePlan.from_names(FEATURE_NAMES))
    assert result.breaking == [] and result.warnings == []


def test_removed_feature_is_breaking_and_an_added_one_a_warning() -> None:
    names = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["rsi_7"]
    result = compare(BUNDLED_PLAN, FeaturePlan.from_names(names))
    assert result.breaking == ["removed: slope_bid"]
    assert result.warnings[0].startswith("added: rsi_7")


def test_same_family_with_other_parameters_is_a_rename() -> None:
    old = FeaturePlan.from_names(["mid_price", "vwap_3s"])
    new = FeaturePlan.from_names(["mid_price", "vwap_30s"])
    result = compare(old, new)
    assert len(result.breaking) == 1
    assert result.breaking[0].startswith("renamed: vwap_3s -> vwap_30s")


def test_changed_normalisation_of_a_kept_name_is_breaking() -> None:
    defs = (resolve("mid_price"),)
    old = FeaturePlan(defs)
    new = FeaturePlan(defs, normalization={"mid_price": NormalizationSpec("z_score", 60, True)})
    result = compare(old, new)
    assert any(b.startswith("changed normalization: mid_price") for b in result.breaking)
    assert any(w.startswith("longer lookback: mid_price") for w in result.warnings)


def test_order_change_is_a_warning() -> None:
    old = FeaturePlan.from_names(["mid_price", "spread_abs"])
    new = FeaturePlan.from_names(["spread_abs", "mid_price"])
    result = compare(old, new)
    assert result.breaking == []
    assert any("order changed" in w for w in result.warnings)
