"""Typed-column replay (``adapters/rawstore/typed.py``): the events the bulk replays build from
the typed columns equal, row for row and key for key, the events ``raw`` parses to."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from feature_service.adapters.rawstore.layout import Kind, list_days, list_parts
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.market.events import BookDelta, BookSnapshot
from feature_service.market.parsing import parse_message
from feature_service.sample.generator import generate
from feature_service.services.importer import import_recording
from tests.fixtures.market_messages import envelope_orderbook

SYMBOL = "BTCUSDT"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("typed")
    rec = tmp / "rec.jsonl.gz"
    generate(rec, seed=11, kline_hours=2, dense_minutes=2)
    root = tmp / "raw"
    import_recording(rec, root)
    # REST depth rows (``"feed": "rest"``): the typed columns cannot say so, raw must decide.
    bodies = []
    for i, kind in enumerate(("snapshot", "delta")):
        body = envelope_orderbook(
            type=kind,
            depth=50,
            u=900 + i,
            bids=(("50000.1", "2"),),
            asks=(("50000.5", "1"),),
            timestamp="2025-01-27T10:00:00.100000",
            received_at="2025-01-27T10:00:00.150000",
            event_id=f"rest-{i}",
        )
        body["feed"] = "rest"
        bodies.append(orjson.dumps(body))
    events = [
        parse_message(b, receive_ts=1_737_972_000_200_000 + i)[0] for i, b in enumerate(bodies)
    ]
    RawWriterSync(root, first_seq=10**12).write_events(events, bodies)
    return root


def _both(root: Path, kinds=None):
    parsed = list(RawReader(root).iter_keyed_events(kinds, [SYMBOL]))
    typed = list(RawReader(root, typed=True).iter_keyed_events(kinds, [SYMBOL]))
    return parsed, typed


def test_typed_replay_equals_parsed_replay_for_every_row(store: Path) -> None:
    parsed, typed = _both(store)
    kinds = {type(e).__name__ for _, e in parsed}
    assert {"BookDelta", "BookSnapshot", "Trade", "Ticker", "Kline"} <= kinds
    assert len(typed) == len(parsed) > 5_000
    mismatched = [i for i, (a, b) in enumerate(zip(parsed, typed, strict=True)) if a != b]
    assert mismatched == []


def test_rest_feed_rows_keep_their_feed(store: Path) -> None:
    _, typed = _both(store, [Kind.ORDERBOOK_SNAPSHOTS, Kind.ORDERBOOK_DELTAS])
    rest = [e for _, e in typed if isinstance(e, BookSnapshot | BookDelta) and e.feed == "rest"]
    assert [(type(e).__name__, e.update_id) for e in rest] == [
        ("BookSnapshot", 900),
        ("BookDelta", 901),
    ]


def test_time_range_and_files_without_typed_columns(store: Path, tmp_path: Path) -> None:
    """A range starting mid-file gives the same rows; a file lacking the typed columns (an older
    or foreign writer) is parsed from ``raw`` instead."""
    parsed = [e for _, e in RawReader(store).iter_keyed_events([Kind.TRADES], [SYMBOL])]
    a, b = parsed[len(parsed) // 3].receive_ts, parsed[2 * len(parsed) // 3].receive_ts
    typed = list(RawReader(store, typed=True).iter_events([Kind.TRADES], [SYMBOL], a, b))
    assert typed == [e for e in parsed if a <= e.receive_ts < b]

    day = list_days(store, Kind.TRADES)[-1]
    src = list_parts(store, Kind.TRADES, day, SYMBOL)[0]
    table = pq.read_table(src.path)
    keep = [n for n in table.schema.names if n not in ("price", "size", "side")]
    out = tmp_path / Kind.TRADES.value / day / SYMBOL
    out.mkdir(parents=True)
    pq.write_table(table.select(keep), out / src.path.name)
    stripped = list(RawReader(tmp_path, typed=True).iter_events([Kind.TRADES], [SYMBOL]))
    assert stripped == list(RawReader(tmp_path).iter_events([Kind.TRADES], [SYMBOL]))
    assert len(stripped) == table.num_rows
