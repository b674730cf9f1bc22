"""Feature Registry loading and validation (YAML is the source of truth).

The live and offline engines both stamp vectors with the loaded registry's version, and the
dataset builder derives its purge/embargo from the longest declared lookback.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from feature_service.features.catalog import BY_NAME

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KNOWN_SOURCES = frozenset({"orderbook", "trades", "kline", "ticker", "funding", "clock"})


def parse_duration_s(text: str) -> int:
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"bad duration {text!r} (expected e.g. 0s, 3s, 1m, 24h)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    name: str
    input_sources: tuple[str, ...]
    lookback_s: int
    max_lookback_days: float
    lookahead_forbidden: bool


@dataclass(frozen=True, slots=True)
class Registry:
    version: str
    features: tuple[FeatureDefinition, ...]
    config: dict[str, Any]
    sha256: str
    path: str
    errors: tuple[str, ...] = field(default=())

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def max_lookback_s(self) -> int:
        return max((f.lookback_s for f in self.features), default=0)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


def default_registry_path() -> Path:
    return Path(str(resources.files("feature_service.registry") / "feature_registry.yaml"))


def load_registry(path: Path | None = None) -> Registry:
    """Parse and validate; a registry with errors is returned with ``errors`` set, never raised,
    so callers can report it and keep the previous valid one."""
    path = path or default_registry_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        return Registry("", (), {}, digest, str(path), (f"invalid YAML: {exc}",))
    return validate_config(config, digest=digest, path=str(path))


def validate_config(config: Any, *, digest: str = "", path: str = "") -> Registry:
    errors: list[str] = []
    if not isinstance(config, dict):
        return Registry("", (), {}, digest, path, ("registry must be a mapping",))
    version = str(config.get("version") or "")
    if not version:
        errors.append("missing 'version'")
    entries = config.get("features")
    if not isinstance(entries, list) or not entries:
        errors.append("'features' must be a non-empty list")
        entries = []
    features: list[FeatureDefinition] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"features[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            errors.append(f"{where}: missing 'name'")
            continue
        name = str(entry["name"])
        where = f"feature {name}"
        if name in seen:
            errors.append(f"{where}: duplicated")
        seen.add(name)
        if name not in BY_NAME:
            errors.append(f"{where}: unknown feature (not in the feature library)")
        if entry.get("lookahead_forbidden") is not True:
            errors.append(f"{where}: lookahead_forbidden must be true")
        try:
            lookback_s = parse_duration_s(entry.get("lookback_window", ""))
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            lookback_s = 0
        max_days = entry.get("max_lookback_days")
        if not isinstance(max_days, int | float) or max_days < 0:
            errors.append(f"{where}: max_lookback_days must be a non-negative number")
            max_days = 0
        elif lookback_s > max_days * 86400:
            errors.append(
                f"{where}: lookback_window {entry.get('lookback_window')} exceeds "
                f"max_lookback_days {max_days}"
            )
        sources = tuple(str(s) for s in entry.get("input_sources") or ())
        unknown = [s for s in sources if s not in KNOWN_SOURCES]
        if not sources or unknown:
            errors.append(f"{where}: input_sources must be among {sorted(KNOWN_SOURCES)}")
        for ds in entry.get("data_sources") or ():
            if not isinstance(ds, dict) or ds.get("source") not in KNOWN_SOURCES:
                errors.append(f"{where}: bad data_sources entry {ds!r}")
        features.append(FeatureDefinition(name, sources, lookback_s, float(max_days), True))
    return Registry(version, tuple(features), config, digest, path, tuple(errors))
