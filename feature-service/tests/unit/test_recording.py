"""Recordings (JSON Lines, plain and gzip) and event_to_envelope, the inverse of parsing."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feature_service.market.errors import MessageRejected, RejectReason
from feature_service.market.events import (
    TICKER_FIELDS,
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Side,
    Ticker,
    Trade,
)
from feature_service.market.parsing import parse_message
from feature_service.market.recording import (
    RecordingError,
    RecordingWriter,
    event_to_envelope,
    iter_envelopes,
    iter_recording,
    read_recording,
    write_recording,
)
from feature_service.market.timeutil import parse_iso_us
from tests.fixtures.market_messages import (
    CONTRACT_FUNDING,
    CONTRACT_KLINE,
    CONTRACT_ORDERBOOK,
    CONTRACT_TICKER,
    CONTRACT_TRADE,
    bybit_trade,
    bybit_trades,
    envelope_orderbook,
    envelope_trade,
    to_bytes,
)

T10 = 1_737_972_000_000_000  # 2025-01-27T10:00:00 UTC in microseconds


def one(body: Any) -> MarketEvent:
    (event,) = parse_message(body)
    return event


def trade(**over: Any) -> Trade:
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "topic": "publicTrade.BTCUSDT",
        "exchange_ts": T10 + 125_000,
        "gateway_ts": T10 + 129_870,
        "receive_ts": T10 + 131_000,
        "event_id": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        "trace_id": "5d0c7a8e-1f2b-4c3d-8e9f-0a1b2c3d4e5f",
        "price": 50000.2,
        "size": 0.01,
        "side": Side.BUY,
        "trade_time": T10 + 120_000,
        "trade_id": "20f43950-d8dd-5b31-9112-a178eb6023af",
    }
    values.update(over)
    return Trade(**values)


# =========================================================================== event_to_envelope


def test_trade_envelope_is_what_ws_gateway_publishes() -> None:
    envelope = event_to_envelope(trade())
    assert envelope == {
        "event_id": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
        "event_type": "trade",
        "topic": "publicTrade.BTCUSDT",
        "timestamp": "2025-01-27T10:00:00.125000",
        "received_at": "2025-01-27T10:00:00.129870",
        "payload": {
            "T": 1737972000120,
            "s": "BTCUSDT",
            "S": "Buy",
            "v": "0.01",
            "p": "50000.2",
            "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
            "BT": False,
            "topic": "publicTrade.BTCUSDT",
        },
        "trace_id": "5d0c7a8e-1f2b-4c3d-8e9f-0a1b2c3d4e5f",
        "service_received_at": "2025-01-27T10:00:00.131000",
    }
    assert list(envelope) == [
        "event_id",
        "event_type",
        "topic",
        "timestamp",
        "received_at",
        "payload",
        "trace_id",
        "service_received_at",
    ]


def test_sell_trade_with_seq() -> None:
    payload = event_to_envelope(trade(side=Side.SELL, seq=17, block_trade=True))["payload"]
    assert (payload["S"], payload["seq"], payload["BT"]) == ("Sell", 17, True)


@pytest.mark.parametrize(
    "text", [CONTRACT_ORDERBOOK, CONTRACT_TRADE, CONTRACT_TICKER, CONTRACT_KLINE, CONTRACT_FUNDING]
)
def test_contract_examples_map_back_to_the_same_envelope_shape(text: str) -> None:
    """Same keys, same JSON types and the same numbers as the contract's example (the number
    text may be shorter: "50000.10" comes back as "50000.1"; kline ``timestamp`` and trade
    ``L`` are not kept by the events)."""
    original = orjson.loads(text)
    event = one(text)
    envelope = event_to_envelope(event, include_service_time=False)
    for key in ("event_id", "event_type", "topic", "trace_id"):
        assert envelope[key] == original[key]
    # The funding example writes ".000000"; isoformat (what ws-gateway runs) omits a zero fraction.
    for key in ("timestamp", "received_at"):
        assert parse_iso_us(envelope[key]) == parse_iso_us(original[key])
    theirs = {k: v for k, v in original["payload"].items() if k not in ("timestamp", "L")}
    ours = envelope["payload"]
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert type(ours[key]) is type(value), key
        if isinstance(value, str) and key not in (
            "s",
            "symbol",
            "topic",
            "i",
            "interval",
            "S",
            "type",
        ):
            assert float(ours[key]) == float(value), key
        elif key in ("b", "a"):
            assert [[float(x) for x in lv] for lv in ours[key]] == [
                [float(x) for x in lv] for lv in value
            ]
        else:
            assert ours[key] == value, key
    assert one(envelope) == event


def test_book_payload_carries_type_levels_as_strings_and_integer_ids() -> None:
    snapshot = one(envelope_orderbook(bids=[("100.5", "2")], asks=[("101", "3")], u=9, seq=99))
    payload = event_to_envelope(snapshot)["payload"]
    assert payload == {
        "s": "BTCUSDT",
        "b": [["100.5", "2.0"]],
        "a": [["101.0", "3.0"]],
        "u": 9,
        "seq": 99,
        "topic": "orderbook.1.BTCUSDT",
        "type": "snapshot",
    }
    delta = one(envelope_orderbook(type="delta", bids=[("100.5", "0")], asks=[], u=10, seq=None))
    payload = event_to_envelope(delta)["payload"]
    assert (payload["type"], payload["b"], payload["a"], "seq" in payload) == (
        "delta",
        [["100.5", "0.0"]],
        [],
        False,
    )


def test_small_and_large_numbers_are_written_without_exponent() -> None:
    funding = Funding(
        symbol="BTCUSDT",
        topic="fundingRate.BTCUSDT",
        exchange_ts=T10,
        gateway_ts=T10,
        receive_ts=T10,
        funding_rate=1e-05,
        next_funding_time=None,
    )
    assert event_to_envelope(funding)["payload"]["fundingRate"] == "0.00001"
    book = BookSnapshot(
        symbol="XY",
        topic="orderbook.1.XY",
        exchange_ts=T10,
        gateway_ts=T10,
        receive_ts=T10,
        bids=[(1e9, 2.5e-7)],
        asks=[],
        update_id=3,
        depth=1,
    )
    envelope = event_to_envelope(book)
    # (prices above 1e9 are out of bounds, so only small numbers need the exponent removed)
    assert envelope["payload"]["b"] == [["1000000000.0", "0.00000025"]]
    assert one(envelope) == book


def test_event_without_gateway_time_or_ids_writes_nulls_and_round_trips() -> None:
    event = trade(gateway_ts=None, event_id=None, trace_id=None)
    envelope = event_to_envelope(event)
    assert (envelope["received_at"], envelope["event_id"], envelope["trace_id"]) == (
        None,
        None,
        None,
    )
    assert one(to_bytes(envelope)) == event


def test_without_service_time_the_receive_clock_is_received_at() -> None:
    envelope = event_to_envelope(trade(), include_service_time=False)
    assert "service_received_at" not in envelope
    assert one(envelope).receive_ts == T10 + 129_870


def test_delta_with_update_id_1_comes_back_as_a_snapshot() -> None:
    """Bybit's restart marker: documented asymmetry of the round trip."""
    delta = BookDelta(
        symbol="XY",
        topic="orderbook.50.XY",
        exchange_ts=T10,
        gateway_ts=T10,
        receive_ts=T10,
        bids=[(1.0, 2.0)],
        asks=[],
        update_id=1,
        depth=50,
    )
    assert type(one(event_to_envelope(delta))) is BookSnapshot


