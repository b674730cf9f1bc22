"""``adapters/rawstore/seek.last_row_before``: the last stored row before T, found reading the
ordering columns newest file first, equals a brute-force scan of every stored row."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from feature_service.adapters.rawstore.layout import Kind
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.seek import last_row_before
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.market.parsing import parse_message
from tests.fixtures.events import body, snapshot, ticker

T0 = 1_737_972_000_000_000  # 2025-01-27T10:00:00Z
S = 1_000_000
SYMBOL = "BTCUSDT"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tickers in several files that overlap in time (two writers), every other one without a
    ``next_funding_time``."""
    root = tmp_path_factory.mktemp("seek")
    rng = random.Random(4)
    events = [ticker(T0 + i * 100_000 + rng.randrange(50_000), i) for i in range(600)]
    for n, chunk in enumerate((events[:250], events[200:450:2], events[450:], events[201:450:2])):
        chunk = sorted(chunk, key=lambda e: e.receive_ts)
        RawWriterSync(root, first_seq=n * 10_000).write_events(chunk, [body(e) for e in chunk])
    return root


def _brute(root: Path, kind: Kind, before: int, keep) -> tuple[int, int] | None:
    rows = [
        (r["receive_ts"], r["arrival_seq"], r["raw"])
        for r in RawReader(root, dedup_window_us=1).iter_rows([kind], [SYMBOL])
        if r["receive_ts"] < before and keep(r["raw"])
    ]
    if not rows:
        return None
    ts, _, raw = max(rows)
    return ts, orjson.loads(raw)["event_id"]


@pytest.mark.parametrize("offset_s", [0.05, 3, 19.99, 24.0, 44.5, 59.9, 120])
def test_last_row_before_equals_a_full_scan(store: Path, offset_s: float) -> None:
    before = T0 + int(offset_s * S)
    for not_null, keep in ((None, lambda raw: True), ("next_funding_time", _has_funding_time)):
        found = last_row_before(store, Kind.TICKER, SYMBOL, before, not_null=not_null)
        expected = _brute(store, Kind.TICKER, before, keep)
        got = None if found is None else (found[0], orjson.loads(found[1])["event_id"])
        assert got == expected, (offset_s, not_null)
        if found is not None:
            event = parse_message(found[1], receive_ts=found[0])[found[2]]
            assert event.receive_ts == found[0] < before


def _has_funding_time(raw: str) -> bool:
    return "nextFundingTime" in raw


def test_nothing_before_the_first_row(store: Path) -> None:
    assert last_row_before(store, Kind.TICKER, SYMBOL, T0) is None
    assert last_row_before(store, Kind.TRADES, SYMBOL, T0 + 60 * S) is None


def test_raw_filter_skips_or_keeps_rows(tmp_path: Path) -> None:
    """REST depth snapshots (``"feed"`` in the body) beside the stream's: each search finds its
    own, whichever came last."""
    stream = [snapshot(T0 + i * S, i) for i in range(3)]
    raws = [body(e) for e in stream]
    rest_event = snapshot(T0 + 2 * S + 500_000, 7)
    rest_body = orjson.loads(body(rest_event))
    rest_body["feed"] = "rest"
    rest_raw = orjson.dumps(rest_body)
    rest = parse_message(rest_raw, receive_ts=rest_event.receive_ts)[0]
    RawWriterSync(tmp_path, first_seq=0).write_events([*stream, rest], [*raws, rest_raw])
    pattern = r'"feed"\s*:'
    before = T0 + 10 * S
    stream_row = last_row_before(
        tmp_path, Kind.ORDERBOOK_SNAPSHOTS, SYMBOL, before, raw=(pattern, False)
    )
    rest_row = last_row_before(
        tmp_path, Kind.ORDERBOOK_SNAPSHOTS, SYMBOL, before, raw=(pattern, True)
    )
    assert stream_row is not None and stream_row[0] == stream[-1].receive_ts
    assert rest_row is not None and rest_row[0] == rest.receive_ts
    assert last_row_before(tmp_path, Kind.ORDERBOOK_SNAPSHOTS, SYMBOL, before)[0] == rest.receive_ts
