"""Feature Registry loading and validation (YAML is the source of truth).

A registry version is a list of feature entries; each names a family output and its parameters
(``family`` + ``params``, or just the derived ``name``), and the library derives everything
else -- lookback, inputs, dtype -- so the YAML cannot disagree with what is computed. A valid
registry carries its ``FeaturePlan``: the operator set both engines build, the windows they size,
the purge/embargo lookbacks and the data types a build reads.

Every problem is reported as ``feature <name>: <rule>: <detail>`` (rule names in ``RULES``), so
an operator knows which entry broke which rule; a registry with errors is returned, never
raised, so callers can report it and keep the previous valid one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from feature_service.features.family import parse_duration_s
from feature_service.features.library import FeatureDef, FeaturePlan, resolve
from feature_service.features.normalization import NormalizationSpec, parse_normalization

__all__ = [
    "KNOWN_SOURCES",
    "RULES",
    "FeatureDefinition",
    "Registry",
    "default_registry_path",
    "load_registry",
    "parse_duration_s",
    "validate_config",
]

KNOWN_SOURCES = frozenset({"orderbook", "trades", "kline", "ticker", "funding", "clock"})
ENTRY_KEYS = frozenset(
    {
        "name",
        "family",
        "params",
        "input_sources",
        "lookback_window",
        "lookahead_forbidden",
        "max_lookback_days",
        "data_sources",
        "dtype",
        "normalization",
        "calculation_order",
        "description",
    }
)
RULES = (
    "schema",  # shapes and types of the document and entries
    "unknown_family",  # no family derives this name / the family does not exist
    "unknown_param",  # a parameter the family does not take, or out of range
    "name_mismatch",  # the name is not the one family + params derive
    "duplicate",  # two entries produce the same published name
    "lookahead",  # lookahead_forbidden must be true
    "lookback",  # lookback_window disagrees with the family, or exceeds max_lookback_days
    "retention",  # lookback longer than the raw data retention
    "inputs",  # input_sources / data_sources unknown, or not what the family reads
    "normalization",  # bad normalisation spec
)


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    name: str
    input_sources: tuple[str, ...]
    lookback_s: int
    max_lookback_days: float
    lookahead_forbidden: bool
    family: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Registry:
    version: str
    features: tuple[FeatureDefinition, ...]
    config: dict[str, Any]
    sha256: str
    path: str
    errors: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())
    plan: FeaturePlan | None = None

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def max_lookback_s(self) -> int:
        return max((f.lookback_s for f in self.features), default=0)

    @property
    def lookbacks(self) -> dict[str, int]:
        """Lookback (s) of every published name, normalisation windows included."""
        if self.plan is not None:
            return {name: self.plan.lookback_s(name) for name in self.plan.names}
        return {f.name: f.lookback_s for f in self.features}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Published names in vector order (normalised outputs included)."""
        if self.plan is not None:
            return self.plan.names
        return tuple(f.name for f in self.features)


def default_registry_path() -> Path:
    return Path(str(resources.files("feature_service.registry") / "feature_registry.yaml"))


def load_registry(path: Path | None = None, *, retention_days: float | None = None) -> Registry:
    """Parse and validate one registry file."""
    path = path or default_registry_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        return Registry("", (), {}, digest, str(path), (f"invalid YAML: {exc}",))
    return validate_config(config, digest=digest, path=str(path), retention_days=retention_days)


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(yaml.safe_dump(config, sort_keys=False).encode()).hexdigest()


def validate_config(
    config: Any, *, digest: str = "", path: str = "", retention_days: float | None = None
) -> Registry:
    """Check every rule of ``RULES``; ``retention_days`` (the raw store's) bounds lookbacks."""
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(config, dict):
        return Registry("", (), {}, digest, path, ("schema: registry must be a mapping",))
    version = str(config.get("version") or "")
    if not version:
        errors.append("schema: missing 'version'")
    entries = config.get("features")
    if not isinstance(entries, list) or not entries:
        errors.append("schema: 'features' must be a non-empty list")
        entries = []
    features: list[FeatureDefinition] = []
    defs: list[FeatureDef] = []
    norms: dict[str, NormalizationSpec] = {}
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        problems: list[str] = []
        d = _check_entry(i, entry, problems, warnings, retention_days)
        errors.extend(problems)
        if d is None:
            continue
        feature, definition, norm = d
        published = [] if norm is not None and norm.replace else [feature.name]
        if norm is not None:
            published.append(norm.output_name(feature.name))
        for name in published:
            if name in seen:
                errors.append(f"feature {name}: duplicate: published twice")
            seen.add(name)
        features.append(feature)
        defs.append(definition)
        if norm is not None:
            norms[feature.name] = norm
    plan = None
    if not errors:
        plan = FeaturePlan(tuple(defs), version, normalization=norms)
    return Registry(
        version, tuple(features), config, digest, path, tuple(errors), tuple(warnings), plan
    )


