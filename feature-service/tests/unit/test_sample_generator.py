"""The sample recording generator: exact ws-gateway format, determinism, and a market that
replays cleanly (book never crossed, trades at the touch, candles equal to the trades)."""

from __future__ import annotations

import bisect
import gzip
import hashlib
import itertools
import json
import statistics
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feature_service.sample import generator as gen
from feature_service.sample.generator import (
    DEFAULT_START,
    GenerationSummary,
    default_sample_path,
    generate,
    main,
)

ENVELOPE_KEYS = [
    "event_id",
    "event_type",
    "topic",
    "timestamp",
    "received_at",
    "payload",
    "trace_id",
    "service_received_at",
]
TOPIC_OF = {
    "orderbook": "orderbook.50.BTCUSDT",
    "trade": "publicTrade.BTCUSDT",
    "kline": "kline.1.BTCUSDT",
    "ticker": "tickers.BTCUSDT",
    "funding": "fundingRate.BTCUSDT",
}
LINEAR_TICKER_KEYS = {
    "symbol",
    "tickDirection",
    "price24hPcnt",
    "lastPrice",
    "prevPrice24h",
    "highPrice24h",
    "lowPrice24h",
    "prevPrice1h",
    "markPrice",
    "indexPrice",
    "openInterest",
    "openInterestValue",
    "turnover24h",
    "volume24h",
    "fundingIntervalHour",
    "fundingCap",
    "nextFundingTime",
    "fundingRate",
    "bid1Price",
    "bid1Size",
    "ask1Price",
    "ask1Size",
    "topic",
}
START_MS = 1_737_936_000_000  # 2025-01-27T00:00:00Z
DENSE_START_MS = START_MS + 25 * 3_600_000
DENSE_END_MS = DENSE_START_MS + 20 * 60_000
EIGHT_HOURS_MS = 8 * 3_600_000
SMALL = {"kline_hours": 1, "dense_minutes": 2}
EPOCH = datetime(1970, 1, 1)


def iso_us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


