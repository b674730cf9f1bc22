"""Feature Registry YAML: the bundled 1.1.0 matches the feature library; bad configs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from feature_service.features.catalog import CATALOG, FEATURE_NAMES
from feature_service.registry.loader import (
    load_registry,
    parse_duration_s,
    validate_config,
)


def test_bundled_registry_is_valid_and_names_every_feature_in_order() -> None:
    registry = load_registry()
    assert registry.is_valid, registry.errors
    assert registry.version == "1.1.0"
    assert registry.feature_names == FEATURE_NAMES
    assert len(registry.sha256) == 64


def test_bundled_registry_lookbacks_match_the_catalog() -> None:
    registry = load_registry()
    by_name = {f.name: f for f in registry.features}
    for spec in CATALOG:
        assert by_name[spec.name].lookback_s == parse_duration_s(spec.lookback), spec.name
        assert set(by_name[spec.name].input_sources) == set(spec.inputs), spec.name
    assert registry.max_lookback_s == 24 * 3600


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("3s", 3), ("1m", 60), ("101m", 6060), ("24h", 86400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_duration_s("3 seconds")


def _entry(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": "mid_price",
        "input_sources": ["orderbook"],
        "lookback_window": "0s",
        "lookahead_forbidden": True,
        "max_lookback_days": 0,
        "data_sources": [{"source": "orderbook", "timestamp_required": True}],
    }
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (_entry(lookahead_forbidden=False), "lookahead_forbidden must be true"),
        (
            _entry(
                name="relative_volume_24h",
                input_sources=["kline"],
                data_sources=[{"source": "kline", "timestamp_required": True}],
                lookback_window="24h",
                max_lookback_days=0.5,
            ),
            "exceeds max_lookback_days",
        ),
        (_entry(name="future_price"), "unknown feature"),
        (_entry(input_sources=["news"]), "input_sources"),
        (_entry(lookback_window="soon"), "bad duration"),
        (_entry(data_sources=[{"source": "tea_leaves"}]), "bad data_sources"),
    ],
)
def test_invalid_entries_are_reported_not_raised(entry: dict[str, object], fragment: str) -> None:
    registry = validate_config({"version": "9.9.9", "features": [entry]})
    assert not registry.is_valid
    assert any(fragment in e for e in registry.errors), registry.errors


def test_duplicate_and_missing_version(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"features": [_entry(), _entry()]}))
    registry = load_registry(path)
    assert "schema: missing 'version'" in registry.errors
    assert any("duplicate" in e for e in registry.errors)


def test_broken_yaml_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: [unclosed")
    assert load_registry(path).errors[0].startswith("invalid YAML")
