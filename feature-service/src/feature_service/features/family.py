"""Feature families as objects: one class per family declares its inputs, parameters, outputs,
lookback and warm-up, and one instance per (family, parameters) is the stateful operator.

A family is the unit a registry version picks from: ``vwap`` with ``window: 30s`` is the feature
``vwap_30s``. Names are derived from family + parameters (``name``) and parsed back (``parse``),
so a registry entry can give either and the two can be checked against each other; lookbacks are
computed from the parameters (``lookback_s``), never typed twice.

Lifecycle, the way nautilus_trader's indicators work: the engine pushes data in, the operator
never pulls it and never reads a clock.
- ``update(close)``: kline-fed families get the close of every accepted confirmed candle
  (``uses_klines``); everything else reads the shared per-symbol windows instead, which
  ``SymbolState`` sizes from every operator's ``require``.
- ``compute(ctx, out)``: writes each requested output into the frame (value or null reason).
- ``ready``: warm-up is done; ``reset()``: forget everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from feature_service.features.context import ComputeContext
    from feature_service.features.frame import FeatureFrame

Params = Mapping[str, Any]

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: object) -> int:
    """ "30s" -> 30, "1m" -> 60, "24h" -> 86400; a bare non-negative int is seconds."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"bad duration {text!r} (expected e.g. 0s, 3s, 1m, 24h)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def duration_label(seconds: int) -> str:
    """The name form of a duration: 60 -> "1m", 86400 -> "24h", 90 -> "90s"."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _float_label(value: float) -> str:
    text = f"{value:g}"
    return text.replace(".", "p").replace("-", "m")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: ``kind`` is "duration" (seconds), "int" or "float"; bounds inclusive."""

    name: str
    kind: str
    default: Any
    minimum: float = 1
    maximum: float | None = None

    def coerce(self, raw: object) -> int | float:
        """The parameter's value from YAML (raises ValueError with the reason)."""
        if self.kind == "duration":
            value: int | float = parse_duration_s(raw)
        elif self.kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"{self.name} must be an integer, got {raw!r}")
            value = raw
        else:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError(f"{self.name} must be a number, got {raw!r}")
            value = float(raw)
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            bound = f"[{self.minimum}, {self.maximum}]" if self.maximum else f">= {self.minimum}"
            raise ValueError(f"{self.name}={raw!r} out of range {bound}")
        return value

    def label(self, value: int | float) -> str:
        if self.kind == "duration":
            return duration_label(int(value))
        if self.kind == "int":
            return str(int(value))
        return _float_label(float(value))

    def pattern(self) -> str:
        if self.kind == "duration":
            return r"(\d+[smh])"
        if self.kind == "int":
            return r"(\d+)"
        return r"(\d+(?:p\d+)?)"

    def parse_label(self, text: str) -> int | float:
        if self.kind == "float":
            return self.coerce(float(text.replace("p", ".")))
        if self.kind == "int":
            return self.coerce(int(text))
        return self.coerce(text)


@dataclass(slots=True)
class Requirements:
    """What the shared per-symbol windows must hold for a set of operators."""

    trade_spans_us: set[int] = field(default_factory=set)
    mid_return_spans_s: set[int] = field(default_factory=set)
    mid_horizon_s: int = 2
    book_levels: int = 0
    churn_window_us: int = 0
    kline_volume_means: set[int] = field(default_factory=set)
    kline_previous_volumes: set[int] = field(default_factory=set)
    kline_return_stds: set[int] = field(default_factory=set)
    kline_len: int = 0


class Family:
    """Base class of a feature family (see the module docstring)."""

    key: ClassVar[str]  # e.g. "vwap"
    group: ClassVar[str]  # docs / catalog grouping: price, orderflow, orderbook, ...
    inputs: ClassVar[tuple[str, ...]]  # orderbook / trades / kline / ticker / funding / clock
    params: ClassVar[tuple[Param, ...]] = ()
    # output -> name template ("{window}" etc.); ``short`` names are used with default params.
    templates: ClassVar[Mapping[str, str]]
    short: ClassVar[Mapping[str, str]] = {}
    int_outputs: ClassVar[frozenset[str]] = frozenset()
    uses_klines: ClassVar[bool] = False
    reads_levels: ClassVar[bool] = False  # reads book levels (a REST depth book can feed it)
    warmup: ClassVar[str] = "none"  # what must be seen before the first value (docs)

    __slots__ = ("names", "p")

    def __init__(self, params: Params, names: Mapping[str, str]) -> None:
        self.p = dict(params)
        self.names = dict(names)  # output -> feature name, only the requested outputs

    # -- declarations (class level) ------------------------------------------------------------
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.params}

    @classmethod
    def resolve(cls, raw: Mapping[str, object] | None) -> dict[str, Any]:
        """Defaults overlaid with ``raw``; ValueError naming an unknown or bad parameter."""
        known = {p.name: p for p in cls.params}
        raw = raw or {}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(
                f"unknown parameters {unknown} (family {cls.key} takes {sorted(known)})"
            )
        values = cls.defaults()
        for name, value in raw.items():
            values[name] = known[name].coerce(value)
        cls.check(values)
        return values

    @classmethod
    def check(cls, params: Params) -> None:
        """Cross-parameter rules (e.g. MACD fast < slow); raise ValueError."""

    @classmethod
    def name(cls, output: str, params: Params) -> str:
        if output in cls.short and all(params[p.name] == p.default for p in cls.params):
            return cls.short[output]
        labels = {p.name: p.label(params[p.name]) for p in cls.params}
        return cls.templates[output].format(**labels)

    @classmethod
    def parse(cls, name: str) -> tuple[str, dict[str, Any]] | None:
        """(output, params) for a name this family would derive, or None."""
        for output, short in cls.short.items():
            if name == short:
                return output, cls.defaults()
        for output, template in cls.templates.items():
            order: list[Param] = []
            regex = re.escape(template)
            for p in cls.params:
                slot = re.escape("{" + p.name + "}")
                if slot in regex:
                    regex = regex.replace(slot, p.pattern())
                    order.append(p)
            # the params appear in the template in their declared order
            match = re.fullmatch(regex, name)
            if not match:
                continue
            values = cls.defaults()
            try:
                for p, text in zip(order, match.groups(), strict=True):
                    values[p.name] = p.parse_label(text)
                cls.check(values)
            except ValueError:
                return None
            return output, values
        return None

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        """How far back (seconds of receive time) the output reads; 0 = the current state."""
        return 0

    # -- operator ------------------------------------------------------------------------------
    def require(self, req: Requirements) -> None:
        """Add what this operator reads from the shared windows."""

    def update(self, close: float) -> None:
        """A confirmed candle's close (only for ``uses_klines`` families)."""

    @property
    def ready(self) -> bool:
        return True

    def reset(self) -> None:
        """Forget all state (only families with state of their own need it)."""

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        raise NotImplementedError