def test_times_that_bybit_sends_in_ms_must_be_whole_ms() -> None:
    with pytest.raises(ValueError, match="trade_time"):
        event_to_envelope(trade(trade_time=T10 + 1))


def test_not_an_event_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        event_to_envelope({"topic": "x"})  # type: ignore[arg-type]


# =========================================================================== round trip property

# Every value within the parser's bounds (market/values.py): outside them is a rejection,
# tested in test_parsing.py. Times are near one receive time, as the time window requires.
DAY_US = 86_400_000_000
# a day inside 2010..2100 on each side: times within a day of receive stay in bounds (2100 excluded)
RECEIVE_TIMES = st.integers(min_value=1_262_390_400_000_000, max_value=4_102_358_400_000_000 - 1)
NEAR_US = st.integers(min_value=-DAY_US, max_value=DAY_US)
NEAR_MS = st.integers(min_value=-86_400_000, max_value=86_400_000).map(lambda ms: ms * 1_000)
SYMBOLS = st.from_regex(r"[A-Z0-9]{2,12}", fullmatch=True)
IDS = st.none() | st.uuids().map(str)
PRICES = st.floats(min_value=1e-10, max_value=1e9)
SIZES = st.floats(min_value=1e-10, max_value=1e12)
AMOUNTS = st.just(0.0) | st.floats(min_value=1e-10, max_value=1e16)
U64 = st.integers(min_value=0, max_value=2**63 - 1)


