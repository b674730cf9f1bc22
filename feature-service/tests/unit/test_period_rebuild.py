"""State as of any moment: the rebuild of a sub-period [A, B) equals rows [A, B) of the rebuild
of the whole stream, bit for bit and for every feature (candle features included: the stream
holds more candles than the candle lookback, so the period rebuild starts its candle history
later than the whole-stream one).

Two stores of the same stream: written without checkpoints (the book of every period comes
from the snapshot at the start of the dense part, or the resend snapshot mid-stream), and
imported with ``storage import`` (book checkpoints every 60 s, as live writes them)."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from feature_service.adapters.rawstore.layout import Kind
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.datasets.request import Period
from feature_service.engine.core import FeatureEngine
from feature_service.engine.vector import FeatureVector
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.market.events import BookDelta, Kline, MarketEvent, Trade
from feature_service.market.recording import iter_recording
from feature_service.sample.generator import generate
from feature_service.services.dataset_rows import REFERENCE_PRICE, Progress, RowGauge, spill_rows
from feature_service.services.importer import import_recording
from feature_service.services.state_asof import rebuild_period, state_as_of

SYMBOL = "BTCUSDT"
S = 1_000_000


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[MarketEvent]]:
    path = tmp_path_factory.mktemp("rec") / "stream.jsonl.gz"
    # 27 h of candles (more than the 1,562 the candle lookback reads), then 12 min of book,
    # trades, tickers, klines and funding.
    generate(path, seed=5, kline_hours=27, dense_minutes=12)
    return path, list(iter_recording(path))


@pytest.fixture(scope="module")
def plain_store(stream, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plain")
    RawWriterSync(root, first_seq=0).write_events(stream[1])
    return root


@pytest.fixture(scope="module")
def imported_store(stream, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imported")
    summary = import_recording(stream[0], root)
    assert summary.checkpoints >= 10 and summary.stored == len(stream[1])  # one a minute
    again = import_recording(stream[0], root)  # idempotent
    assert again.stored == 0 and again.already_stored == len(stream[1])
    return root


@pytest.fixture(scope="module")
def whole(stream, plain_store) -> dict[tuple[int, int], FeatureVector]:
    """The whole-stream rebuild: a fresh engine over every stored event, start to end."""
    return _whole(plain_store, stream[1][-1].receive_ts + 1)


def _whole(root: Path, end_us: int) -> dict[tuple[int, int], FeatureVector]:
    engine = FeatureEngine()
    out: list[FeatureVector] = []
    for event in RawReader(root).iter_events(symbols=[SYMBOL]):
        out += engine.process(event)
    out += engine.advance_to(end_us - 1)
    return {(v.timestamp, v.interval_s): v for v in out}


def _dense_span(events: list[MarketEvent]) -> tuple[int, int]:
    book = [e.receive_ts for e in events if isinstance(e, BookDelta)]
    return book[0], book[-1]


def _periods(events: list[MarketEvent], n: int, seed: int) -> list[tuple[int, int]]:
    d0, d1 = _dense_span(events)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.randrange(d0 + 30 * S, d1 - 90 * S)
        out.append((a, a + rng.randrange(20 * S, 90 * S)))
    # Before the dense part: candles only (no book anywhere before it).
    out.append((d0 - 600 * S - 123_457, d0 - 540 * S))
    return out


def _check(root: Path, whole: dict, periods: list[tuple[int, int]]) -> None:
    for a, b in periods:
        rows = rebuild_period(root, SYMBOL, a, b)
        expected = sorted(k for k in whole if a <= k[0] < b)
        assert [(v.timestamp, v.interval_s) for v in rows] == expected, (a, b)
        for v in rows:
            w = whole[(v.timestamp, v.interval_s)]
            bad = [k for k in v.features if v.features[k] != w.features[k]]
            assert not bad, (a, b, v.timestamp, {k: (v.features[k], w.features[k]) for k in bad})
            assert (v.data_age_ms, v.stale, v.null_reasons) == (
                w.data_age_ms,
                w.stale,
                w.null_reasons,
            )


@pytest.mark.timeout(1200)
def test_period_rebuild_without_checkpoints(stream, plain_store, whole) -> None:
    _check(plain_store, whole, _periods(stream[1], 2, seed=1))


@pytest.mark.timeout(1200)
def test_period_rebuild_from_imported_checkpoints(stream, imported_store, whole) -> None:
    _check(imported_store, whole, _periods(stream[1], 3, seed=2))


@pytest.mark.timeout(600)
def test_state_as_of_reports_where_the_book_came_from(stream, plain_store, imported_store) -> None:
    d0, _ = _dense_span(stream[1])
    t = d0 + 9 * 60 * S
    assert state_as_of(imported_store, [SYMBOL], t)[1].book_from == {SYMBOL: "checkpoint"}
    assert state_as_of(plain_store, [SYMBOL], t)[1].book_from == {SYMBOL: "snapshot"}
    assert state_as_of(plain_store, [SYMBOL], d0 - 3600 * S)[1].book_from == {SYMBOL: "none"}
    # Candle features are complete from the first vector on: the history came from the store.
    engine, _ = state_as_of(plain_store, [SYMBOL], t)
    (first, *_) = engine.advance_to(t + 1 * S)
    assert first.features["relative_volume_24h"] is not None
    assert first.features["macd_signal"] is not None
    assert sum(1 for e in stream[1] if isinstance(e, Kline) and e.confirmed) > 1562
    assert list(RawReader(imported_store).iter_records([Kind.ORDERBOOK_CHECKPOINTS], [SYMBOL]))


def _rows(root: Path, window: Period, keep: Period, path: Path) -> pd.DataFrame:
    """What a dataset build computes for ``window`` (its spilled rows), by close time in µs."""
    req = SimpleNamespace(symbol=SYMBOL, interval_s=60)
    spilled = spill_rows(
        req, root, window, keep, Progress(window, None), BUNDLED_PLAN, path,  # type: ignore[arg-type]
        batch_rows=1000, gauge=RowGauge(),
    )  # fmt: skip
    frame = pd.read_parquet(spilled.path)
    us = frame["timestamp"].dt.as_unit("us").astype("int64")
    return frame.drop(columns=["timestamp"]).set_index(pd.Index(us, name="t_us"))


@pytest.mark.timeout(900)
def test_dataset_rows_of_a_period_equal_the_whole_stream_rows_with_reference_price(
    stream, imported_store, tmp_path
) -> None:
    """``spill_rows`` (what a dataset build runs) of [A, B) gives the rows [A, B) of the
    whole-stream build, ``reference_price`` included: it is seeded from before A (the last trade
    price), not left to the first trade inside the period."""
    events = stream[1]
    d0, d1 = _dense_span(events)
    start, end = events[0].receive_ts, events[-1].receive_ts + 1
    whole = _rows(imported_store, Period(start, end), Period(start, end), tmp_path / "w.parquet")
    first_minute = (d0 // (60 * S) + 2) * 60 * S
    checked = 0
    for a in range(first_minute, d1 - 3 * 60 * S, 3 * 60 * S):
        b = a + 3 * 60 * S
        period = Period(a, b)
        rows = _rows(imported_store, period, Period(a, b - 1), tmp_path / f"{a}.parquet")
        expected = whole.loc[(whole.index >= a) & (whole.index < b)]
        assert list(rows.index) == list(expected.index) and len(rows) == 3
        # The row at A: no trade inside the period yet, the price is the one from before A.
        last_trade = [e.price for e in events if isinstance(e, Trade) and e.receive_ts < a][-1]
        first_price = rows[REFERENCE_PRICE].iloc[0]
        assert not pd.isna(first_price) and first_price == last_trade, (a, first_price)
        features = [c for c in rows.columns if c not in ("data_age_ms", "depth_age_ms")]
        pd.testing.assert_frame_equal(rows[features], expected[features])
        checked += 1
    assert checked >= 2
