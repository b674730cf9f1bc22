"""Order-book features: depth, imbalance, slope (hand-computed and against numpy), churn, and
every null path."""

from __future__ import annotations

import numpy as np
import pytest

from feature_service.features.catalog import BY_NAME
from feature_service.features.frame import FeatureFrame
from feature_service.features.orderbook import ORDERBOOK_FEATURES, compute_orderbook
from feature_service.market.events import Level

BIDS: list[Level] = [(100.0 - i, float(i + 1)) for i in range(10)]  # 100 .. 91, sizes 1 .. 10
ASKS: list[Level] = [(101.0 + i, 2.0) for i in range(10)]  # 101 .. 110, size 2 each


def compute(
    bids: list[Level],
    asks: list[Level],
    usable: bool = True,
    changes: int = 0,
    history_s: float | None = 3600.0,
) -> FeatureFrame:
    out = FeatureFrame()
    compute_orderbook(bids, asks, usable, changes, history_s, out)
    return out


def test_feature_names_are_the_catalog_orderbook_family() -> None:
    assert set(ORDERBOOK_FEATURES) == {n for n, s in BY_NAME.items() if s.group == "orderbook"}


def test_depths_and_imbalance_hand_computed() -> None:
    out = compute(BIDS, ASKS)

    assert out.values["depth_bid_top5"] == 15.0  # 1 + 2 + 3 + 4 + 5
    assert out.values["depth_bid_top10"] == 55.0
    assert out.values["depth_ask_top5"] == 10.0
    assert out.values["depth_ask_top10"] == 20.0
    assert out.values["depth_imbalance_top5"] == pytest.approx(5.0 / 25.0, rel=1e-15)


def test_levels_beyond_ten_are_ignored() -> None:
    out = compute([*BIDS, (50.0, 1000.0)], [*ASKS, (200.0, 1000.0)])
    assert out.values["depth_bid_top10"] == 55.0
    assert out.values["depth_ask_top10"] == 20.0
    assert out.values["slope_bid"] == compute(BIDS, ASKS).values["slope_bid"]


def test_depth_is_null_not_partial_with_too_few_levels() -> None:
    out = compute(BIDS[:7], ASKS[:4])

    assert out.values["depth_bid_top5"] == 15.0
    assert out.values["depth_bid_top10"] is None
    assert out.reasons["depth_bid_top10"] == "insufficient_levels"
    assert out.reasons["depth_ask_top5"] == "insufficient_levels"
    assert out.reasons["depth_ask_top10"] == "insufficient_levels"
    assert out.reasons["depth_imbalance_top5"] == "insufficient_levels"


def test_slope_hand_computed() -> None:
    # Bid distances 0, 0.01, 0.02 (relative to 100) with sizes 1, 2, 3: slope 1 / 0.01 = 100.
    bids: list[Level] = [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)]
    # Ask distances 0, 0.01, 0.02 (relative to 200) with sizes 5, 3, 1: slope -200.
    asks: list[Level] = [(200.0, 5.0), (202.0, 3.0), (204.0, 1.0)]

    out = compute(bids, asks)

    assert out.values["slope_bid"] == pytest.approx(100.0, rel=1e-12)
    assert out.values["slope_ask"] == pytest.approx(-200.0, rel=1e-12)


def test_slope_matches_numpy_least_squares() -> None:
    rng = np.random.default_rng(5)
    best_bid = 65_000.0
    bid_prices = best_bid - np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 3.0, 9))])
    ask_prices = best_bid + 0.1 + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 3.0, 9))])
    bid_sizes = rng.lognormal(0.0, 1.0, 10)
    ask_sizes = rng.lognormal(0.0, 1.0, 10)
    bids = list(zip(bid_prices.tolist(), bid_sizes.tolist(), strict=True))
    asks = list(zip(ask_prices.tolist(), ask_sizes.tolist(), strict=True))

    out = compute(bids, asks)

    x_bid = (bid_prices[0] - bid_prices) / bid_prices[0]
    x_ask = (ask_prices - ask_prices[0]) / ask_prices[0]
    assert out.values["slope_bid"] == pytest.approx(np.polyfit(x_bid, bid_sizes, 1)[0], rel=1e-9)
    assert out.values["slope_ask"] == pytest.approx(np.polyfit(x_ask, ask_sizes, 1)[0], rel=1e-9)


def test_slope_null_paths() -> None:
    out = compute(BIDS[:2], [(101.0, 1.0), (101.0, 2.0), (101.0, 3.0)])
    assert out.reasons["slope_bid"] == "insufficient_levels"
    assert out.reasons["slope_ask"] == "zero_variance"  # degenerate input: every distance 0


def test_unusable_book_nulls_everything() -> None:
    out = compute(BIDS, ASKS, usable=False, changes=10, history_s=3600.0)
    assert set(out.values) == set(ORDERBOOK_FEATURES)
    assert all(v is None for v in out.values.values())
    assert set(out.reasons.values()) == {"book_unusable"}


def test_churn_rate_hand_computed() -> None:
    assert compute(BIDS, ASKS, changes=30, history_s=60.0).values["orderbook_churn_rate"] == 0.5
    assert compute(BIDS, ASKS, changes=0, history_s=61.0).values["orderbook_churn_rate"] == 0.0


@pytest.mark.parametrize("history_s", [None, 0.0, 59.999999])
def test_churn_rate_needs_60_s_of_usable_book(history_s: float | None) -> None:
    out = compute(BIDS, ASKS, changes=5, history_s=history_s)
    assert out.values["orderbook_churn_rate"] is None
    assert out.reasons["orderbook_churn_rate"] == "insufficient_history"
