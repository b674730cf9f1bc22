"""Normalisation (FR-043.1): causal rolling z-score and min-max against brute force over the
values of the previous closes only, beside or instead of the raw value."""

from __future__ import annotations

import numpy as np
import pytest

from feature_service.features.library import FeaturePlan, resolve
from feature_service.features.normalization import NormalizationSpec, parse_normalization
from feature_service.features.state import SymbolState
from tests.fixtures.events import book_snapshot

S = 1_000_000
T0 = 1_700_000_000 * S


def _run(spec: NormalizationSpec, mids: list[float]) -> list[dict[str, float | int | None]]:
    plan = FeaturePlan((resolve("mid_price"),), "n", normalization={"mid_price": spec})
    state = SymbolState("BTCUSDT", plan)
    out = []
    for i, mid in enumerate(mids):
        t = T0 + i * S
        state.apply(book_snapshot(i + 1, [(mid - 0.5, 1.0)], [(mid + 0.5, 1.0)], t - S // 2))
        out.append(state.compute(t).complete())
    return out


def test_z_score_beside_uses_only_the_past_window() -> None:
    mids = [100.0 + v for v in np.random.default_rng(1).normal(0, 1, 40)]
    spec = parse_normalization({"method": "z_score", "window": "10s"})
    assert spec is not None
    rows = _run(spec, mids)
    assert list(rows[0]) == ["mid_price", "mid_price_z_score"]
    assert rows[0]["mid_price_z_score"] is None and rows[1]["mid_price_z_score"] is None
    for i in range(12, 40):
        past = np.array(mids[i - 10 : i])  # closes in [t - 10 s, t): never the current one
        expected = (mids[i] - past.mean()) / past.std()
        assert rows[i]["mid_price_z_score"] == pytest.approx(expected, rel=1e-9)
        assert rows[i]["mid_price"] == mids[i]


def test_min_max_replace_publishes_under_the_raw_name() -> None:
    mids = [100.0 + (i * 7 % 11) for i in range(30)]
    spec = parse_normalization({"method": "min_max", "window": "5s", "output": "replace"})
    assert spec is not None
    rows = _run(spec, mids)
    assert list(rows[0]) == ["mid_price"]
    for i in range(6, 30):
        past = mids[i - 5 : i]
        lo, hi = min(past), max(past)
        expected = None if hi == lo else (mids[i] - lo) / (hi - lo)
        assert rows[i]["mid_price"] == pytest.approx(expected, rel=1e-12)


def test_a_constant_window_has_a_reason_not_a_value() -> None:
    spec = parse_normalization({"method": "z_score", "window": "5s"})
    assert spec is not None
    plan = FeaturePlan((resolve("mid_price"),), "n", normalization={"mid_price": spec})
    state = SymbolState("BTCUSDT", plan)
    state.apply(book_snapshot(1, [(99.5, 1.0)], [(100.5, 1.0)], T0 - S))
    for i in range(8):
        frame = state.compute(T0 + i * S)
    assert frame.values["mid_price_z_score"] is None
    assert frame.reasons["mid_price_z_score"] == "zero_std"


def test_computing_a_close_again_changes_nothing() -> None:
    """A registry switch computes the switch boundary's vector before the engine does: the
    second computation of a close must give the same values and record no second sample."""
    mids = [100.0 + v for v in np.random.default_rng(2).normal(0, 1, 30)]
    spec = parse_normalization({"method": "z_score", "window": "10s"})
    assert spec is not None
    once = _run(spec, mids)
    plan = FeaturePlan((resolve("mid_price"),), "n", normalization={"mid_price": spec})
    state = SymbolState("BTCUSDT", plan)
    for i, mid in enumerate(mids):
        t = T0 + i * S
        state.apply(book_snapshot(i + 1, [(mid - 0.5, 1.0)], [(mid + 0.5, 1.0)], t - S // 2))
        first = state.compute(t).complete()
        assert state.compute(t).complete() == first == once[i], i
