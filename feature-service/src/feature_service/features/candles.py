"""Candle features from the confirmed 1 m kline history.

"Last N candles" are the N most recent confirmed candles held by ``KlineHistory`` (missing
minutes are not filled in). Every feature is O(1) to compute: the window statistics are kept
incrementally by the history.

Feature, definition, warm-up (candles needed) and null reasons besides ``warming_up``:
- volatility_20_candles: sample std (ddof=1) of the 19 simple close-to-close returns of the last
  20 candles. Warm-up 20. ``zero_base`` when a base close in the window is 0.
- returns_3_candles: close[-1] / close[-3] - 1. Warm-up 3. ``zero_base``.
- volume_zscore: (volume[-1] - mean) / std, mean and population std of the 100 candles before
  the newest one. Warm-up 101. ``zero_std`` when those 100 volumes are all equal.
- roc_5m, roc_15m, roc_1h: close[-1] / close[-1-N] - 1 with N = 5, 15, 60. Warm-up 6, 16, 61.
  ``zero_base``.
- relative_volume_1h, relative_volume_24h: volume[-1] / mean volume of the last 60 / 1440
  candles, the newest included. Warm-up 60, 1440. ``zero_mean`` when all those volumes are 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from feature_service.features.frame import FeatureFrame
from feature_service.windows.klines import PREVIOUS_VOLUME_SPAN, RETURN_SPAN, KlineHistory

WARMING_UP = "warming_up"
ZERO_BASE = "zero_base"
ZERO_STD = "zero_std"
ZERO_MEAN = "zero_mean"

ROC_SPANS: tuple[tuple[str, int], ...] = (("roc_5m", 5), ("roc_15m", 15), ("roc_1h", 60))
RELATIVE_VOLUME_SPANS: tuple[tuple[str, int], ...] = (
    ("relative_volume_1h", 60),
    ("relative_volume_24h", 1440),
)

CANDLE_FEATURES: tuple[str, ...] = (
    "volatility_20_candles",
    "returns_3_candles",
    "volume_zscore",
    *(name for name, _ in ROC_SPANS),
    *(name for name, _ in RELATIVE_VOLUME_SPANS),
)


def compute_candles(history: KlineHistory, out: FeatureFrame) -> None:
    """Set every candle feature in ``out`` (a value or a null with its reason)."""
    n = len(history)
    closes = history.closes

    if n < RETURN_SPAN + 1:
        out.null("volatility_20_candles", WARMING_UP)
    else:
        out.set("volatility_20_candles", history.return_std(), ZERO_BASE)

    _set_return(out, "returns_3_candles", closes, n, 2)
    for name, span in ROC_SPANS:
        _set_return(out, name, closes, n, span)

    if n < PREVIOUS_VOLUME_SPAN + 1:
        out.null("volume_zscore", WARMING_UP)
    else:
        stats = history.previous_volume_stats()
        if stats is None:
            out.null("volume_zscore", WARMING_UP)
        elif stats[1] == 0.0:
            out.null("volume_zscore", ZERO_STD)
        else:
            mean, std = stats
            out.set("volume_zscore", (history.volumes[-1] - mean) / std)

    for name, span in RELATIVE_VOLUME_SPANS:
        mean = history.volume_mean(span)
        if mean is None:
            out.null(name, WARMING_UP)
        elif mean == 0.0:
            out.null(name, ZERO_MEAN)
        else:
            out.set(name, history.volumes[-1] / mean)


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
