"""Export of the raw store as a JSON Lines recording that replays to the same events."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from feature_service.adapters.rawstore.export import export_recording
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.cli_storage import app
from feature_service.market.events import MarketEvent
from feature_service.market.parsing import parse_message
from feature_service.market.recording import event_to_envelope, iter_envelopes, iter_recording
from tests.fixtures.events import (
    body,
    delta,
    funding,
    kline,
    snapshot,
    ticker,
    trade,
)

T0 = 1_737_972_000_000_000  # 2025-01-27T10:00:00Z
MIDNIGHT_28 = 1_738_022_400_000_000


def write(root: Path, events: list[MarketEvent], raws: list[bytes] | None = None) -> None:
    RawWriterSync(root).write_events(events, raws or [body(e) for e in events])


@pytest.fixture()
def events_of_every_kind() -> list[MarketEvent]:
    # Receive times 1 ms apart and 1.5 ms after received_at: the replay must run on the stored
    # receive time, not on the gateway's clock.
    makers = (snapshot, delta, trade, kline, ticker, funding, trade, delta)
    return [make(T0 + 1_000 * i, i) for i, make in enumerate(makers)]


@pytest.mark.parametrize("name", ["out.jsonl.gz", "out.jsonl"])
def test_export_replays_to_the_same_events(
    tmp_path: Path, events_of_every_kind: list[MarketEvent], name: str
) -> None:
    root = tmp_path / "raw"
    write(root, events_of_every_kind)
    output = tmp_path / name

    summary = export_recording(root, None, "BTCUSDT", None, None, output)

    assert summary.lines == len(events_of_every_kind)
    assert (summary.first_us, summary.last_us) == (T0, T0 + 7_000)
    assert list(iter_recording(output)) == events_of_every_kind
    assert list(iter_recording(output)) == list(RawReader(root).iter_events())
    if name.endswith(".gz"):
        with gzip.open(output) as fh:
            assert fh.readline().startswith(b"{")


def test_lines_are_the_stored_bodies_with_the_service_receive_time(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    event = trade(T0 + 123_456, 0)
    envelope = event_to_envelope(event, include_service_time=False)
    envelope["x_extra"] = {"kept": True}  # anything ws-gateway adds survives the round trip
    write(root, [event], [orjson.dumps(envelope)])

    export_recording(root, ["trades"], "BTCUSDT", None, None, tmp_path / "out.jsonl")
    (line,) = list(iter_envelopes(tmp_path / "out.jsonl"))
    assert line == {**envelope, "service_received_at": "2025-01-27T10:00:00.123456"}


def test_export_drops_duplicates_and_writes_a_multi_event_body_once(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    first = trade(T0, 0)
    redelivered = dataclasses.replace(first, receive_ts=T0 + 60_000_000)
    frame = orjson.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": 1737972000125,
            "data": [
                {"T": 1737972000120, "s": "BTCUSDT", "S": "Buy", "v": "0.01", "p": "50000.2",
                 "i": "a1", "BT": False},
                {"T": 1737972000121, "s": "BTCUSDT", "S": "Sell", "v": "0.02", "p": "50000.1",
                 "i": "a2", "BT": False},
            ],
        }
    )  # fmt: skip
    pair = parse_message(frame, receive_ts=T0 + 5)
    write(
        root,
        [first, *pair, redelivered],
        [body(first), frame, frame, body(first)],
    )

    output = tmp_path / "out.jsonl"
    summary = export_recording(root, ["trades"], "BTCUSDT", None, None, output)
    assert summary.lines == 2 and summary.duplicates == 1
    assert list(iter_recording(output)) == [first, *pair]


def test_export_filters_kinds_symbols_and_time(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    events = [
        trade(MIDNIGHT_28 - 10, 0),
        trade(MIDNIGHT_28, 1),
        delta(MIDNIGHT_28 + 1, 2),
        trade(MIDNIGHT_28 + 2, 3, symbol="ETHUSDT"),
        trade(MIDNIGHT_28 + 3, 4),
    ]
    write(root, events)
    output = tmp_path / "out.jsonl"
    export_recording(root, ["trades"], "BTCUSDT", MIDNIGHT_28 - 10, MIDNIGHT_28 + 3, output)
    assert list(iter_recording(output)) == [events[0], events[1]]
    export_recording(root, None, ["BTCUSDT", "ETHUSDT"], MIDNIGHT_28, None, output)
    assert list(iter_recording(output)) == events[1:]
    with pytest.raises(ValueError, match="executions"):
        export_recording(root, ["executions"], "BTCUSDT", None, None, output)


def test_cli_export(tmp_path: Path, events_of_every_kind: list[MarketEvent]) -> None:
    root = tmp_path / "raw"
    write(root, events_of_every_kind)
    output = tmp_path / "rec.jsonl.gz"
    runner = CliRunner()
    args = ["export", "--raw-dir", str(root), "--symbol", "btcusdt", "--output", str(output)]

    result = runner.invoke(app, [*args, "--from", "2025-01-27", "--to", "2025-01-28"])
    assert result.exit_code == 0, result.output
    assert "8 message(s)" in result.output
    assert list(iter_recording(output)) == events_of_every_kind

    only = runner.invoke(
        app,
        [
            *args,
            "--type",
            "trades",
            "--from",
            "2025-01-27T10:00:00",
            "--to",
            "2025-01-27T10:00:00.006",
        ],
    )
    assert only.exit_code == 0, only.output
    assert [e.receive_ts for e in iter_recording(output)] == [T0 + 2_000]

    empty = runner.invoke(app, [*args, "--from", "2025-02-01", "--to", "2025-02-02"])
    assert empty.exit_code == 1
    assert "2025-01-27 .. 2025-01-27 (1 days)" in empty.output

    bad = runner.invoke(
        app, [*args, "--type", "candles", "--from", "2025-01-27", "--to", "2025-01-28"]
    )
    assert bad.exit_code == 2
    backwards = runner.invoke(app, [*args, "--from", "2025-01-28", "--to", "2025-01-27"])
    assert backwards.exit_code == 2
