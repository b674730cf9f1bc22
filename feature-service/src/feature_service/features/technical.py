"""Technical families on confirmed 1 m closes (TA-Lib definitions; the incremental indicators
themselves are in ``features.indicators``): rsi_{period}, ema_{period}, macd_line / macd_signal
/ macd_histogram (fast 12, slow 26, signal 9) and bb_upper / bb_lower / bb_width (period 20,
k 2). Non-default MACD / Bollinger parameters are named ``macd_line_{fast}_{slow}_{signal}``
and ``bb_upper_{period}_{k}`` (a "." in k is written "p": ``bb_upper_20_2p5``).

Warm-up (closes before the first value): RSI period + 1, EMA period, MACD line slow, signal and
histogram slow + signal - 1, Bollinger period. Null ``warming_up`` before; bb_width ``zero_base``
when the middle band is 0.
"""

from __future__ import annotations

from typing import ClassVar

from feature_service.features.context import ComputeContext
from feature_service.features.family import Family, Param, Params, Requirements
from feature_service.features.frame import FeatureFrame
from feature_service.features.indicators import Bollinger, Ema, Macd, RsiWilder

__all__ = [
    "FAMILIES",
    "TECHNICAL_FEATURES",
    "Bollinger",
    "Ema",
    "Macd",
    "RsiWilder",
    "TechnicalIndicators",
]

WARMING_UP = "warming_up"
ZERO_BASE = "zero_base"

TECHNICAL_FEATURES: tuple[str, ...] = (
    "rsi_14",
    "ema_20",
    "macd_line",
    "macd_signal",
    "macd_histogram",
    "bb_upper",
    "bb_lower",
    "bb_width",
)


class _KlineFamily(Family):
    group = "technical"
    inputs = ("kline",)
    uses_klines = True
    warmup = "see the lookback (candles)"


class RsiFamily(_KlineFamily):
    key = "rsi"
    params = (Param("period", "int", 14, minimum=2, maximum=1000),)
    templates: ClassVar = {"": "rsi_{period}"}
    __slots__ = ("_name", "op")

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self._name = names[""]
        self.op = RsiWilder(int(params["period"]))

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return 60 * (int(params["period"]) + 1)

    def require(self, req: Requirements) -> None:
        req.kline_len = max(req.kline_len, int(self.p["period"]) + 1)

    def update(self, close: float) -> None:
        self.op.update(close)

    @property
    def ready(self) -> bool:
        return self.op.ready

    def reset(self) -> None:
        self.op.reset()

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        out.set(self._name, self.op.value, WARMING_UP)


class EmaFamily(RsiFamily):
    key = "ema"
    params = (Param("period", "int", 20, minimum=2, maximum=1000),)
    templates: ClassVar = {"": "ema_{period}"}

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        Family.__init__(self, params, names)
        self._name = names[""]
        self.op = Ema(int(params["period"]))  # type: ignore[assignment]

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return 60 * int(params["period"])

    def require(self, req: Requirements) -> None:
        req.kline_len = max(req.kline_len, int(self.p["period"]))


class MacdFamily(_KlineFamily):
    key = "macd"
    params = (
        Param("fast", "int", 12, minimum=2, maximum=1000),
        Param("slow", "int", 26, minimum=3, maximum=1000),
        Param("signal", "int", 9, minimum=2, maximum=1000),
    )
    templates: ClassVar = {
        o: f"macd_{o}_{{fast}}_{{slow}}_{{signal}}" for o in ("line", "signal", "histogram")
    }
    short: ClassVar = {o: f"macd_{o}" for o in ("line", "signal", "histogram")}
    __slots__ = ("op",)

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self.op = Macd(int(params["fast"]), int(params["slow"]), int(params["signal"]))

    @classmethod
    def check(cls, params: Params) -> None:
        if params["slow"] <= params["fast"]:
            raise ValueError(f"MACD needs fast < slow, got {params['fast']}/{params['slow']}")

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        slow = int(params["slow"])
        return 60 * (slow if output == "line" else slow + int(params["signal"]) - 1)

    def require(self, req: Requirements) -> None:
        req.kline_len = max(req.kline_len, int(self.p["slow"]) + int(self.p["signal"]))

    def update(self, close: float) -> None:
        self.op.update(close)

    @property
    def ready(self) -> bool:
        return self.op.ready

    def reset(self) -> None:
        self.op.reset()

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        macd = self.op
        if "line" in names:
            out.set(names["line"], macd.line, WARMING_UP)
        if "signal" in names:
            out.set(names["signal"], macd.signal, WARMING_UP)
        if "histogram" in names:
            out.set(names["histogram"], macd.histogram, WARMING_UP)


class BollingerFamily(_KlineFamily):
    key = "bollinger"
    params = (
        Param("period", "int", 20, minimum=2, maximum=1000),
        Param("k", "float", 2.0, minimum=0.0, maximum=10.0),
    )
    templates: ClassVar = {o: f"bb_{o}_{{period}}_{{k}}" for o in ("upper", "lower", "width")}
    short: ClassVar = {o: f"bb_{o}" for o in ("upper", "lower", "width")}
    __slots__ = ("op",)

    def __init__(self, params: Params, names: dict[str, str]) -> None:
        super().__init__(params, names)
        self.op = Bollinger(int(params["period"]), float(params["k"]))

    @classmethod
    def lookback_s(cls, output: str, params: Params) -> int:
        return 60 * int(params["period"])

    def require(self, req: Requirements) -> None:
        req.kline_len = max(req.kline_len, int(self.p["period"]))

    def update(self, close: float) -> None:
        self.op.update(close)

    @property
    def ready(self) -> bool:
        return self.op.ready

    def reset(self) -> None:
        self.op.reset()

    def compute(self, ctx: ComputeContext, out: FeatureFrame) -> None:
        names = self.names
        bands = self.op.bands()
        if bands is None:
            for name in names.values():
                out.null(name, WARMING_UP)
            return
        lower, _, upper, width = bands
        if "upper" in names:
            out.set(names["upper"], upper)
        if "lower" in names:
            out.set(names["lower"], lower)
        if "width" in names:
            out.set(names["width"], width, ZERO_BASE)


FAMILIES: tuple[type[Family], ...] = (RsiFamily, EmaFamily, MacdFamily, BollingerFamily)


class TechnicalIndicators:
    """The bundled technical features (rsi_14, ema_20, macd_*, bb_*) as one bundle of the same
    operators ``SymbolState`` runs: feed closes with ``update``, read with ``compute``."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        from feature_service.features.library import build_operators

        self._ops = build_operators(TECHNICAL_FEATURES)

    def update(self, close: float) -> None:
        for op in self._ops:
            op.update(close)

    def reset(self) -> None:
        for op in self._ops:
            op.reset()

    def compute(self, out: FeatureFrame) -> None:
        ctx = ComputeContext()
        for op in self._ops:
            op.compute(ctx, out)