def _check_entry(
    i: int,
    entry: Any,
    errors: list[str],
    warnings: list[str],
    retention_days: float | None,
) -> tuple[FeatureDefinition, FeatureDef, NormalizationSpec | None] | None:
    if not isinstance(entry, dict) or not (entry.get("name") or entry.get("family")):
        errors.append(f"features[{i}]: schema: missing 'name'")
        return None
    label = str(entry.get("name") or f"features[{i}]")
    where = f"feature {label}"
    unknown_keys = sorted(set(entry) - ENTRY_KEYS)
    if unknown_keys:
        errors.append(f"{where}: schema: unknown keys {unknown_keys}")
    params = entry.get("params")
    if params is not None and not isinstance(params, dict):
        errors.append(f"{where}: schema: params must be a mapping")
        return None
    try:
        definition = resolve(entry.get("name"), entry.get("family"), params)
    except ValueError as exc:
        text = str(exc)
        rule = (
            "unknown_family"
            if "unknown family" in text or "unknown feature" in text
            else "name_mismatch"
            if "does not match" in text or "is written" in text
            else "unknown_param"
        )
        errors.append(f"{where}: {rule}: {text}")
        return None
    where = f"feature {definition.name}"
    if entry.get("lookahead_forbidden", True) is not True:
        errors.append(f"{where}: lookahead: lookahead_forbidden must be true")
    lookback_s = definition.lookback_s
    if "lookback_window" in entry:
        try:
            stated = parse_duration_s(entry["lookback_window"])
        except ValueError as exc:
            errors.append(f"{where}: lookback: {exc}")
        else:
            if stated != lookback_s:
                errors.append(
                    f"{where}: lookback: lookback_window {entry['lookback_window']} but the "
                    f"family reads {definition.lookback} (leave it out: it is derived)"
                )
    max_days = entry.get("max_lookback_days", math.ceil(lookback_s / 86400))
    if isinstance(max_days, bool) or not isinstance(max_days, int | float) or max_days < 0:
        errors.append(f"{where}: schema: max_lookback_days must be a non-negative number")
        max_days = 0
    elif lookback_s > max_days * 86400:
        errors.append(
            f"{where}: lookback: lookback {definition.lookback} exceeds "
            f"max_lookback_days {max_days}"
        )
    if retention_days is not None and lookback_s > retention_days * 86400:
        errors.append(
            f"{where}: retention: lookback {definition.lookback} is longer than the raw data "
            f"retention ({retention_days} days)"
        )
    sources = tuple(str(s) for s in entry.get("input_sources") or definition.inputs)
    unknown = [s for s in sources if s not in KNOWN_SOURCES]
    if unknown:
        errors.append(f"{where}: inputs: input_sources must be among {sorted(KNOWN_SOURCES)}")
    elif set(sources) != set(definition.inputs):
        errors.append(
            f"{where}: inputs: input_sources {sorted(sources)} but the family reads "
            f"{sorted(definition.inputs)}"
        )
    for ds in entry.get("data_sources") or ():
        if not isinstance(ds, dict) or ds.get("source") not in KNOWN_SOURCES:
            errors.append(f"{where}: inputs: bad data_sources entry {ds!r}")
    dtype = entry.get("dtype")
    if dtype is not None and dtype != definition.dtype:
        errors.append(f"{where}: schema: dtype {dtype!r} but the family outputs {definition.dtype}")
    try:
        norm = parse_normalization(entry.get("normalization"))
    except ValueError as exc:
        errors.append(f"{where}: normalization: {exc}")
        norm = None
    feature = FeatureDefinition(
        definition.name,
        tuple(definition.inputs),
        lookback_s + (norm.lookback_s if norm else 0),
        float(max_days),
        True,
        definition.family,
        dict(definition.params),
    )
    return feature, definition, norm
