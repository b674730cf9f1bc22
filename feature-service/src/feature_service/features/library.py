"""The feature library: every family, name resolution, and ``FeaturePlan`` -- the operator set a
registry version asks for.

``resolve`` turns a feature name (and optionally its family and parameters) into a
``FeatureDef``; ``FeaturePlan`` is an ordered tuple of them plus what follows from them (vector
order, int outputs, window requirements, lookbacks, input data types). Both engines build their
per-symbol operators from the same plan (``plan.build()``), so what is computed, published,
warmed up, purged and embargoed always comes from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feature_service.features import (
    candles,
    orderbook,
    orderflow,
    perpetual,
    price,
    technical,
    temporal,
)
from feature_service.features.context import ComputeContext
from feature_service.features.family import Family, Requirements, duration_label
from feature_service.features.frame import FeatureFrame
from feature_service.features.normalization import NormalizationSpec, Normalizer

FAMILIES: dict[str, type[Family]] = {
    fam.key: fam
    for module in (price, orderflow, orderbook, candles, technical, perpetual, temporal)
    for fam in module.FAMILIES
}
GROUPS: frozenset[str] = frozenset(fam.group for fam in FAMILIES.values())


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature of a plan: which family output with which parameters, and what follows."""

    name: str
    family: str
    output: str
    params: Mapping[str, Any]
    group: str
    inputs: tuple[str, ...]
    lookback_s: int
    dtype: str

    @property
    def lookback(self) -> str:
        return duration_label(self.lookback_s)

    def spec(self) -> dict[str, Any]:
        """The definition as registry YAML would state it (params in their name form)."""
        fam = FAMILIES[self.family]
        params = {p.name: _yaml_value(p.kind, self.params[p.name]) for p in fam.params}
        return {"name": self.name, "family": self.family, "params": params}


def _yaml_value(kind: str, value: Any) -> Any:
    return duration_label(int(value)) if kind == "duration" else value


def resolve(
    name: str | None, family: str | None = None, params: Mapping[str, object] | None = None
) -> FeatureDef:
    """The definition of a feature; ValueError says why there is none.

    With ``family`` the parameters are the family's defaults overlaid with ``params`` and the
    name is derived (a given ``name`` must equal it); without, the name is parsed."""
    if family is not None and family not in GROUPS:
        fam = FAMILIES.get(family)
        if fam is None:
            raise ValueError(f"unknown family {family!r} (known: {sorted(FAMILIES)})")
        values = fam.resolve(params)
        outputs = list(fam.templates)
        if len(outputs) == 1:
            output = outputs[0]
        else:
            parsed = fam.parse(name or "")
            if parsed is None:
                raise ValueError(
                    f"family {family} has outputs {outputs}; the name must say which "
                    f"(e.g. {fam.name(outputs[0], values)})"
                )
            output = parsed[0]
        derived = fam.name(output, values)
        if name is not None and name != derived:
            raise ValueError(f"name {name!r} does not match family {family} + params: {derived!r}")
        return _make(fam, output, values)
    if not name:
        raise ValueError("a feature needs a name or a family")
    if params:
        raise ValueError("params need a family")
    for fam in FAMILIES.values():
        parsed = fam.parse(name)
        if parsed is None:
            continue
        output, values = parsed
        derived = fam.name(output, values)
        if derived != name:
            raise ValueError(f"{name!r} is written {derived!r} (names are canonical)")
        return _make(fam, output, values)
    raise ValueError(f"unknown feature {name!r} (no family derives this name)")


def _make(fam: type[Family], output: str, values: dict[str, Any]) -> FeatureDef:
    return FeatureDef(
        name=fam.name(output, values),
        family=fam.key,
        output=output,
        params=values,
        group=fam.group,
        inputs=fam.inputs,
        lookback_s=fam.lookback_s(output, values),
        dtype="int" if output in fam.int_outputs else "float",
    )


@dataclass(frozen=True)
class FeaturePlan:
    """An ordered set of feature definitions (a registry version's computation)."""

    defs: tuple[FeatureDef, ...]
    version: str = ""
    normalization: Mapping[str, NormalizationSpec] = field(default_factory=dict)
    names: tuple[str, ...] = field(init=False)
    int_names: frozenset[str] = field(init=False)
    requirements: Requirements = field(init=False)

    def __post_init__(self) -> None:
        names: list[str] = []
        ints: set[str] = set()
        for d in self.defs:
            norm = self.normalization.get(d.name)
            if norm is None or not norm.replace:
                names.append(d.name)
                if d.dtype == "int":
                    ints.add(d.name)
            if norm is not None:
                names.append(norm.output_name(d.name))
        if len(set(names)) != len(names):
            raise ValueError("duplicate feature names in a plan")
        object.__setattr__(self, "names", tuple(names))
        object.__setattr__(self, "int_names", frozenset(ints))
        req = Requirements()
        for op in self.build():
            op.require(req)
        object.__setattr__(self, "requirements", req)

    @classmethod
    def from_names(cls, names: Iterable[str], version: str = "") -> FeaturePlan:
        return cls(tuple(resolve(n) for n in names), version)

    def build(self) -> list[Family]:
        """Fresh operators: one per (family, parameters), covering its requested outputs."""
        grouped: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[str, str]] = {}
        for d in self.defs:
            key = (d.family, tuple(sorted(d.params.items())))
            grouped.setdefault(key, {})[d.output] = d.name
        return [FAMILIES[fam](dict(params), outs) for (fam, params), outs in grouped.items()]

    @property
    def max_lookback_s(self) -> int:
        return max((self.lookback_s(d.name) for d in self.defs), default=0)

    def lookback_s(self, name: str) -> int:
        """A computed feature's lookback, its normalisation window included."""
        base = name
        d = self.by_name.get(base)
        if d is None:  # a "beside" normalised output
            for raw, norm in self.normalization.items():
                if norm.output_name(raw) == name:
                    d = self.by_name[raw]
            if d is None:
                raise KeyError(name)
        norm = self.normalization.get(d.name)
        return d.lookback_s + (norm.lookback_s if norm else 0)

    @property
    def levels_needed(self) -> dict[str, int]:
        """Levels per side each level-reading feature needs (``features.depth``)."""
        out: dict[str, int] = {}
        for d in self.defs:
            fam = FAMILIES[d.family]
            if fam.reads_levels:
                out[d.name] = int(d.params["levels"]) if d.family != "slope" else 3
        return out

    @property
    def needs_every_second(self) -> bool:
        """Normalisation samples the 1 s closes: the engine must close every second."""
        return bool(self.normalization)

    def normalizers(self) -> list[Normalizer]:
        return [Normalizer(name, spec) for name, spec in self.normalization.items()]

    @property
    def inputs(self) -> frozenset[str]:
        """The data types this plan reads (what a build or a warm-up must load)."""
        return frozenset(i for d in self.defs for i in d.inputs)

    @property
    def by_name(self) -> dict[str, FeatureDef]:
        return {d.name: d for d in self.defs}

    def frame(self) -> FeatureFrame:
        return FeatureFrame(self.names, self.int_names)


def operator_key(op: Family) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """Operators with equal keys compute the same thing from the same inputs."""
    return (op.key, tuple(sorted(op.p.items())))


def build_operators(names: Sequence[str]) -> list[Family]:
    return FeaturePlan.from_names(names).build()


def run_group(names: Sequence[str], ctx: ComputeContext, out: FeatureFrame) -> None:
    """Compute ``names`` from an explicit context with fresh operators (tests, examples)."""
    for op in build_operators(names):
        op.compute(ctx, out)
