"""State as of T with the REST depth source (``depth_source=rest``): the REST snapshots are stored
in ``orderbook/snapshots`` next to the stream's, every second. A warm start or period rebuild must
restore both books: the stream book from its own checkpoint or snapshot (a REST snapshot is not
the stream's book) and the REST depth book from the REST snapshots before T."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_service.adapters.clients.bybit_rest import OrderbookSnapshot
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.market.events import BookDelta, MarketEvent, Trade
from feature_service.market.parsing import parse_message
from feature_service.market.recording import iter_recording
from feature_service.sample.generator import generate
from feature_service.services.depth_source import snapshot_envelope
from feature_service.services.importer import import_recording
from feature_service.services.state_asof import rebuild_period, state_as_of

SYMBOL = "BTCUSDT"
S = 1_000_000


def _rest_bodies(events: list[MarketEvent], d0: int, d1: int) -> tuple[list, list[bytes]]:
    """A REST poll every second of the dense part: 20 levels a side around the last trade."""
    trades = [e for e in events if isinstance(e, Trade)]
    out_events, bodies = [], []
    j = 0
    for n, t in enumerate(range(d0 + 500_000, d1, S)):
        while j + 1 < len(trades) and trades[j + 1].receive_ts < t:
            j += 1
        px = round(trades[j].price, 1)
        snap = OrderbookSnapshot(
            symbol=SYMBOL,
            bids=[[f"{px - 0.5 - i:.1f}", f"{1 + (n + i) % 7}.5"] for i in range(20)],
            asks=[[f"{px + 0.5 + i:.1f}", f"{1 + (n * 3 + i) % 5}.25"] for i in range(20)],
            ts_ms=t // 1000 - 20,
            u=1000 + n,
            seq=None,
            cts_ms=None,
        )
        body = snapshot_envelope(snap, 50, (t - 3_000) / 1000.0)
        out_events.append(parse_message(body, receive_ts=t)[0])
        bodies.append(body)
    return out_events, bodies


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[MarketEvent]]:
    tmp = tmp_path_factory.mktemp("restdepth")
    rec = tmp / "rec.jsonl.gz"
    generate(rec, seed=7, kline_hours=2, dense_minutes=14)
    events = list(iter_recording(rec))
    book = [e.receive_ts for e in events if isinstance(e, BookDelta)]
    root = tmp / "raw"
    import_recording(rec, root)  # with book checkpoints every 60 s, as live writes them
    rest, bodies = _rest_bodies(events, book[0], book[-1])
    RawWriterSync(root, first_seq=10**15).write_events(rest, bodies)
    return root, events


def _whole(root: Path, end_us: int) -> dict[tuple[int, int], FeatureVector]:
    engine = FeatureEngine()
    out: list[FeatureVector] = []
    for event in RawReader(root).iter_events(symbols=[SYMBOL]):
        out += engine.process(event)
    out += engine.advance_to(end_us - 1)
    return {(v.timestamp, v.interval_s): v for v in out}


@pytest.mark.timeout(900)
def test_state_as_of_restores_the_stream_book_and_the_rest_depth_book(store) -> None:
    root, events = store
    book = [e.receive_ts for e in events if isinstance(e, BookDelta)]
    t = book[0] + 12 * 60 * S + 250_000
    engine, report = state_as_of(root, [SYMBOL], t)
    # The stream book comes from its checkpoint, not from the REST poll stored next to it.
    assert report.book_from == {SYMBOL: "checkpoint"}
    state = engine.states[SYMBOL]
    assert state.book.usable and state.rest_depth is not None

    whole = _whole(root, events[-1].receive_ts + 1)
    a, b = t, t + 40 * S
    rows = rebuild_period(root, SYMBOL, a, b)
    assert [(v.timestamp, v.interval_s) for v in rows] == sorted(k for k in whole if a <= k[0] < b)
    depth_rows = 0
    for v in rows:
        w = whole[(v.timestamp, v.interval_s)]
        bad = {
            k: (v.features[k], w.features[k]) for k in v.features if v.features[k] != w.features[k]
        }
        assert not bad, (v.timestamp, bad)
        assert (v.null_reasons, v.depth_age_ms) == (w.null_reasons, w.depth_age_ms)
        depth_rows += (
            v.features["depth_bid_top5"] is not None and v.features["mid_price"] is not None
        )
    assert depth_rows == len(rows)


@pytest.mark.timeout(300)
def test_an_old_rest_snapshot_is_restored_too(store) -> None:
    """The REST source stopped long before T: live still holds its last snapshot (its depth
    features null ``depth_stale``), so state as of T holds it as well."""
    root, events = store
    rest = [
        e.receive_ts
        for e in RawReader(root).iter_events(["orderbook/snapshots"], [SYMBOL])
        if getattr(e, "feed", None) == "rest"
    ]
    t = events[-1].receive_ts + 20 * 60 * S
    engine, _ = state_as_of(root, [SYMBOL], t)
    rest_book = engine.states[SYMBOL].rest_depth
    assert rest_book is not None and rest_book.received_at == rest[-1]
    (first, *_) = engine.advance_to(t + S)
    assert first.null_reasons.get("depth_bid_top5") == "depth_stale"
