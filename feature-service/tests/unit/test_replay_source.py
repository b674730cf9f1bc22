"""The embedded replay source: times shifted by whole minutes, warm-up candles first, then the
dense part paced by the (virtual) clock, looping forward in time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from feature_service.engine.clocks import AcceleratedClock
from feature_service.market.parsing import parse_message
from feature_service.market.recording import write_recording
from feature_service.market.timeutil import parse_iso_us
from feature_service.services.replay import MINUTE_US, ReplaySource, shift_envelope
from tests.fixtures.market_messages import (
    CONTRACT_FUNDING,
    CONTRACT_KLINE,
    CONTRACT_TRADE,
    envelope_trade,
)

QUEUES = {k: f"q.{k}" for k in ("orderbook", "trade", "kline", "ticker", "funding")}


def test_shift_moves_every_time_by_the_same_amount() -> None:
    shift = 3 * MINUTE_US
    for text in (CONTRACT_TRADE, CONTRACT_KLINE, CONTRACT_FUNDING):
        original = orjson.loads(text)
        shifted = shift_envelope(original, shift)
        (a,) = parse_message(original)
        (b,) = parse_message(shifted)
        assert b.exchange_ts - a.exchange_ts == shift
        assert b.receive_ts - a.receive_ts == shift
        for name in ("trade_time", "start", "end", "next_funding_time", "funding_rate_ts"):
            if hasattr(a, name):
                assert getattr(b, name) - getattr(a, name) == shift, name
        assert original == orjson.loads(text)  # the input is not modified


async def test_warm_up_first_then_paced_dense_part_then_loops(tmp_path: Path) -> None:
    kline = orjson.loads(CONTRACT_KLINE)  # received 10:01:00.004 — before the trades
    trades = [
        envelope_trade(
            trade_id=f"t{i}",
            timestamp=f"2025-01-27T10:05:0{i}.000000",
            received_at=f"2025-01-27T10:05:0{i}.100000",
        )
        for i in range(3)
    ]
    path = tmp_path / "rec.jsonl"
    write_recording(path, [kline, *trades])
    sent: list[tuple[str, dict]] = []

    async def publish(queue: str, body: bytes) -> None:
        sent.append((queue, orjson.loads(body)))

    source = ReplaySource(path, publish, QUEUES, loop=True)
    start = await source.prepare()
    assert start == parse_iso_us("2025-01-27T10:05:00.100000")
    shift = ReplaySource.aligned_shift(start, start + 90 * 1_000_000)
    assert shift == MINUTE_US
    clock = AcceleratedClock(1000.0, origin_us=start + shift)
    source.start(shift, clock)
    for _ in range(200):
        if len(sent) >= 7:
            break
        await asyncio.sleep(0.01)
    await source.stop()

    assert [q for q, _ in sent[:4]] == ["q.kline", "q.trade", "q.trade", "q.trade"]
    assert source.loops >= 1
    first_loop = [parse_iso_us(e["received_at"]) for _, e in sent[1:4]]
    second_loop = [parse_iso_us(e["received_at"]) for _, e in sent[4:7]]
    # The next loop is the same stream one (rounded-up) recording length later, in whole minutes.
    assert [b - a for a, b in zip(first_loop, second_loop, strict=True)] == [MINUTE_US] * 3
    assert all("service_received_at" not in e for _, e in sent)