def ms_time_near(receive_ts: int) -> st.SearchStrategy[int]:
    # whole milliseconds (Bybit's unit) within the window
    base = receive_ts // 1000 * 1000
    return NEAR_MS.map(lambda d: base + d).filter(
        lambda t: receive_ts - DAY_US <= t <= receive_ts + DAY_US
    )


@st.composite
def bases(draw: st.DrawFn, topic_of: Any) -> dict[str, Any]:
    symbol = draw(SYMBOLS)
    receive_ts = draw(RECEIVE_TIMES)
    return {
        "symbol": symbol,
        "topic": topic_of(symbol),
        "exchange_ts": receive_ts + draw(NEAR_US),
        "gateway_ts": draw(st.none() | NEAR_US.map(lambda d: receive_ts + d)),
        "receive_ts": receive_ts,
        "event_id": draw(IDS),
        "trace_id": draw(IDS),
    }


@st.composite
def books(draw: st.DrawFn) -> BookSnapshot | BookDelta:
    depth = draw(st.sampled_from([1, 50, 200, 1000]))
    base = draw(bases(lambda s: f"orderbook.{depth}.{s}"))
    is_delta = draw(st.booleans())
    size = (st.just(0.0) | SIZES) if is_delta else SIZES
    # bids below 1000 and asks above it: one message never crosses itself
    bids = st.lists(st.tuples(st.floats(min_value=1e-10, max_value=999.0), size), max_size=5)
    asks = st.lists(st.tuples(st.floats(min_value=1000.0, max_value=1e9), size), max_size=5)
    cls = BookDelta if is_delta else BookSnapshot
    return cls(
        **base,
        bids=draw(bids),
        asks=draw(asks),
        # a delta with u == 1 is a restart snapshot by definition (tested separately)
        update_id=draw(st.integers(min_value=2 if is_delta else 0, max_value=2**63 - 1)),
        seq=draw(st.none() | U64),
        depth=depth,
    )


@st.composite
def trades(draw: st.DrawFn) -> Trade:
    base = draw(bases(lambda s: f"publicTrade.{s}"))
    return Trade(
        **base,
        price=draw(PRICES),
        size=draw(SIZES),
        side=draw(st.sampled_from(Side)),
        trade_time=draw(ms_time_near(base["receive_ts"])),
        trade_id=draw(st.uuids().map(str) | st.from_regex(r"[0-9]{1,19}", fullmatch=True)),
        block_trade=draw(st.booleans()),
        seq=draw(st.none() | U64),
    )


@st.composite
def klines(draw: st.DrawFn) -> Kline:
    interval = draw(st.sampled_from(["1", "3", "5", "15", "60", "240", "D", "W", "M"]))
    base = draw(bases(lambda s: f"kline.{interval}.{s}"))
    start, end = sorted(draw(st.sets(ms_time_near(base["receive_ts"]), min_size=2, max_size=2)))
    low, open_, close, high = sorted(draw(st.lists(PRICES, min_size=4, max_size=4)))
    if draw(st.booleans()):
        open_, close = close, open_
    return Kline(
        **base,
        interval=interval,
        start=start,
        end=end,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=draw(st.just(0.0) | SIZES),
        turnover=draw(AMOUNTS),
        confirmed=draw(st.booleans()),
    )


