"""Parsing of ws-gateway envelopes and bare Bybit frames, and the ISO time helpers.

Expected values are written out by hand from the messages; epoch times are computed with
``calendar.timegm`` (independent of the code under test).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feature_service.market.errors import MessageRejected, RejectReason
from feature_service.market.events import (
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    Side,
    Ticker,
    Trade,
)
from feature_service.market.parsing import parse_message
from feature_service.market.timeutil import format_iso_us, parse_iso_us
from tests.fixtures.market_messages import (
    CONTRACT_FUNDING,
    CONTRACT_KLINE,
    CONTRACT_ORDERBOOK,
    CONTRACT_TICKER,
    CONTRACT_TRADE,
    EVENT_ID,
    TRACE_ID,
    TRADE_ID,
    bybit_frame,
    bybit_orderbook,
    bybit_trade,
    bybit_trades,
    envelope,
    envelope_funding,
    envelope_kline,
    envelope_orderbook,
    envelope_ticker,
    envelope_trade,
    to_bytes,
)


def utc_us(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us


T10 = utc_us(2025, 1, 27, 10)  # 2025-01-27T10:00:00 UTC, the contract examples' minute


def parse_one(body: Any, **kw: Any) -> Any:
    events = parse_message(body, **kw)
    assert len(events) == 1
    return events[0]


def rejected(body: Any, reason: RejectReason, **kw: Any) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        parse_message(body, **kw)
    assert info.value.reason is reason, info.value
    return info.value


# =========================================================================== contract examples


def test_contract_orderbook_example_parses_every_field() -> None:
    event = parse_one(CONTRACT_ORDERBOOK)
    assert event == BookSnapshot(
        symbol="BTCUSDT",
        topic="orderbook.1.BTCUSDT",
        exchange_ts=T10 + 123_000,
        gateway_ts=T10 + 131_452,
        receive_ts=T10 + 131_452,  # no service stamp: received_at is the clock
        event_id="0b6f1c2e-8d7a-4f3b-9c21-5a4e3d2c1b0a",
        trace_id="5d0c7a8e-1f2b-4c3d-8e9f-0a1b2c3d4e5f",
        bids=[(50000.10, 1.25)],
        asks=[(50000.20, 0.84)],
        update_id=18521288,
        seq=7961638724,
        depth=1,
    )
    assert type(event) is BookSnapshot


def test_contract_trade_example_parses_every_field() -> None:
    event = parse_one(CONTRACT_TRADE)
    assert event == Trade(
        symbol="BTCUSDT",
        topic="publicTrade.BTCUSDT",
        exchange_ts=T10 + 125_000,
        gateway_ts=T10 + 129_870,
        receive_ts=T10 + 129_870,
        event_id="9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        trace_id="5d0c7a8e-1f2b-4c3d-8e9f-0a1b2c3d4e5f",
        price=50000.2,
        size=0.01,
        side=Side.BUY,
        trade_time=T10 + 120_000,  # T = 1737972000120 ms
        trade_id="20f43950-d8dd-5b31-9112-a178eb6023af",
        block_trade=False,
        seq=None,
    )


def test_contract_ticker_example_parses_every_listed_field() -> None:
    event = parse_one(CONTRACT_TICKER)
    assert event == Ticker(
        symbol="BTCUSDT",
        topic="tickers.BTCUSDT",
        exchange_ts=T10 + 200_000,
        gateway_ts=T10 + 207_311,
        receive_ts=T10 + 207_311,
        event_id="1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5",
        trace_id="7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b",
        fields={
            "last_price": 50000.2,
            "mark_price": 50001.05,
            "index_price": 50002.1,
            "bid1_price": 50000.1,
            "bid1_size": 1.25,
            "ask1_price": 50000.2,
            "ask1_size": 0.84,
            "funding_rate": 0.0001,
            "next_funding_time": utc_us(2025, 1, 27, 16),  # 1737993600000 ms
            "volume_24h": 91705.276,
            "turnover_24h": 1570383121.94,
            "open_interest": 68744.761,
        },
    )
    assert type(event.fields["next_funding_time"]) is int


def test_contract_kline_example_parses_every_field_with_symbol_from_topic() -> None:
    event = parse_one(CONTRACT_KLINE)
    assert event == Kline(
        symbol="BTCUSDT",
        topic="kline.1.BTCUSDT",
        exchange_ts=utc_us(2025, 1, 27, 10, 0, 59, 999_000),
        gateway_ts=utc_us(2025, 1, 27, 10, 1, 0, 4_120),
        receive_ts=utc_us(2025, 1, 27, 10, 1, 0, 4_120),
        event_id="2d3e4f5a-6b7c-4d8e-9fa0-b1c2d3e4f5a6",
        trace_id="8f9a0b1c-2d3e-4f4a-8b5c-6d7e8f9a0b1c",
        interval="1",
        start=T10,
        end=T10 + 59_999_000,
        open=49990.0,
        high=50010.0,
        low=49985.5,
        close=50000.2,
        volume=12.345,
        turnover=617250.11,
        confirmed=True,
    )


def test_contract_funding_example_parses_every_field() -> None:
    event = parse_one(CONTRACT_FUNDING)
    assert event == Funding(
        symbol="BTCUSDT",
        topic="fundingRate.BTCUSDT",
        exchange_ts=T10,
        gateway_ts=T10 + 10_000,
        receive_ts=T10 + 10_000,
        event_id="3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7",
        trace_id="9a0b1c2d-3e4f-4a5b-9c6d-7e8f9a0b1c2d",
        funding_rate=0.0001,
        next_funding_time=utc_us(2025, 1, 27, 16),
        funding_rate_ts=utc_us(2025, 1, 27, 8),  # 1737964800000 ms
    )


def test_fixture_builders_default_to_the_contract_examples() -> None:
    """The builders other tests use must produce what the contract documents."""
    for built, text in [
        (envelope_orderbook(), CONTRACT_ORDERBOOK),
        (envelope_ticker(), CONTRACT_TICKER),
    ]:
        theirs = orjson.loads(text)
        assert built["payload"] == theirs["payload"]
        assert built["topic"] == theirs["topic"]
    trade = orjson.loads(CONTRACT_TRADE)
    assert envelope_trade()["payload"] == trade["payload"]
    kline = orjson.loads(CONTRACT_KLINE)
    assert envelope_kline()["payload"] == kline["payload"]
    assert envelope_kline()["timestamp"] == kline["timestamp"]
    funding = orjson.loads(CONTRACT_FUNDING)
    assert envelope_funding()["payload"] == funding["payload"]


# =========================================================================== input forms


@pytest.mark.parametrize(
    "as_input",
    [
        lambda text: text,
        lambda text: text.encode(),
        lambda text: bytearray(text.encode()),
        lambda text: memoryview(text.encode()),
        lambda text: orjson.loads(text),
        lambda text: MappingProxyType(orjson.loads(text)),
    ],
    ids=["str", "bytes", "bytearray", "memoryview", "dict", "mapping"],
)
def test_every_input_form_gives_the_same_event(as_input: Callable[[str], Any]) -> None:
    assert parse_message(as_input(CONTRACT_TRADE)) == parse_message(CONTRACT_TRADE)


def test_parsing_does_not_modify_a_dict_input() -> None:
    message = envelope_orderbook(type="delta", u=5)
    copy = orjson.loads(to_bytes(message))
    parse_message(message)
    assert message == copy


# =========================================================================== clocks


def test_explicit_receive_ts_wins_over_every_recorded_time() -> None:
    line = envelope_trade(service_received_at="2025-01-27T10:00:00.500000")
    stamp = T10 + 42  # within the time window of the recorded times
    assert parse_one(line, receive_ts=stamp).receive_ts == stamp


def test_service_received_at_is_the_replay_clock_when_present() -> None:
    event = parse_one(envelope_trade(service_received_at="2025-01-27T10:00:00.500000"))
    assert event.receive_ts == T10 + 500_000
    assert event.gateway_ts == T10 + 129_870  # received_at still fills the gateway clock


def test_received_at_is_the_replay_clock_without_service_time() -> None:
    assert parse_one(envelope_trade()).receive_ts == T10 + 129_870


def test_exchange_time_is_the_last_fallback_when_received_at_is_null() -> None:
    event = parse_one(envelope_trade(received_at=None))
    assert (event.gateway_ts, event.receive_ts) == (None, T10 + 125_000)


def test_bare_frame_ts_is_exchange_and_receive_time() -> None:
    frame = bybit_trades([bybit_trade()], ts=1672304486868)
    event = parse_one(frame)
    assert event.exchange_ts == 1672304486868_000
    assert event.receive_ts == 1672304486868_000
    assert event.gateway_ts is None
    assert parse_one(frame, receive_ts=1672304486868_007).receive_ts == 1672304486868_007


def test_bare_frame_with_service_received_at_uses_it() -> None:
    frame = bybit_trades([bybit_trade()], ts=1672304486868)
    frame["service_received_at"] = "2022-12-29T09:01:27"
    assert parse_one(frame).receive_ts == utc_us(2022, 12, 29, 9, 1, 27)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-27T10:00:00.123000", T10 + 123_000),
        ("2025-01-27T10:00:00", T10),
        ("2025-01-27T10:00:00.123000Z", T10 + 123_000),
        ("2025-01-27T10:00:00+00:00", T10),
        ("2025-01-27T12:00:00.5+02:00", T10 + 500_000),
    ],
)
def test_envelope_timestamps_accept_fraction_z_and_offset(text: str, expected: int) -> None:
    event = parse_one(envelope_trade(timestamp=text, received_at=text))
    assert (event.exchange_ts, event.gateway_ts) == (expected, expected)


# =========================================================================== orderbook


def test_orderbook_delta_keeps_zero_sizes_as_deletes_and_its_order() -> None:
    message = envelope_orderbook(
        symbol="ETHUSDT",
        type="delta",
        bids=[("3000.5", "0"), ("3000.4", "2.5")],
        asks=[],
        u=18521289,
        seq=None,
        depth=50,
    )
    event = parse_one(message)
    assert type(event) is BookDelta
    assert event.symbol == "ETHUSDT"
    assert event.bids == [(3000.5, 0.0), (3000.4, 2.5)]
    assert event.asks == []
    assert (event.update_id, event.seq, event.depth) == (18521289, None, 50)


def test_delta_with_update_id_1_is_a_restart_snapshot() -> None:
    event = parse_one(envelope_orderbook(type="delta", u=1))
    assert type(event) is BookSnapshot
    assert event.update_id == 1
    assert event.bids == [(50000.1, 1.25)]


def test_restart_delta_with_a_zero_size_is_rejected_like_any_snapshot() -> None:
    rejected(envelope_orderbook(type="delta", u=1, bids=[("1", "0")]), RejectReason.NEGATIVE_VALUE)


@pytest.mark.parametrize("depth", [1, 50, 200, 1000])
def test_depth_comes_from_the_topic(depth: int) -> None:
    assert parse_one(envelope_orderbook(depth=depth)).depth == depth


def test_payload_symbol_is_preferred_over_the_topic() -> None:
    message = envelope_orderbook()
    message["payload"]["s"] = "ETHUSDT"
    assert parse_one(message).symbol == "ETHUSDT"


def test_numbers_sent_as_json_numbers_are_accepted() -> None:
    event = parse_one(envelope_orderbook(bids=[(50000.5, 2)], asks=[(50001, 0.5)]))
    assert (event.bids, event.asks) == ([(50000.5, 2.0)], [(50001.0, 0.5)])


def test_empty_snapshot_sides_are_a_valid_empty_book() -> None:
    event = parse_one(envelope_orderbook(bids=[], asks=[]))
    assert (event.bids, event.asks) == ([], [])


# =========================================================================== trades


def test_sell_block_trade_with_seq_and_numeric_spot_id() -> None:
    message = envelope_trade(
        symbol="SOLUSDT",
        price="187.25",
        size="12",
        side="Sell",
        trade_time_ms=1737972000999,
        trade_id="2290000000061234567",
        block_trade=True,
        seq=1783284617,
        tick_direction=None,
    )
    event = parse_one(message)
    assert (event.symbol, event.price, event.size, event.side) == (
        "SOLUSDT",
        187.25,
        12.0,
        Side.SELL,
    )
    assert event.side == -1
    assert event.trade_time == T10 + 999_000
    assert (event.trade_id, event.block_trade, event.seq) == (
        "2290000000061234567",
        True,
        1783284617,
    )


def test_trade_without_bt_is_not_a_block_trade() -> None:
    message = envelope_trade()
    del message["payload"]["BT"]
    assert parse_one(message).block_trade is False


def test_trade_time_sent_as_digit_string_is_accepted() -> None:
    message = envelope_trade()
    message["payload"]["T"] = "1737972000120"
    assert parse_one(message).trade_time == T10 + 120_000


# =========================================================================== tickers, funding


def test_ticker_delta_carries_only_present_fields_and_skips_empty_strings() -> None:
    # A dated future: fundingRate and nextFundingTime are "" (not applicable), not errors.
    fields = {
        "markPrice": "66668.10",
        "fundingRate": "",
        "nextFundingTime": "",
        "basis": "12.5",  # not in TICKER_FIELDS: ignored
        "tickDirection": "PlusTick",
    }
    event = parse_one(envelope_ticker("BTCUSDT-27MAR26", fields))
    assert event.fields == {"mark_price": 66668.1}
    assert event.symbol == "BTCUSDT-27MAR26"


def test_ticker_signed_fields_may_be_negative() -> None:
    event = parse_one(
        envelope_ticker(fields={"fundingRate": "-0.000125", "price24hPcnt": "-0.0158"})
    )
    assert event.fields == {"funding_rate": -0.000125, "price_24h_pcnt": -0.0158}


def test_ticker_with_no_listed_field_is_an_empty_partial_update() -> None:
    assert parse_one(envelope_ticker(fields={"tickDirection": "MinusTick"})).fields == {}


def test_funding_accepts_snake_case_and_integer_milliseconds() -> None:
    message = envelope_funding(
        funding_rate="-0.0003",
        funding_rate_ts_ms=1737964800000,
        next_funding_time_ms=1737993600000,
        snake_case=True,
    )
    assert "funding_rate" in message["payload"]
    event = parse_one(message)
    assert event.funding_rate == -0.0003
    assert event.next_funding_time == utc_us(2025, 1, 27, 16)
    assert event.funding_rate_ts == utc_us(2025, 1, 27, 8)


def test_funding_without_optional_times_has_none() -> None:
    event = parse_one(envelope_funding(funding_rate_ts_ms=None, next_funding_time_ms=None))
    assert (event.next_funding_time, event.funding_rate_ts) == (None, None)


def test_unconfirmed_kline_with_day_interval() -> None:
    start = 1737936000000  # 2025-01-27T00:00:00 in ms
    event = parse_one(envelope_kline(interval="D", start_ms=start, confirm=False))
    assert (event.interval, event.confirmed) == ("D", False)
    assert event.start == utc_us(2025, 1, 27)
    assert event.end == utc_us(2025, 1, 28) - 1_000


# =========================================================================== bare Bybit frames


def test_bare_orderbook_snapshot_frame_from_the_bybit_docs() -> None:
    event = parse_one(bybit_orderbook())
    assert event == BookSnapshot(
        symbol="BTCUSDT",
        topic="orderbook.50.BTCUSDT",
        exchange_ts=1672304484978_000,
        gateway_ts=None,
        receive_ts=1672304484978_000,
        bids=[(16493.5, 0.006), (16493.0, 0.1)],
        asks=[(16611.0, 0.029), (16612.0, 0.213)],
        update_id=18521288,
        seq=7961638724,
        depth=50,
    )
    assert (event.event_id, event.trace_id) == (None, None)


def test_bare_frame_type_decides_delta() -> None:
    frame = bybit_orderbook(
        type="delta",
        bids=[("30247.20", "30.028"), ("30240.00", "0")],
        asks=[("30248.70", "0"), ("30249.30", "0.892")],
        u=177400507,
        seq=66544703342,
        ts=1687940967466,
    )
    event = parse_one(frame)
    assert type(event) is BookDelta
    assert event.bids == [(30247.2, 30.028), (30240.0, 0.0)]
    assert event.asks == [(30248.7, 0.0), (30249.3, 0.892)]
    assert event.exchange_ts == 1687940967466_000


def test_bare_trade_frame_gives_one_event_per_element_in_order() -> None:
    frame = bybit_trades(
        [
            bybit_trade(price="16578.50", side="Buy", trade_time_ms=1672304486865, trade_id="a"),
            bybit_trade(price="16578.00", side="Sell", trade_time_ms=1672304486866, trade_id="b"),
            bybit_trade(price="16577.50", side="Sell", trade_time_ms=1672304486866, trade_id="c"),
        ],
        ts=1672304486868,
    )
    events = parse_message(frame)
    assert [(e.trade_id, e.price, e.side, e.trade_time) for e in events] == [
        ("a", 16578.5, Side.BUY, 1672304486865_000),
        ("b", 16578.0, Side.SELL, 1672304486866_000),
        ("c", 16577.5, Side.SELL, 1672304486866_000),
    ]
    assert {(e.exchange_ts, e.receive_ts, e.topic) for e in events} == {
        (1672304486868_000, 1672304486868_000, "publicTrade.BTCUSDT")
    }


def test_bare_kline_and_ticker_frames() -> None:
    kline = bybit_frame(
        "kline.5.BTCUSDT",
        [
            {
                "start": 1672324800000,
                "end": 1672325099999,
                "interval": "5",
                "open": "16649.5",
                "close": "16677",
                "high": "16677",
                "low": "16608",
                "volume": "2.081",
                "turnover": "34666.4005",
                "confirm": False,
                "timestamp": 1672324988882,
            }
        ],
        ts=1672324988882,
    )
    event = parse_one(kline)
    assert (event.symbol, event.interval, event.start, event.end) == (
        "BTCUSDT",
        "5",
        1672324800000_000,
        1672325099999_000,
    )
    assert (event.open, event.high, event.low, event.close) == (16649.5, 16677.0, 16608.0, 16677.0)
    assert (event.volume, event.turnover, event.confirmed) == (2.081, 34666.4005, False)

    ticker = bybit_frame(
        "tickers.BTCUSDT",
        {"symbol": "BTCUSDT", "markPrice": "66668.10", "bid1Size": "12.001"},
        type="delta",
        ts=1760325052730,
        cs=9532239502,
    )
    event = parse_one(ticker)
    assert event.fields == {"mark_price": 66668.1, "bid1_size": 12.001}
    assert event.exchange_ts == 1760325052730_000


# =========================================================================== rejections


def _with_payload(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    payload = dict(message["payload"])
    for key, value in changes.items():
        if value is _DELETE:
            del payload[key]
        else:
            payload[key] = value
    return {**message, "payload": payload}


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != key}


_DELETE = object()
OB = envelope_orderbook()
OB_DELTA = envelope_orderbook(type="delta", u=5)
TR = envelope_trade()
KL = envelope_kline()
TK = envelope_ticker()
FU = envelope_funding()

REJECTIONS: list[tuple[str, Any, RejectReason]] = [
    # not JSON / not an object
    ("truncated json", b'{"event_type": "trade"', RejectReason.BAD_JSON),
    ("nan literal", b'{"a": NaN}', RejectReason.BAD_JSON),
    ("empty body", b"", RejectReason.BAD_JSON),
    ("json array", b"[1, 2]", RejectReason.NOT_AN_OBJECT),
    ("json string", '"hello"', RejectReason.NOT_AN_OBJECT),
    ("python list", [1, 2], RejectReason.NOT_AN_OBJECT),
    ("payload list", {**TR, "payload": [1]}, RejectReason.NOT_AN_OBJECT),
    ("neither kind", {"op": "pong", "args": ["1"]}, RejectReason.MISSING_FIELD),
    # envelope fields
    ("no topic", _without(TR, "topic"), RejectReason.MISSING_FIELD),
    ("no payload", _without(TR, "payload"), RejectReason.MISSING_FIELD),
    ("no timestamp", _without(TR, "timestamp"), RejectReason.MISSING_FIELD),
    ("no received_at", _without(TR, "received_at"), RejectReason.MISSING_FIELD),
    ("event_id not str", {**TR, "event_id": 5}, RejectReason.MISSING_FIELD),
    ("topic not str", {**TR, "topic": 5}, RejectReason.MISSING_FIELD),
    # event types and topics
    ("liquidation", {**TR, "event_type": "liquidation"}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("order", {**TR, "event_type": "order"}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("balance", {**TR, "event_type": "balance"}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("position", {**TR, "event_type": "position"}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("plural trades", {**TR, "event_type": "trades"}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("event_type list", {**TR, "event_type": ["trade"]}, RejectReason.UNKNOWN_EVENT_TYPE),
    ("topic of another kind", {**TR, "topic": "tickers.BTCUSDT"}, RejectReason.UNKNOWN_TOPIC),
    ("rpi book topic", {**OB, "topic": "orderbook.rpi.BTCUSDT"}, RejectReason.UNKNOWN_TOPIC),
    ("book topic no depth", {**OB, "topic": "orderbook.BTCUSDT"}, RejectReason.UNKNOWN_TOPIC),
    ("kline topic short", {**KL, "topic": "kline.BTCUSDT"}, RejectReason.UNKNOWN_TOPIC),
    # timestamps
    ("timestamp words", {**TR, "timestamp": "yesterday"}, RejectReason.BAD_TIMESTAMP),
    ("timestamp int", {**TR, "timestamp": 1737972000125}, RejectReason.BAD_TIMESTAMP),
    ("timestamp date only", {**TR, "timestamp": "2025-01-27"}, RejectReason.BAD_TIMESTAMP),
    ("month 13", {**TR, "received_at": "2025-13-27T10:00:00"}, RejectReason.BAD_TIMESTAMP),
    ("feb 30", {**TR, "received_at": "2025-02-30T10:00:00"}, RejectReason.BAD_TIMESTAMP),
    ("service time bad", {**TR, "service_received_at": "x"}, RejectReason.BAD_TIMESTAMP),
    ("trade T words", _with_payload(TR, T="soon"), RejectReason.BAD_TIMESTAMP),
    ("trade T negative", _with_payload(TR, T=-1), RejectReason.BAD_TIMESTAMP),
    ("trade T float", _with_payload(TR, T=1.5), RejectReason.BAD_TIMESTAMP),
    ("kline start bool", _with_payload(KL, start=True), RejectReason.BAD_TIMESTAMP),
    ("funding next words", _with_payload(FU, nextFundingTime="later"), RejectReason.BAD_TIMESTAMP),
    ("ticker next words", _with_payload(TK, nextFundingTime="1e12"), RejectReason.BAD_TIMESTAMP),
    # numbers
    ("price words", _with_payload(TR, p="abc"), RejectReason.BAD_NUMBER),
    ("price NaN", _with_payload(TR, p="NaN"), RejectReason.BAD_NUMBER),
    ("price nan lower", _with_payload(TR, p="nan"), RejectReason.BAD_NUMBER),
    ("size inf", _with_payload(TR, v="inf"), RejectReason.BAD_NUMBER),
    ("size -Infinity", _with_payload(TR, v="-Infinity"), RejectReason.BAD_NUMBER),
    ("price overflow", _with_payload(TR, p="1e999"), RejectReason.BAD_NUMBER),
    ("price bool", _with_payload(TR, p=True), RejectReason.BAD_NUMBER),
    ("price null", _with_payload(TR, p=None), RejectReason.MISSING_FIELD),
    ("price empty", _with_payload(TR, p=""), RejectReason.BAD_NUMBER),
    ("BT not bool", _with_payload(TR, BT="false"), RejectReason.BAD_NUMBER),
    ("seq words", _with_payload(TR, seq="x"), RejectReason.BAD_NUMBER),
    ("u float", _with_payload(OB, u=1.5), RejectReason.BAD_NUMBER),
    ("u negative", _with_payload(OB, u=-3), RejectReason.NEGATIVE_VALUE),
    ("level triple", _with_payload(OB, b=[["1", "2", "3"]]), RejectReason.BAD_NUMBER),
    ("level not list", _with_payload(OB, b=["1"]), RejectReason.BAD_NUMBER),
    ("side not list", _with_payload(OB, a="x"), RejectReason.BAD_NUMBER),
    ("level nan", _with_payload(OB, b=[["nan", "1"]]), RejectReason.BAD_NUMBER),
    ("level inf size", _with_payload(OB_DELTA, a=[["1", "inf"]]), RejectReason.BAD_NUMBER),
    ("level null", _with_payload(OB, b=[[None, "1"]]), RejectReason.BAD_NUMBER),
    ("kline open words", _with_payload(KL, open="x"), RejectReason.BAD_NUMBER),
    ("kline confirm str", _with_payload(KL, confirm="true"), RejectReason.BAD_NUMBER),
    ("ticker price words", _with_payload(TK, lastPrice="x"), RejectReason.BAD_NUMBER),
    ("funding rate nan", _with_payload(FU, fundingRate="nan"), RejectReason.BAD_NUMBER),
    # ranges
    ("trade price 0", _with_payload(TR, p="0"), RejectReason.NEGATIVE_VALUE),
    ("trade size 0", _with_payload(TR, v="0"), RejectReason.NEGATIVE_VALUE),
    ("trade price negative", _with_payload(TR, p="-1"), RejectReason.NEGATIVE_VALUE),
    ("snapshot size 0", _with_payload(OB, b=[["1", "0"]]), RejectReason.NEGATIVE_VALUE),
    ("delta size negative", _with_payload(OB_DELTA, a=[["1", "-1"]]), RejectReason.NEGATIVE_VALUE),
    ("delta price 0", _with_payload(OB_DELTA, b=[["0", "0"]]), RejectReason.NEGATIVE_VALUE),
    ("kline low 0", _with_payload(KL, low="0"), RejectReason.NEGATIVE_VALUE),
    ("kline volume negative", _with_payload(KL, volume="-1"), RejectReason.NEGATIVE_VALUE),
    ("ticker price negative", _with_payload(TK, markPrice="-5"), RejectReason.NEGATIVE_VALUE),
    # missing payload fields
    ("book no u", _with_payload(OB, u=_DELETE), RejectReason.MISSING_FIELD),
    ("book no b", _with_payload(OB, b=_DELETE), RejectReason.MISSING_FIELD),
    ("book no type", _with_payload(OB, type=_DELETE), RejectReason.MISSING_FIELD),
    ("book bad type", _with_payload(OB, type="partial"), RejectReason.UNKNOWN_EVENT_TYPE),
    ("trade no T", _with_payload(TR, T=_DELETE), RejectReason.MISSING_FIELD),
    ("trade no i", _with_payload(TR, i=_DELETE), RejectReason.MISSING_FIELD),
    ("trade empty i", _with_payload(TR, i=""), RejectReason.MISSING_FIELD),
    ("kline no interval", _with_payload(KL, interval=_DELETE), RejectReason.MISSING_FIELD),
    ("kline no close", _with_payload(KL, close=_DELETE), RejectReason.MISSING_FIELD),
    ("kline no confirm", _with_payload(KL, confirm=_DELETE), RejectReason.MISSING_FIELD),
    ("funding no rate", _with_payload(FU, fundingRate=_DELETE), RejectReason.MISSING_FIELD),
    # symbol and side
    ("symbol empty", _with_payload(TR, s=""), RejectReason.MISSING_SYMBOL),
    ("symbol number", _with_payload(TK, symbol=7), RejectReason.MISSING_SYMBOL),
    ("kline topic no symbol", {**KL, "topic": "kline.1."}, RejectReason.MISSING_SYMBOL),
    ("side lower case", _with_payload(TR, S="buy"), RejectReason.BAD_SIDE),
    ("side none word", _with_payload(TR, S="None"), RejectReason.BAD_SIDE),
    ("side list", _with_payload(TR, S=["Buy"]), RejectReason.BAD_SIDE),
    ("side missing", _with_payload(TR, S=_DELETE), RejectReason.MISSING_FIELD),
    # hostile values (issue 9): each class of poison the boundary must refuse
    ("symbol path", _with_payload(TR, s="../../etc"), RejectReason.BAD_SYMBOL),
    ("symbol slash", _with_payload(TR, s="BTC/USDT"), RejectReason.BAD_SYMBOL),
    ("symbol blank", _with_payload(TR, s="BTC USDT"), RejectReason.BAD_SYMBOL),
    ("symbol non-ascii", _with_payload(TR, s="BTCUSDТ"), RejectReason.BAD_SYMBOL),
    ("symbol lower", _with_payload(TR, s="btcusdt"), RejectReason.BAD_SYMBOL),
    ("symbol 300 chars", _with_payload(TR, s="A" * 300), RejectReason.BAD_SYMBOL),
    (
        "topic symbol bad",
        {
            **KL,
            "topic": "kline.1.a/b",
            "payload": {k: v for k, v in KL["payload"].items() if k != "symbol"},
        },
        RejectReason.BAD_SYMBOL,
    ),
    ("full-width digits", _with_payload(TR, p="１２"), RejectReason.BAD_NUMBER),
    ("arabic digits", _with_payload(TR, v="٣"), RejectReason.BAD_NUMBER),
    ("underscore digits", _with_payload(TR, p="1_000"), RejectReason.BAD_NUMBER),
    ("blank around", _with_payload(TR, p=" 12 "), RejectReason.BAD_NUMBER),
    ("level full-width", _with_payload(OB, b=[["５", "1"]]), RejectReason.BAD_NUMBER),
    ("price 1e308", _with_payload(TR, p="1e308"), RejectReason.OUT_OF_RANGE),
    ("price 1e308 number", _with_payload(TR, p=1e308), RejectReason.OUT_OF_RANGE),
    ("size 1e-320", _with_payload(TR, v="1e-320"), RejectReason.OUT_OF_RANGE),
    ("level price 1e308", _with_payload(OB, b=[["1e308", "1"]]), RejectReason.OUT_OF_RANGE),
    ("level size huge", _with_payload(OB, a=[["50001", "1e300"]]), RejectReason.OUT_OF_RANGE),
    ("level digits overflow", _with_payload(OB, b=[["9" * 400, "1"]]), RejectReason.OUT_OF_RANGE),
    ("funding rate 5", _with_payload(FU, fundingRate="5"), RejectReason.OUT_OF_RANGE),
    ("ticker volume 1e300", _with_payload(TK, volume24h="1e300"), RejectReason.OUT_OF_RANGE),
    ("kline turnover 1e300", _with_payload(KL, turnover="1e300"), RejectReason.OUT_OF_RANGE),
    ("u string", _with_payload(OB, u="18521288"), RejectReason.BAD_NUMBER),
    ("seq string", _with_payload(OB, seq="7961638724"), RejectReason.BAD_NUMBER),
    ("u 2**64", _with_payload(OB, u=2**64), RejectReason.OUT_OF_RANGE),
    ("year 1", {**TR, "timestamp": "0001-01-01T00:00:00"}, RejectReason.BAD_TIMESTAMP),
    ("year 9999", {**TR, "timestamp": "9999-12-31T23:59:59"}, RejectReason.BAD_TIMESTAMP),
    (
        "received year 9999",
        {**TR, "received_at": "9999-01-01T00:00:00"},
        RejectReason.BAD_TIMESTAMP,
    ),
    (
        "timestamp 2 days early",
        {**TR, "timestamp": "2025-01-25T10:00:00"},
        RejectReason.BAD_TIMESTAMP,
    ),
    ("trade T year 9999", _with_payload(TR, T=253402300799000), RejectReason.BAD_TIMESTAMP),
    (
        "trade T 2 days late",
        _with_payload(TR, T=1737972000120 + 2 * 86_400_000),
        RejectReason.BAD_TIMESTAMP,
    ),
    ("kline high < low", _with_payload(KL, high="49000"), RejectReason.INCONSISTENT),
    ("kline close > high", _with_payload(KL, close="50010.5"), RejectReason.INCONSISTENT),
    ("kline open < low", _with_payload(KL, open="49985.4"), RejectReason.INCONSISTENT),
    ("kline end before start", _with_payload(KL, end=1737971999999), RejectReason.INCONSISTENT),
    (
        "crossed delta",
        _with_payload(OB_DELTA, b=[["60000", "1"]], a=[["59999", "1"]]),
        RejectReason.INCONSISTENT,
    ),
    ("crossed snapshot", _with_payload(OB, b=[["50000.3", "1"]]), RejectReason.INCONSISTENT),
    (
        "too many levels",
        _with_payload(OB, b=[[str(1000 + i), "1"] for i in range(1001)]),
        RejectReason.OUT_OF_RANGE,
    ),
    ("5 MB body", orjson.dumps({**TR, "pad": "x" * 5_000_000}), RejectReason.TOO_LARGE),
    # bare frames
    ("frame empty list", bybit_trades([]), RejectReason.EMPTY_DATA),
    ("frame empty object", bybit_frame("tickers.BTCUSDT", {}), RejectReason.EMPTY_DATA),
    ("frame element str", bybit_frame("publicTrade.BTCUSDT", ["x"]), RejectReason.NOT_AN_OBJECT),
    ("frame data str", bybit_frame("publicTrade.BTCUSDT", "x"), RejectReason.NOT_AN_OBJECT),
    ("frame no ts", _without(bybit_orderbook(), "ts"), RejectReason.MISSING_FIELD),
    ("frame ts words", {**bybit_orderbook(), "ts": "now"}, RejectReason.BAD_TIMESTAMP),
    ("frame no topic", _without(bybit_orderbook(), "topic"), RejectReason.MISSING_FIELD),
    ("frame no type", _without(bybit_orderbook(), "type"), RejectReason.MISSING_FIELD),
    (
        "frame liquidation",
        bybit_frame("allLiquidation.ROSEUSDT", [{"T": 1, "s": "ROSEUSDT", "S": "Sell"}]),
        RejectReason.UNKNOWN_EVENT_TYPE,
    ),
    ("frame unknown topic", bybit_frame("greeks.BTC", [{"a": 1}]), RejectReason.UNKNOWN_TOPIC),
    (
        "frame full book",
        {**bybit_orderbook(), "topic": "orderbook.full.BTCUSDT"},
        RejectReason.UNKNOWN_TOPIC,
    ),
    (
        "frame second trade bad",
        bybit_trades([bybit_trade(), bybit_trade(side="Hold")]),
        RejectReason.BAD_SIDE,
    ),
]


@pytest.mark.parametrize(
    ("body", "reason"), [(b, r) for _, b, r in REJECTIONS], ids=[n for n, _, _ in REJECTIONS]
)
def test_malformed_input_is_rejected_with_its_reason(body: Any, reason: RejectReason) -> None:
    error = rejected(body, reason)
    assert error.detail  # a human-readable reason travels with the code
    assert str(error).startswith(reason.value + ":")


def test_every_reject_reason_is_exercised() -> None:
    assert {reason for _, _, reason in REJECTIONS} == set(RejectReason)


def test_rejection_detail_is_bounded_for_huge_values() -> None:
    error = rejected(_with_payload(TR, p="x" * 10_000), RejectReason.BAD_NUMBER)
    assert len(error.detail) < 200


def test_unknown_topics_seen_many_times_do_not_grow_memory_without_bound() -> None:
    from feature_service.market import parsing

    for i in range(parsing._TOPIC_CACHE_MAX + 10):
        with pytest.raises(MessageRejected):
            parse_message(bybit_frame(f"junk{i}.X", [{"a": 1}]))
    assert len(parsing._TOPIC_CACHE) <= parsing._TOPIC_CACHE_MAX


# =========================================================================== ISO helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-27T10:00:00.123000", T10 + 123_000),
        ("2025-01-27T10:00:00.131452", T10 + 131_452),
        ("2025-01-27T10:00:00", T10),
        ("2025-01-27T10:00:00Z", T10),
        ("2025-01-27T10:00:00.000001Z", T10 + 1),
        ("2025-01-27T10:00:00+00:00", T10),
        ("2025-01-27T10:00:00.123", T10 + 123_000),
        ("2025-01-27 10:00:00.5", T10 + 500_000),
        ("2025-01-27T11:30:00+01:30", T10),
        ("2025-01-27T08:00:00-02:00", T10),
        ("1970-01-01T00:00:00", 0),
        ("1969-12-31T23:59:59.999999", -1),
        ("2024-02-29T23:59:59.999999", utc_us(2024, 3, 1) - 1),
    ],
)
def test_parse_iso_us(text: str, expected: int) -> None:
    assert parse_iso_us(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2025-01-27",
        "20250127T100000",
        "2025-01-27T10:00",
        "2025-01-27T25:00:00",
        "2023-02-29T00:00:00",
        "2025-01-27T10:00:00.",
        "2025-01-27T10:00:00 junk",
        "2025-01-27X10:00:00",
        "１９７０-01-01T00:00:00",
    ],
)
def test_parse_iso_us_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_us(text)


def test_format_iso_us_rejects_times_outside_years_1_to_9999() -> None:
    with pytest.raises(ValueError):
        format_iso_us(253_402_300_800_000_000)  # 10000-01-01


def test_parse_iso_us_rejects_non_strings() -> None:
    for value in (None, 1737972000, b"2025-01-27T10:00:00"):
        with pytest.raises(ValueError):
            parse_iso_us(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (T10, "2025-01-27T10:00:00"),
        (T10 + 123_000, "2025-01-27T10:00:00.123000"),
        (T10 + 1, "2025-01-27T10:00:00.000001"),
        (0, "1970-01-01T00:00:00"),
        (-1, "1969-12-31T23:59:59.999999"),
    ],
)
def test_format_iso_us_writes_python_isoformat(us: int, text: str) -> None:
    assert format_iso_us(us) == text


@given(st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999))
def test_iso_round_trip_and_agreement_with_aware_datetime(us: int) -> None:
    text = format_iso_us(us)
    assert parse_iso_us(text) == us
    reference = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    assert text == reference.replace(tzinfo=None).isoformat()
    assert parse_iso_us(text + "Z") == us


def test_huge_and_tiny_prices_stay_exact() -> None:
    event = parse_one(_with_payload(TR, p="0.00000001", v="123456789.123456789"))
    assert event.price == 1e-8
    assert math.isclose(event.size, 123456789.123456789, rel_tol=0.0)


def test_fixture_ids_are_the_contract_ids() -> None:
    event = parse_one(envelope_orderbook())
    assert (event.event_id, event.trace_id) == (EVENT_ID, TRACE_ID)
    assert parse_one(envelope_trade()).trade_id == TRADE_ID


def test_envelope_builder_without_ids_parses_to_none() -> None:
    event = parse_one(
        envelope("ticker", "tickers.XY", {"lastPrice": "1"}, event_id=None, trace_id=None)
    )
    assert (event.symbol, event.event_id, event.trace_id, event.fields) == (
        "XY",
        None,
        None,
        {"last_price": 1.0},
    )


def test_kline_envelopes_get_the_kline_window_going_back_and_others_do_not() -> None:
    """The 25 h candle warm-up arrives as kline envelopes stamped at each candle's close: up to
    the kline window (2 days) old is accepted for klines, one day for every other stream."""
    hour_us = 3_600_000_000
    start_ms = 1737972000000
    close_us = (start_ms + 60_000) * 1000
    for age_h, ok in ((30, True), (47, True), (49, False)):
        body = to_bytes(envelope_kline(start_ms=start_ms))
        receive = close_us + age_h * hour_us
        if ok:
            (event,) = parse_message(body, receive_ts=receive)
            assert isinstance(event, Kline) and event.start == start_ms * 1000
        else:
            with pytest.raises(MessageRejected) as err:
                parse_message(body, receive_ts=receive)
            assert err.value.reason is RejectReason.BAD_TIMESTAMP
    trade = to_bytes(envelope_trade())
    trade_ts = parse_iso_us(orjson.loads(trade)["timestamp"])
    with pytest.raises(MessageRejected) as err:
        parse_message(trade, receive_ts=trade_ts + 30 * hour_us)
    assert err.value.reason is RejectReason.BAD_TIMESTAMP
