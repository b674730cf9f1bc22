"""Mutated valid messages (issue 9): the boundary never crashes, never stalls, and never lets a
non-finite or out-of-bounds value into a feature vector.

Each example takes valid messages of every kind, replaces one field anywhere in one of them with
a hostile value (wrong type, non-ASCII digits, huge or tiny numbers, NaN, far times, ...) and
feeds the whole stream through the parser and the feature engine. Property: parsing either
returns events or raises ``MessageRejected``; the engine accepts every event it returns; every
feature value is finite and within the bound the input bounds imply."""

from __future__ import annotations

import copy
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_service.engine.core import FeatureEngine
from feature_service.market.errors import MessageRejected
from feature_service.market.parsing import parse_message
from tests.fixtures.market_messages import (
    envelope_funding,
    envelope_kline,
    envelope_orderbook,
    envelope_ticker,
    envelope_trade,
)

T10_US = 1_737_972_000_000_000  # the fixtures' minute
# Input bounds (market/values.py) cap prices at 1e9 and sizes at 1e12, so no feature can
# legitimately exceed a notional of 1e21 (sums over a window included) by many orders.
FEATURE_ABS_MAX = 1e30


def _valid_stream() -> list[dict[str, Any]]:
    return [
        envelope_orderbook(
            bids=[["50000.10", "1.250"], ["50000.00", "2"]],
            asks=[["50000.20", "0.840"], ["50000.30", "3"]],
            u=100,
        ),
        envelope_orderbook(bids=[["50000.05", "1"]], asks=[], type="delta", u=101),
        envelope_trade(),
        envelope_trade(trade_id="t2", side="Sell", price="50000.10", size="0.5"),
        envelope_kline(),
        envelope_ticker(),
        envelope_funding(),
        envelope_orderbook(bids=[], asks=[["50000.25", "1"]], type="delta", u=102),
    ]


HOSTILE_TEXT = [
    "１２", "٣", "1_000", " 12 ", "1e308", "-1e308", "1e-320", "NaN", "inf", "-0", "0x10",
    "9" * 400, "", "BTC/USDT", "../../etc", "BTCUSDТ", "A" * 300, "9999-12-31T00:00:00",
    "0001-01-01T00:00:00", "snapshot", "delta", "Buy",
]  # fmt: skip
JSON_INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can carry
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    JSON_INTEGERS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=5), JSON_INTEGERS), max_size=3),
    st.just([["1e308", "1"]]),
    st.just([["50000.3", "1"]]),  # a bid above the asks: crosses
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@st.composite
def mutated_streams(draw: st.DrawFn) -> list[bytes]:
    stream = _valid_stream()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(stream) - 1))
        message = copy.deepcopy(stream[i])
        path = draw(st.sampled_from(_paths(message)))
        _set(message, path, draw(HOSTILE))
        stream.insert(draw(st.integers(0, len(stream))), message)
    return [orjson.dumps(m) for m in stream]


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams())
def test_mutated_messages_never_crash_stall_or_leak_bad_values(bodies: list[bytes]) -> None:
    engine = FeatureEngine(intervals_s=(1,))
    vectors = []
    for n, body in enumerate(bodies):
        try:
            events = parse_message(body, receive_ts=T10_US + 200_000 + n)
        except MessageRejected:
            continue
        for event in events:
            vectors += engine.process(event)
    vectors += engine.advance_to(T10_US + 3_000_000)
    assert vectors
    for vector in vectors:
        for name, value in vector.features.items():
            if value is None:
                continue
            assert math.isfinite(value), (name, value)
            assert abs(value) <= FEATURE_ABS_MAX, (name, value)