FUNDING_RATES = st.floats(min_value=-1.0, max_value=1.0)
TICKER_VALUES: dict[str, st.SearchStrategy[float]] = {
    "funding_rate": FUNDING_RATES,
    "price_24h_pcnt": st.floats(min_value=-1.0, max_value=1e4),
    "bid1_size": st.just(0.0) | SIZES,
    "ask1_size": st.just(0.0) | SIZES,
    "open_interest": AMOUNTS,
    "open_interest_value": AMOUNTS,
    "volume_24h": AMOUNTS,
    "turnover_24h": AMOUNTS,
}


@st.composite
def tickers(draw: st.DrawFn) -> Ticker:
    base = draw(bases(lambda s: f"tickers.{s}"))
    names = draw(st.sets(st.sampled_from(sorted(TICKER_FIELDS.values()))))
    fields: dict[str, float | int] = {}
    for name in sorted(names):
        if name == "next_funding_time":
            fields[name] = draw(ms_time_near(base["receive_ts"]))
        else:
            fields[name] = draw(TICKER_VALUES.get(name, PRICES))
    return Ticker(**base, fields=fields)


@st.composite
def fundings(draw: st.DrawFn) -> Funding:
    base = draw(bases(lambda s: f"fundingRate.{s}"))
    near = ms_time_near(base["receive_ts"])
    return Funding(
        **base,
        funding_rate=draw(FUNDING_RATES),
        next_funding_time=draw(st.none() | near),
        funding_rate_ts=draw(st.none() | near),
    )


EVENTS = st.one_of(books(), trades(), klines(), tickers(), fundings())


def _same(a: MarketEvent, b: MarketEvent) -> bool:
    """Equality that also tells -0.0 from 0.0 and int from float in ticker fields."""
    return a == b and type(a) is type(b) and repr(a) == repr(b)


@given(EVENTS)
def test_parse_inverts_event_to_envelope_exactly(event: MarketEvent) -> None:
    body = orjson.dumps(event_to_envelope(event))
    assert _same(one(body), event)


@given(trades())
def test_envelope_numbers_are_strings_and_ids_integers(event: Trade) -> None:
    payload = event_to_envelope(event)["payload"]
    assert isinstance(payload["p"], str) and isinstance(payload["v"], str)
    assert type(payload["T"]) is int
    assert "e" not in payload["p"].lower() and "e" not in payload["v"].lower()


# =========================================================================== files


def sample_events() -> list[MarketEvent]:
    snap = one(envelope_orderbook(service_received_at=T10 + 200_000))
    delta = one(
        envelope_orderbook(
            type="delta",
            u=18521289,
            bids=[("50000.10", "0")],
            asks=[("50000.30", "2")],
            timestamp=T10 + 133_000,
            received_at=T10 + 140_000,
            service_received_at=T10 + 210_000,
        )
    )
    return [snap, delta, trade(), one(CONTRACT_TICKER), one(CONTRACT_KLINE), one(CONTRACT_FUNDING)]


