"""Candle families from the confirmed 1 m kline history.

"Last N candles" are the N most recent confirmed candles held by ``KlineHistory`` (missing
minutes are not filled in). Every feature is O(1) to compute: the window statistics are kept
incrementally by the history, which is sized from the operators' requirements.

Family, definition, warm-up (candles needed) and null reasons besides ``warming_up``:
- volatility_{N}_candles: sample std (ddof=1) of the N - 1 simple close-to-close returns of the
  last N candles. Warm-up N. ``zero_base`` when a base close in the window is 0.
- returns_{N}_candles: close[-1] / close[-N] - 1. Warm-up N. ``zero_base``.
- volume_zscore (N = 100; others ``volume_zscore_{N}``): (volume[-1] - mean) / std, mean and
  population std of the N candles before the newest one. Warm-up N + 1. ``zero_std`` when those
  volumes are all equal.
- roc_{W} (W in minutes: roc_5m, roc_15m, roc_1h): close[-1] / close[-1-W] - 1. Warm-up W + 1.
  ``zero_base``.
- relative_volume_{W} (relative_volume_1h, _24h): volume[-1] / mean volume of the last W
  candles, the newest included. Warm-up W. ``zero_mean`` when all those volumes are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family, Param, Params, Requirements
from feature_service.features.frame import FeatureFrame
from feature_service.windows.klines import KlineHistory

WARMING_UP = "warming_up"
ZERO_BASE = "zero_base"
ZERO_STD = "zero_std"
ZERO_MEAN = "zero_mean"

MAX_CANDLES = 10_080  # a week of 1 m candles


class _CandleFamily(Family):
    group = "candles"
    inputs = ("kline",)
    __slots__ = ("_n", "_name")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = names[""]
        self._n = int(next(iter(params.values())))

    @classmethod
    def candles(cls, params: Params) -> int:
        """How many candles the output needs (its warm-up)."""
        return int(next(iter(params.values())))

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return 60 * cls.candles(params)

    def require(self, req: Requirements) -> None:
        req.kline_len = max(req.kline_len, self.candles(self.p))


class CandleVolatility(_CandleFamily):
    key = "candle_volatility"
    params = (Param("candles", "int", 20, minimum=3, maximum=MAX_CANDLES),)
    templates: ClassVar = {"": "volatility_{candles}_candles"}
    warmup = "N candles"

    def require(self, req: Requirements) -> None:
        super().require(req)
        req.kline_return_stds.add(self._n - 1)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        history: KlineHistory = ctx.klines  # type: ignore[assignment]
        if len(history) < self._n:
            out.null(self._name, WARMING_UP)
        else:
            out.set(self._name, history.return_std(self._n - 1), ZERO_BASE)


class CandleReturns(_CandleFamily):
    key = "candle_returns"
    params = (Param("candles", "int", 3, minimum=2, maximum=MAX_CANDLES),)
    templates: ClassVar = {"": "returns_{candles}_candles"}
    warmup = "N candles"

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        history: KlineHistory = ctx.klines  # type: ignore[assignment]
        _set_return(out, self._name, history.closes, len(history), self._n - 1)


class VolumeZscore(_CandleFamily):
    key = "volume_zscore"
    params = (Param("candles", "int", 100, minimum=2, maximum=MAX_CANDLES),)
    templates: ClassVar = {"": "volume_zscore_{candles}"}
    short: ClassVar = {"": "volume_zscore"}
    warmup = "N + 1 candles"

    @classmethod
    def candles(cls, params: Params) -> int:
        return int(params["candles"]) + 1

    def require(self, req: Requirements) -> None:
        super().require(req)
        req.kline_previous_volumes.add(self._n)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        history: KlineHistory = ctx.klines  # type: ignore[assignment]
        name = self._name
        stats = history.previous_volume_stats(self._n) if len(history) > self._n else None
        if stats is None:
            out.null(name, WARMING_UP)
        elif stats[1] == 0.0:
            out.null(name, ZERO_STD)
        else:
            mean, std = stats
            out.set(name, (history.volumes[-1] - mean) / std)


class Roc(_CandleFamily):
    key = "roc"
    params = (Param("window", "duration", 300, minimum=60, maximum=MAX_CANDLES * 60),)
    templates: ClassVar = {"": "roc_{window}"}
    warmup = "W / 1 m + 1 candles"

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._n = int(params["window"]) // 60

    @classmethod
    def check(cls, params: Params) -> None:
        if int(params["window"]) % 60:
            raise ValueError(f"roc window must be whole minutes, got {params['window']}s")

    @classmethod
    def candles(cls, params: Params) -> int:
        return int(params["window"]) // 60 + 1

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        history: KlineHistory = ctx.klines  # type: ignore[assignment]
        _set_return(out, self._name, history.closes, len(history), self._n)


class RelativeVolume(_CandleFamily):
    key = "relative_volume"
    params = (Param("window", "duration", 3600, minimum=60, maximum=MAX_CANDLES * 60),)
    templates: ClassVar = {"": "relative_volume_{window}"}
    warmup = "W / 1 m candles"

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._n = int(params["window"]) // 60

    @classmethod
    def check(cls, params: Params) -> None:
        Roc.check(params)

    @classmethod
    def candles(cls, params: Params) -> int:
        return int(params["window"]) // 60

    def require(self, req: Requirements) -> None:
        super().require(req)
        req.kline_volume_means.add(self._n)

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        history: KlineHistory = ctx.klines  # type: ignore[assignment]
        mean = history.volume_mean(self._n)
        if mean is None:
            out.null(self._name, WARMING_UP)
        elif mean == 0.0:
            out.null(self._name, ZERO_MEAN)
        else:
            out.set(self._name, history.volumes[-1] / mean)


def _set_return(out: FeatureFrame, name: str, closes: Sequence[float], n: int, back: int) -> None:
    """close[-1] / close[-1-back] - 1."""
    if n < back + 1:
        out.null(name, WARMING_UP)
        return
    base = closes[-1 - back]
    if base == 0.0:
        out.null(name, ZERO_BASE)
        return
    out.set(name, closes[-1] / base - 1.0)


FAMILIES: tuple[type[Family], ...] = (
    CandleVolatility,
    CandleReturns,
    VolumeZscore,
    Roc,
    RelativeVolume,
)

CANDLE_FEATURES: tuple[str, ...] = (
    "volatility_20_candles",
    "returns_3_candles",
    "volume_zscore",
    "roc_5m",
    "roc_15m",
    "roc_1h",
    "relative_volume_1h",
    "relative_volume_24h",
)


def compute_candles(history: KlineHistory, out: FeatureFrame) -> None:
    """The bundled candle features from ``history``, by the operators ``SymbolState`` runs."""
    from feature_service.features.library import run_group

    ctx = ComputeContext(klines=history)
    run_group(CANDLE_FEATURES, ctx, out)
