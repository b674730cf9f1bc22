"""Causal normalisation of a feature (FR-043.1): rolling z-score or min-max over a stated window.

A registry entry asks for it with ``normalization: {method: z_score | min_max, window: 5m,
output: beside | replace}`` (``none`` or absent = raw only). The statistics at close time ``t``
come from the feature's own values at the 1 s closes in ``[t - window, t)`` -- the past only,
never the value being normalised -- so a normalised value is as free of lookahead as the raw one.
``beside`` publishes ``{name}_{method}`` after the raw value, ``replace`` publishes the normalised
value under the raw name.

- z_score = (x - mean) / std, population std of the window's values. Null ``warming_up`` with
  fewer than 2 values in the window, ``zero_std`` when they are all equal.
- min_max = (x - min) / (max - min), in [0, 1] when x is inside the window's range (it may fall
  outside: the window is the past). Null ``warming_up`` with fewer than 2 values, ``zero_range``
  when they are all equal.
A null raw value gives a null normalised value with the raw reason; null raw values are not
part of any window.

The samples are the 1 s closes, so an engine running a plan with normalisation must close every
second (``FeaturePlan.needs_every_second``); the window sums are recomputed exactly
(``math.fsum``) at each close: O(window) per normalised feature and vector.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from feature_service.features.family import duration_label, parse_duration_s
from feature_service.features.frame import FeatureFrame

METHODS = ("z_score", "min_max")
MAX_WINDOW_S = 86_400


@dataclass(frozen=True, slots=True)
class NormalizationSpec:
    method: str
    window_s: int
    replace: bool = False

    @property
    def lookback_s(self) -> int:
        return self.window_s

    def output_name(self, name: str) -> str:
        return name if self.replace else f"{name}_{self.method}"

    def as_config(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "window": duration_label(self.window_s),
            "output": "replace" if self.replace else "beside",
        }


def parse_normalization(raw: object) -> NormalizationSpec | None:
    """The spec of a registry entry's ``normalization`` (None for none); ValueError if bad."""
    if raw is None or raw == "none":
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"expected none or {{method, window, output}}, got {raw!r}")
    unknown = sorted(set(raw) - {"method", "window", "output"})
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    method = raw.get("method")
    if method == "none":
        return None
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or none, got {method!r}")
    if "window" not in raw:
        raise ValueError("a window is required (e.g. window: 5m)")
    window_s = parse_duration_s(raw["window"])
    if not 2 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window must be 2 s .. 24 h, got {raw['window']!r}")
    output = raw.get("output", "beside")
    if output not in ("beside", "replace"):
        raise ValueError(f"output must be beside or replace, got {output!r}")
    return NormalizationSpec(str(method), window_s, output == "replace")


class Normalizer:
    """The rolling state of one normalised feature of one symbol."""

    __slots__ = ("_out", "_samples", "_window_us", "name", "spec")

    def __init__(self, name: str, spec: NormalizationSpec) -> None:
        self.name = name
        self.spec = spec
        self._out = spec.output_name(name)
        self._window_us = spec.window_s * 1_000_000
        self._samples: deque[tuple[int, float]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def apply(self, t: int, out: FeatureFrame) -> None:
        """Normalise the raw value ``out`` holds for ``name`` at ``t`` (a 1 s close), then
        remember it for later closes."""
        samples = self._samples
        cutoff = t - self._window_us
        while samples and samples[0][0] < cutoff:
            samples.popleft()
        raw = out.values.get(self.name)
        if raw is None:
            out.null(self._out, out.reasons.get(self.name, "no_data"))
            return
        x = float(raw)
        # Only earlier closes: computing the same close again (the check before a registry
        # switch) gives the same value and records nothing more.
        values = [v for ts, v in samples if ts < t]
        if len(values) < 2:
            out.null(self._out, "warming_up")
        elif self.spec.method == "z_score":
            n = len(values)
            mean = math.fsum(values) / n
            var = math.fsum((v - mean) * (v - mean) for v in values) / n
            if var <= 0.0:
                out.null(self._out, "zero_std")
            else:
                out.set(self._out, (x - mean) / math.sqrt(var))
        else:
            lo = min(values)
            hi = max(values)
            if hi == lo:
                out.null(self._out, "zero_range")
            else:
                out.set(self._out, (x - lo) / (hi - lo))
        if not samples or samples[-1][0] < t:
            samples.append((t, x))