def read_lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def by_type(lines: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [d for d in lines if d["event_type"] == event_type]


def trades_in_match_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((d["payload"] for d in by_type(lines, "trade")), key=lambda p: (p["T"], p["seq"]))


def ticks(price: str) -> int:
    """Price string -> integer ticks of 0.1, refusing anything off the tick grid."""
    value = Decimal(price) * 10
    assert value == value.to_integral_value(), price
    return int(value)


@dataclass
class Replay:
    """The orderbook stream replayed with a naive dict model, one row per book message."""

    ts_ms: list[int]  # envelope timestamp (exchange time)
    best_bid: list[int]  # ticks
    best_ask: list[int]
    bid_size: list[str]
    ask_size: list[str]
    spread_ticks: Counter[int]
    mean_size_by_rank: list[float]  # over both sides, sampled every 100 messages
    deletes: int
    inserts: int

    def at(self, t_ms: int) -> int:
        """Index of the book state in force at exchange time ``t_ms``."""
        return bisect.bisect_right(self.ts_ms, t_ms) - 1


def replay_book(book_lines: list[dict[str, Any]]) -> Replay:
    bids: dict[int, Decimal] = {}
    asks: dict[int, Decimal] = {}
    out = Replay([], [], [], [], [], Counter(), [0.0] * 50, 0, 0)
    samples = 0
    for i, d in enumerate(book_lines):
        p = d["payload"]
        if p["type"] == "snapshot":
            bids, asks = {}, {}
        for side, levels in ((bids, p["b"]), (asks, p["a"])):
            for price, size in levels:
                key, qty = ticks(price), Decimal(size)
                if qty == 0:
                    assert p["type"] == "delta"
                    assert key in side, f"delete of a missing level in u={p['u']}"
                    del side[key]
                    out.deletes += 1
                else:
                    if key not in side and p["type"] == "delta":
                        out.inserts += 1
                    side[key] = qty
        assert len(bids) == 50 and len(asks) == 50, f"depth {len(bids)}/{len(asks)} u={p['u']}"
        bb, ba = max(bids), min(asks)
        assert bb < ba, f"crossed book at u={p['u']}"
        out.ts_ms.append(iso_us(d["timestamp"]) // 1_000)
        out.best_bid.append(bb)
        out.best_ask.append(ba)
        out.bid_size.append(str(bids[bb]))
        out.ask_size.append(str(asks[ba]))
        out.spread_ticks[ba - bb] += 1
        if i % 100 == 0:
            samples += 1
            ranked_b = [bids[k] for k in sorted(bids, reverse=True)]
            ranked_a = [asks[k] for k in sorted(asks)]
            for r in range(50):
                out.mean_size_by_rank[r] += float(ranked_b[r] + ranked_a[r]) / 2
    out.mean_size_by_rank = [s / samples for s in out.mean_size_by_rank]
    return out


@pytest.fixture(scope="module")
def full(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[GenerationSummary, list[dict[str, Any]]]:
    path = tmp_path_factory.mktemp("sample") / "full.jsonl.gz"
    summary = generate(path)
    return summary, read_lines(path)


@pytest.fixture(scope="module")
def lines(full: tuple[GenerationSummary, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return full[1]


@pytest.fixture(scope="module")
def replay(lines: list[dict[str, Any]]) -> Replay:
    return replay_book(by_type(lines, "orderbook"))


# --- determinism and the file itself ---------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    a = generate(tmp_path / "a.jsonl.gz", seed=7, **SMALL)
    b = generate(tmp_path / "b.jsonl.gz", seed=7, **SMALL)
    c = generate(tmp_path / "c.jsonl.gz", seed=8, **SMALL)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    assert a.counts == b.counts


def test_gzip_header_carries_no_mtime_and_no_name(tmp_path: Path) -> None:
    raw = generate(tmp_path / "x.jsonl.gz", seed=1, **SMALL).path.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08 == 0  # FNAME flag
    assert raw[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_bundled_file_is_the_default_generation(
    full: tuple[GenerationSummary, list[dict[str, Any]]],
) -> None:
    bundled = default_sample_path()
    assert bundled.name == "btcusdt-sample.jsonl.gz"
    assert bundled.is_file(), "run: python -m feature_service.sample.generator"
    assert bundled.stat().st_size < 15_000_000
    # Compare the decompressed text: zlib builds may compress identical input differently.
    with gzip.open(bundled, "rb") as a, gzip.open(full[0].path, "rb") as b:
        assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()


def test_summary_matches_the_file(full: tuple[GenerationSummary, list[dict[str, Any]]]) -> None:
    summary, lines = full
    assert summary.lines == len(lines)
    assert summary.counts == dict(Counter(d["event_type"] for d in lines))
    assert summary.size_bytes == summary.path.stat().st_size
    assert summary.first_receive_us == iso_us(lines[0]["service_received_at"])
    assert summary.last_receive_us == iso_us(lines[-1]["service_received_at"])
    assert summary.dense_start_us == DENSE_START_MS * 1_000
    assert summary.dense_end_us == DENSE_END_MS * 1_000
    assert summary.book_snapshots == 2
    assert summary.confirmed_klines == 25 * 60 + 20
    assert "lines=" in summary.describe()


def test_generation_of_a_small_sample_has_the_expected_book_rate(tmp_path: Path) -> None:
    summary = generate(tmp_path / "s.jsonl.gz", **SMALL)
    assert 0.95 * 2 * 60 * 50 < summary.counts["orderbook"] <= 2 * 60 * 50


def test_rejects_a_start_off_the_minute_and_empty_parts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole minute"):
        generate(tmp_path / "x.gz", start=DEFAULT_START + timedelta(seconds=1), **SMALL)
    with pytest.raises(ValueError):
        generate(tmp_path / "x.gz", kline_hours=0, dense_minutes=1)
    with pytest.raises(ValueError):
        generate(tmp_path / "x.gz", kline_hours=1, dense_minutes=0)


def test_main_writes_the_requested_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl.gz"
    args = ["--out", str(out), "--seed", "5", "--kline-hours", "1", "--dense-minutes", "1"]
    assert main(args) == 0
    assert "seed=5" in capsys.readouterr().out
    first = read_lines(out)[0]
    assert first["event_type"] == "kline"
    assert first["payload"]["start"] == START_MS


def test_formatting_helpers() -> None:
    assert gen._iso(0) == "1970-01-01T00:00:00"
    assert gen._iso(1_737_972_000_123_000) == "2025-01-27T10:00:00.123000"
    assert gen._iso(1_737_972_000_000_001) == "2025-01-27T10:00:00.000001"
    assert gen._price(1_000_001) == "100000.10"
    assert gen._kline_price(1_000_000) == "100000.0"
    assert gen._size(1) == "0.001"
    assert gen._size(12_345) == "12.345"
    assert gen._turnover(123_456_789) == "12345.6789"
    assert gen._cents(9_979_524) == "99795.24"
    assert gen._rate(10_000) == "0.0001"
    assert gen._rate(-1_234) == "-0.00001234"
    assert gen._rate(0) == "0.0"
    assert gen._pct(-0.00001) == "0.0000"


# --- envelope format and ordering ------------------------------------------------------------


def test_every_line_is_a_ws_gateway_envelope(lines: list[dict[str, Any]]) -> None:
    ids = set()
    for d in lines:
        assert list(d) == ENVELOPE_KEYS
        assert d["topic"] == TOPIC_OF[d["event_type"]]
        assert d["payload"]["topic"] == d["topic"]
        for key in ("event_id", "trace_id"):
            assert uuid.UUID(d[key]).version == 4
            assert str(uuid.UUID(d[key])) == d[key]
        ids.add(d["event_id"])
        for key in ("timestamp", "received_at", "service_received_at"):
            parsed = datetime.fromisoformat(d[key])
            assert parsed.tzinfo is None
            assert parsed.isoformat() == d[key]  # Python isoformat: no ".000000"
        assert iso_us(d["timestamp"]) % 1_000 == 0  # exchange time is whole milliseconds
        assert iso_us(d["timestamp"]) < iso_us(d["received_at"])
        assert iso_us(d["received_at"]) < iso_us(d["service_received_at"])
    assert len(ids) == len(lines)


def test_lines_are_in_service_receive_order(lines: list[dict[str, Any]]) -> None:
    srv = [iso_us(d["service_received_at"]) for d in lines]
    assert all(a <= b for a, b in itertools.pairwise(srv))


def test_each_topic_keeps_its_own_order_on_every_clock(lines: list[dict[str, Any]]) -> None:
    for event_type in TOPIC_OF:
        rows = by_type(lines, event_type)
        for key in ("timestamp", "received_at"):
            times = [iso_us(d[key]) for d in rows]
            assert all(a <= b for a, b in itertools.pairwise(times)), (event_type, key)


def test_latencies_are_a_few_milliseconds(lines: list[dict[str, Any]]) -> None:
    gw = [iso_us(d["received_at"]) - iso_us(d["timestamp"]) for d in lines]
    hop = [iso_us(d["service_received_at"]) - iso_us(d["received_at"]) for d in lines]
    assert 2_000 <= statistics.median(gw) <= 10_000
    assert max(gw) <= 60_000
    assert 300 <= statistics.median(hop) <= 3_000


def test_every_line_parses_into_one_event(lines: list[dict[str, Any]]) -> None:
    from feature_service.market.events import event_type_of
    from feature_service.market.parsing import parse_message

    for d in lines:
        events = parse_message(d, receive_ts=None)
        assert len(events) == 1
        event = events[0]
        assert event.symbol == "BTCUSDT"
        assert event_type_of(event).value == d["event_type"]
        assert event.receive_ts == iso_us(d["service_received_at"])
        assert event.gateway_ts == iso_us(d["received_at"])
        assert event.exchange_ts == iso_us(d["timestamp"])


# --- order book ------------------------------------------------------------------------------


def test_book_starts_with_a_full_snapshot(lines: list[dict[str, Any]]) -> None:
    first = by_type(lines, "orderbook")[0]["payload"]
    assert list(first) == ["s", "b", "a", "u", "seq", "topic", "type"]
    assert first["type"] == "snapshot"
    assert len(first["b"]) == 50 and len(first["a"]) == 50
    bid_prices = [ticks(p) for p, _ in first["b"]]
    ask_prices = [ticks(p) for p, _ in first["a"]]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert 90_000 * 10 < bid_prices[0] < 110_000 * 10
    for price, size in first["b"] + first["a"]:
        assert len(price.split(".")[1]) == 2 and len(size.split(".")[1]) == 3


def test_deltas_have_contiguous_u_and_increasing_seq(lines: list[dict[str, Any]]) -> None:
    book = [d["payload"] for d in by_type(lines, "orderbook")]
    assert all(isinstance(p["u"], int) and isinstance(p["seq"], int) for p in book)
    for prev, cur in itertools.pairwise(book):
        assert cur["u"] == prev["u"] + 1
        assert cur["seq"] > prev["seq"]


def test_one_resend_snapshot_mid_stream(lines: list[dict[str, Any]]) -> None:
    book = [d["payload"] for d in by_type(lines, "orderbook")]
    snapshots = [i for i, p in enumerate(book) if p["type"] == "snapshot"]
    assert snapshots[0] == 0 and len(snapshots) == 2
    assert len(book) * 0.3 < snapshots[1] < len(book) * 0.7
    resend = book[snapshots[1]]
    assert len(resend["b"]) == 50 and len(resend["a"]) == 50


def test_naive_replay_never_crosses_and_holds_50_levels(replay: Replay) -> None:
    # replay_book asserts depth and crossing on every message; here the deltas must really
    # exercise deletes and inserts.
    n = len(replay.ts_ms)
    assert 0.95 * 20 * 60 * 50 < n <= 20 * 60 * 50
    assert replay.deletes > n and replay.inserts > n


def test_deltas_change_a_few_levels(lines: list[dict[str, Any]]) -> None:
    sizes = [
        len(p["b"]) + len(p["a"])
        for p in (d["payload"] for d in by_type(lines, "orderbook"))
        if p["type"] == "delta"
    ]
    assert min(sizes) >= 1
    assert 3 <= statistics.median(sizes) <= 30
    zeros = [s for d in by_type(lines, "orderbook") for _, s in d["payload"]["b"] if s == "0"]
    assert zeros  # deletes are spelled "0", as Bybit does


def test_spread_is_mostly_one_tick_sometimes_wider(replay: Replay) -> None:
    total = sum(replay.spread_ticks.values())
    assert replay.spread_ticks[1] / total > 0.85
    assert sum(v for k, v in replay.spread_ticks.items() if k > 1) / total > 0.01
    assert max(replay.spread_ticks) <= 10


def test_depth_decays_away_from_the_touch(replay: Replay) -> None:
    near = statistics.mean(replay.mean_size_by_rank[:5])
    far = statistics.mean(replay.mean_size_by_rank[40:])
    assert near > 2 * far
    assert 0.5 < near < 10  # BTC


def test_level_sizes_are_realistic(lines: list[dict[str, Any]]) -> None:
    sizes = [
        Decimal(s)
        for d in by_type(lines, "orderbook")[:2_000]
        for _, s in d["payload"]["b"] + d["payload"]["a"]
        if s != "0"
    ]
    assert min(sizes) >= Decimal("0.001") and max(sizes) <= 50


def test_book_rate_is_one_delta_per_20ms(lines: list[dict[str, Any]]) -> None:
    book = by_type(lines, "orderbook")
    ts = [iso_us(d["timestamp"]) // 1_000 for d in book]
    gaps = np.diff(ts)
    assert gaps.min() >= 15 and np.median(gaps) == 20 and gaps.max() <= 200
    assert 45 <= len(book) / ((DENSE_END_MS - DENSE_START_MS) / 1_000) <= 51


# --- trades --------------------------------------------------------------------------------


def test_trade_payload_format(lines: list[dict[str, Any]]) -> None:
    trades = by_type(lines, "trade")
    ticks_seen = set()
    for d in trades:
        p = d["payload"]
        assert list(p) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq", "topic"]
        assert isinstance(p["T"], int) and isinstance(p["seq"], int)
        assert p["S"] in ("Buy", "Sell") and p["BT"] is False and p["s"] == "BTCUSDT"
        assert Decimal(p["v"]) >= Decimal("0.001") and len(p["v"].split(".")[1]) == 3
        ticks(p["p"])
        assert uuid.UUID(p["i"]).version == 4
        assert DENSE_START_MS <= p["T"] < DENSE_END_MS
        assert iso_us(d["timestamp"]) // 1_000 - p["T"] in (0, 1, 2)
        ticks_seen.add(p["L"])
    assert ticks_seen == {"PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"}
    assert len({d["payload"]["i"] for d in trades}) == len(trades)


def test_tick_direction_follows_the_price(lines: list[dict[str, Any]]) -> None:
    trades = trades_in_match_order(lines)
    for prev, cur in itertools.pairwise(trades):
        a, b = ticks(prev["p"]), ticks(cur["p"])
        expected = {True: "PlusTick", False: "MinusTick"}[b > a] if a != b else None
        if expected:
            assert cur["L"] == expected
        else:
            assert cur["L"].startswith("Zero")


def test_trades_hit_the_touch(lines: list[dict[str, Any]], replay: Replay) -> None:
    for d in by_type(lines, "trade"):
        p = d["payload"]
        k = replay.at(p["T"])
        assert k >= 0
        touch = replay.best_ask[k] if p["S"] == "Buy" else replay.best_bid[k]
        assert ticks(p["p"]) == touch, p


def test_trade_rate_is_clustered_around_a_realistic_mean(lines: list[dict[str, Any]]) -> None:
    per_second = Counter(
        (d["payload"]["T"] - DENSE_START_MS) // 1_000 for d in by_type(lines, "trade")
    )
    counts = np.array([per_second.get(s, 0) for s in range(20 * 60)])
    assert 5 <= counts.mean() <= 40
    assert counts.var() / counts.mean() > 2  # overdispersed: bursts, not a plain Poisson
    assert counts.max() >= 30
    # Every 3 s window has trades on both sides, so 3 s order-flow features are defined.
    sells = Counter(
        (d["payload"]["T"] - DENSE_START_MS) // 1_000
        for d in by_type(lines, "trade")
        if d["payload"]["S"] == "Sell"
    )
    assert all(sum(sells.get(s - j, 0) for j in range(3)) > 0 for s in range(2, 20 * 60))


def test_trade_sizes_are_lognormal_in_lots(lines: list[dict[str, Any]]) -> None:
    sizes = np.array([float(d["payload"]["v"]) for d in by_type(lines, "trade")])
    assert sizes.min() == pytest.approx(0.001)
    assert 1.0 <= sizes.max() <= 10.0
    assert 0.005 <= float(np.median(sizes)) <= 0.05
    assert sizes.mean() > 2 * float(np.median(sizes))  # heavy right tail


def test_fills_of_one_order_share_time_side_and_seq(lines: list[dict[str, Any]]) -> None:
    frames: dict[str, list[dict[str, Any]]] = {}
    for d in by_type(lines, "trade"):
        frames.setdefault(d["trace_id"], []).append(d["payload"])
    multi = [f for f in frames.values() if len(f) > 1]
    assert len(multi) > 1_000
    for fills in multi:
        assert len({(p["T"], p["S"], p["seq"]) for p in fills}) == 1


def test_trade_side_leans_with_the_price_move(lines: list[dict[str, Any]], replay: Replay) -> None:
    signed = Counter()
    for d in by_type(lines, "trade"):
        p = d["payload"]
        signed[(p["T"] - DENSE_START_MS) // 1_000] += float(p["v"]) * (1 if p["S"] == "Buy" else -1)

    def mid(t_ms: int) -> float:
        k = replay.at(t_ms)
        return (replay.best_bid[k] + replay.best_ask[k]) / 2

    seconds = range(1, 20 * 60 - 1)
    moves = [
        mid(DENSE_START_MS + (s + 1) * 1_000) - mid(DENSE_START_MS + s * 1_000) for s in seconds
    ]
    flows = [signed.get(s, 0.0) for s in seconds]
    assert np.corrcoef(flows, moves)[0, 1] > 0.15


def test_mid_moves_like_btc(replay: Replay) -> None:
    mids = [(replay.best_bid[k] + replay.best_ask[k]) / 20 for k in range(0, len(replay.ts_ms), 50)]
    moves = np.diff(mids)
    assert 0.5 < moves.std() < 10  # USDT per second
    assert min(mids) > 90_000 and max(mids) < 110_000
    # Volatility clusters: absolute moves are autocorrelated over a few seconds.
    a = np.abs(moves)
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.05


# --- klines --------------------------------------------------------------------------------


def test_kline_payload_format(lines: list[dict[str, Any]]) -> None:
    for d in by_type(lines, "kline"):
        p = d["payload"]
        assert list(p) == [
            "start",
            "end",
            "interval",
            "open",
            "close",
            "high",
            "low",
            "volume",
            "turnover",
            "confirm",
            "timestamp",
            "topic",
        ]
        assert "symbol" not in p and "s" not in p
        assert p["interval"] == "1" and isinstance(p["confirm"], bool)
        assert all(isinstance(p[k], int) for k in ("start", "end", "timestamp"))
        assert p["end"] == p["start"] + 59_999 and p["start"] % 60_000 == 0
        o, c, h, lo = (ticks(p[k]) for k in ("open", "close", "high", "low"))
        assert lo <= min(o, c) <= max(o, c) <= h
        assert Decimal(p["volume"]) >= 0 and Decimal(p["turnover"]) >= 0
        assert p["timestamp"] == iso_us(d["timestamp"]) // 1_000


def test_one_confirmed_kline_per_minute_and_a_warm_history(lines: list[dict[str, Any]]) -> None:
    confirmed = [d for d in by_type(lines, "kline") if d["payload"]["confirm"]]
    starts = [d["payload"]["start"] for d in confirmed]
    assert starts == [START_MS + i * 60_000 for i in range(25 * 60 + 20)]
    # Known before the first book message: 24 h relative volume is warm from the start.
    before_dense = [
        d for d in confirmed if iso_us(d["service_received_at"]) < DENSE_START_MS * 1_000
    ]
    assert len(before_dense) >= 1_440
    for d in confirmed:
        late_ms = (iso_us(d["received_at"]) - d["payload"]["end"] * 1_000) / 1_000
        assert 5 <= late_ms <= 50
        assert iso_us(d["service_received_at"]) - iso_us(d["received_at"]) < 20_000


def test_history_candles_look_like_btc(lines: list[dict[str, Any]]) -> None:
    hist = [d["payload"] for d in by_type(lines, "kline")][: 25 * 60]
    closes = np.array([float(p["close"]) for p in hist])
    volumes = np.array([float(p["volume"]) for p in hist])
    returns = np.diff(np.log(closes))
    assert 5e-5 < returns.std() < 2e-3
    assert closes.min() > 90_000 and closes.max() < 110_000
    assert 5 < volumes.mean() < 500 and volumes.std() > 0
    for prev, cur in itertools.pairwise(hist):
        assert cur["open"] == prev["close"]


def test_dense_candles_equal_the_trades(lines: list[dict[str, Any]]) -> None:
    trades = sorted(
        (d["payload"] for d in by_type(lines, "trade")), key=lambda p: (p["T"], p["seq"])
    )
    klines = [
        d["payload"] for d in by_type(lines, "kline") if d["payload"]["start"] >= DENSE_START_MS
    ]
    confirmed = [k for k in klines if k["confirm"]]
    assert len(confirmed) == 20
    for k in confirmed:
        fills = [t for t in trades if k["start"] <= t["T"] <= k["end"]]
        prices = [Decimal(t["p"]) for t in fills]
        assert Decimal(k["open"]) == prices[0] and Decimal(k["close"]) == prices[-1]
        assert Decimal(k["high"]) == max(prices) and Decimal(k["low"]) == min(prices)
        assert Decimal(k["volume"]) == sum(Decimal(t["v"]) for t in fills)
        assert Decimal(k["turnover"]) == sum(Decimal(t["v"]) * Decimal(t["p"]) for t in fills)
    for k in (k for k in klines if not k["confirm"]):
        fills = [t for t in trades if k["start"] <= t["T"] <= k["timestamp"]]
        assert Decimal(k["volume"]) == sum(Decimal(t["v"]) for t in fills)
        assert Decimal(k["close"]) == Decimal(fills[-1]["p"])


def test_unconfirmed_klines_every_few_seconds(lines: list[dict[str, Any]]) -> None:
    updates = [d["payload"] for d in by_type(lines, "kline") if not d["payload"]["confirm"]]
    per_minute = Counter(p["start"] for p in updates)
    assert sorted(per_minute) == [DENSE_START_MS + i * 60_000 for i in range(20)]
    assert all(10 <= n <= 60 for n in per_minute.values())
    assert all(DENSE_START_MS <= p["timestamp"] <= p["end"] for p in updates)


# --- tickers and funding -------------------------------------------------------------------


def test_ticker_snapshot_then_deltas_of_changed_keys(lines: list[dict[str, Any]]) -> None:
    tickers = [d["payload"] for d in by_type(lines, "ticker")]
    assert set(tickers[0]) >= LINEAR_TICKER_KEYS
    assert "type" not in tickers[0]  # ws-gateway drops the frame type for tickers
    state: dict[str, str] = {}
    for p in tickers:
        assert p["symbol"] == "BTCUSDT"
        changed = {k: v for k, v in p.items() if k not in ("symbol", "topic")}
        assert changed, "a delta with nothing in it"
        assert all(state.get(k) != v for k, v in changed.items()), "unchanged key resent"
        state.update(changed)
    assert 9 <= len(tickers) / (20 * 60) <= 10


def test_ticker_agrees_with_book_trades_and_funding(
    lines: list[dict[str, Any]], replay: Replay
) -> None:
    trades = sorted(
        (d["payload"] for d in by_type(lines, "trade")), key=lambda p: (p["T"], p["seq"])
    )
    trade_t = [t["T"] for t in trades]
    state: dict[str, str] = {}
    for d in by_type(lines, "ticker"):
        state.update(d["payload"])
        t = iso_us(d["timestamp"]) // 1_000
        k = replay.at(t)
        assert ticks(state["bid1Price"]) == replay.best_bid[k]
        assert ticks(state["ask1Price"]) == replay.best_ask[k]
        assert Decimal(state["bid1Size"]) == Decimal(replay.bid_size[k])
        assert Decimal(state["ask1Size"]) == Decimal(replay.ask_size[k])
        e = bisect.bisect_right(trade_t, t) - 1
        if e >= 0:
            assert state["lastPrice"] == trades[e]["p"]
        assert int(state["nextFundingTime"]) % EIGHT_HOURS_MS == 0
        assert 0 < int(state["nextFundingTime"]) - t <= EIGHT_HOURS_MS
        assert Decimal(state["lowPrice24h"]) <= Decimal(state["lastPrice"])
        assert Decimal(state["lastPrice"]) <= Decimal(state["highPrice24h"])
        mid = Decimal(replay.best_bid[k] + replay.best_ask[k]) / 20
        assert abs(Decimal(state["markPrice"]) - mid) < 30
        assert abs(Decimal(state["indexPrice"]) - mid) < 30


def test_ticker_24h_volume_is_the_last_day_of_candles(lines: list[dict[str, Any]]) -> None:
    confirmed = [d["payload"] for d in by_type(lines, "kline") if d["payload"]["confirm"]]
    state: dict[str, str] = {}
    for d in by_type(lines, "ticker"):
        state.update(d["payload"])
        t = iso_us(d["timestamp"]) // 1_000
        if t % 60_000 > 1_000 or t > DENSE_START_MS + 5 * 60_000:
            continue
        minute = (t - START_MS) // 60_000  # index of the current candle
        whole = sum(Decimal(k["volume"]) for k in confirmed[minute - 1_439 : minute])
        # Plus the current minute's fills so far (at most one second of them here).
        assert whole <= Decimal(state["volume24h"]) <= whole + 20


def test_funding_messages_one_per_minute(lines: list[dict[str, Any]]) -> None:
    funding = by_type(lines, "funding")
    assert len(funding) == 20
    for i, d in enumerate(funding):
        p = d["payload"]
        assert list(p) == [
            "symbol",
            "fundingRate",
            "fundingRateTimestamp",
            "nextFundingTime",
            "topic",
        ]
        t = iso_us(d["timestamp"]) // 1_000
        assert 0 <= t - (DENSE_START_MS + i * 60_000) < 1_000
        nxt = int(p["nextFundingTime"])
        assert nxt % EIGHT_HOURS_MS == 0 and 0 < nxt - t <= EIGHT_HOURS_MS
        assert int(p["fundingRateTimestamp"]) == nxt - EIGHT_HOURS_MS
        assert abs(Decimal(p["fundingRate"])) < Decimal("0.001")
    # The ticker carries the same predicted rate once it is published.
    state: dict[str, str] = {}
    rate_at = {iso_us(d["timestamp"]) // 60_000_000: d["payload"]["fundingRate"] for d in funding}
    for d in by_type(lines, "ticker"):
        state.update(d["payload"])
        minute = iso_us(d["timestamp"]) // 60_000_000
        assert state["fundingRate"] == rate_at[minute]
