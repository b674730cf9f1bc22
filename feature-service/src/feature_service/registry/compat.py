"""Compatibility of a registry version with the active one (FR-065): what consumers would see.

Breaking changes (activation needs ``acknowledge_breaking_changes``):
- a published feature is removed (consumers reading it get nothing);
- a feature is "renamed": a removed name and an added one of the same family output, i.e. the
  same quantity with other parameters (``vwap_3s`` -> ``vwap_30s``);
- a kept name changes its definition (its normalisation, or -- for names a family does not
  derive from its parameters -- its parameters), so the same key carries other numbers;
- a kept feature changes type (int <-> float).
Warnings (reported, no acknowledgement needed): added features (they warm up), longer
lookbacks (datasets purge and embargo more), a different feature order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feature_service.features.library import FeaturePlan


@dataclass(frozen=True, slots=True)
class Compatibility:
    warnings: list[str] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)


def compare(old: FeaturePlan | None, new: FeaturePlan) -> Compatibility:
    if old is None:
        return Compatibility()
    warnings: list[str] = []
    breaking: list[str] = []
    old_names = set(old.names)
    new_names = set(new.names)
    removed = [n for n in old.names if n not in new_names]
    added = [n for n in new.names if n not in old_names]
    old_defs = old.by_name
    new_defs = new.by_name

    def kind(plan_defs: dict, name: str) -> tuple[str, str] | None:
        d = plan_defs.get(name)
        return None if d is None else (d.family, d.output)

    renamed_from: set[str] = set()
    for name in added:
        k = kind(new_defs, name)
        twin = next(
            (r for r in removed if r not in renamed_from and k and kind(old_defs, r) == k), None
        )
        if twin is not None:
            renamed_from.add(twin)
            breaking.append(
                f"renamed: {twin} -> {name} (same family {k[0]}, other parameters "  # type: ignore[index]
                f"{dict(new_defs[name].params)})"
            )
        else:
            warnings.append(f"added: {name} (null with its warm-up reason until it has data)")
    for name in removed:
        if name not in renamed_from:
            breaking.append(f"removed: {name}")
    for name in old.names:
        if name not in new_names:
            continue
        a, b = old_defs.get(name), new_defs.get(name)
        if a is not None and b is not None:
            if dict(a.params) != dict(b.params):
                breaking.append(f"changed parameters: {name} {dict(a.params)} -> {dict(b.params)}")
            if a.dtype != b.dtype:
                breaking.append(f"changed type: {name} {a.dtype} -> {b.dtype}")
        na, nb = old.normalization.get(name), new.normalization.get(name)
        if na != nb:
            breaking.append(f"changed normalization: {name} {_norm(na)} -> {_norm(nb)}")
        if name in old_names and new.lookback_s(name) > old.lookback_s(name):
            warnings.append(
                f"longer lookback: {name} {old.lookback_s(name)} s -> {new.lookback_s(name)} s"
            )
    kept_old = [n for n in old.names if n in new_names]
    kept_new = [n for n in new.names if n in old_names]
    if kept_old != kept_new:
        warnings.append("feature order changed (consumers reading by position must adapt)")
    if new.max_lookback_s > old.max_lookback_s:
        warnings.append(
            f"longest lookback {old.max_lookback_s} s -> {new.max_lookback_s} s: datasets purge "
            "and embargo more"
        )
    return Compatibility(warnings, breaking)


def _norm(spec: object) -> str:
    return "none" if spec is None else str(spec.as_config())  # type: ignore[attr-defined]