@pytest.mark.parametrize("name", ["rec.jsonl", "rec.jsonl.gz"])
def test_events_written_then_read_back_in_order(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    events = sample_events()
    assert write_recording(path, events) == len(events)
    assert list(iter_recording(path)) == events
    assert list(read_recording(str(path))) == events
    raw = path.read_bytes()
    if name.endswith(".gz"):
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    lines = raw.splitlines()
    assert len(lines) == len(events)
    assert [orjson.loads(line)["service_received_at"] for line in lines[:2]] == [
        "2025-01-27T10:00:00.200000",
        "2025-01-27T10:00:00.210000",
    ]


def test_iter_envelopes_returns_the_decoded_lines(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    first = envelope_trade(service_received_at=T10 + 1)
    second = bybit_trades([bybit_trade()])
    write_recording(path, [first, second])
    assert list(iter_envelopes(path)) == [first, second]


def test_mixed_envelopes_and_bare_frames_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    frame = bybit_trades(
        [bybit_trade(trade_id="a"), bybit_trade(trade_id="b", side="Sell")], ts=1672304486868
    )
    text = to_bytes(envelope_trade()) + b"\n\n" + to_bytes(frame) + b"\n   \n"
    path.write_bytes(text)
    events = list(iter_recording(path))
    assert [e.trade_id for e in events] == ["20f43950-d8dd-5b31-9112-a178eb6023af", "a", "b"]
    assert [e.receive_ts for e in events] == [T10 + 129_870, 1672304486868_000, 1672304486868_000]
    assert [e.gateway_ts for e in events] == [T10 + 129_870, None, None]


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                to_bytes(envelope_trade(trade_id="1")),
                b"{not json",
                to_bytes(envelope_trade(trade_id="3")),
                to_bytes(envelope_trade(trade_id="4", side="Hold")),
                to_bytes(envelope_trade(trade_id="5")),
            ]
        )
    )
    return path


def test_malformed_line_raises_with_its_line_number(tmp_path: Path) -> None:
    path = _bad_file(tmp_path)
    seen: list[str] = []
    with pytest.raises(RecordingError) as info:
        for event in iter_recording(path):
            seen.append(event.trade_id)
    assert seen == ["1"]
    error = info.value
    assert isinstance(error, MessageRejected)
    assert (error.path, error.line_no, error.reason) == (str(path), 2, RejectReason.BAD_JSON)
    assert error.cause.reason is RejectReason.BAD_JSON
    assert f"{path}:2:" in str(error)


def test_on_error_lets_the_caller_count_and_continue(tmp_path: Path) -> None:
    errors: list[RecordingError] = []
    events = list(iter_recording(_bad_file(tmp_path), on_error=errors.append))
    assert [e.trade_id for e in events] == ["1", "3", "5"]
    assert [(e.line_no, e.reason) for e in errors] == [
        (2, RejectReason.BAD_JSON),
        (4, RejectReason.BAD_SIDE),
    ]


def test_truncated_gzip_yields_the_complete_lines_then_reports_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    events = [trade(trade_id=str(i), seq=i) for i in range(2000)]
    write_recording(path, events)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    errors: list[RecordingError] = []
    read = list(iter_recording(path, on_error=errors.append))
    assert 0 < len(read) < len(events)
    assert read == events[: len(read)]
    assert len(errors) == 1
    assert errors[0].reason is RejectReason.BAD_JSON
    assert errors[0].line_no == len(read) + 1  # the first line that could not be read
    with pytest.raises(RecordingError):
        list(iter_recording(path))


def test_iter_envelopes_rejects_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(to_bytes(envelope_trade()) + b"\n[1, 2]\n")
    with pytest.raises(RecordingError) as info:
        list(iter_envelopes(path))
    assert (info.value.line_no, info.value.reason) == (2, RejectReason.NOT_AN_OBJECT)
    path.write_bytes(b"{oops\n")
    with pytest.raises(RecordingError) as info:
        list(iter_envelopes(path))
    assert (info.value.line_no, info.value.reason) == (1, RejectReason.BAD_JSON)


def test_writer_counts_lines_and_writes_events_and_envelopes(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl.gz"
    with RecordingWriter(path) as writer:
        writer.write_event(trade())
        writer.write_event(trade(), include_service_time=False)
        writer.write_envelope(envelope_orderbook())
        assert writer.lines == 3
    lines = list(iter_envelopes(path))
    assert ["service_received_at" in line for line in lines] == [True, False, False]
    events = list(iter_recording(path))
    assert [e.receive_ts for e in events] == [T10 + 131_000, T10 + 129_870, T10 + 131_452]


def test_empty_recording_yields_nothing(tmp_path: Path) -> None:
    for name in ("e.jsonl", "e.jsonl.gz"):
        path = tmp_path / name
        assert write_recording(path, []) == 0
        assert list(iter_recording(path)) == []
