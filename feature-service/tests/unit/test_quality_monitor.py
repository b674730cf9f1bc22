"""Each problem injected into an otherwise clean stream is found once, with its times and size;
the clean stream and the bundled sample yield no incident (T139-T145)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from feature_service.market.events import BookDelta, BookSnapshot, Kline, Ticker, Trade
from feature_service.quality.incidents import Incident, IncidentKind
from feature_service.services.quality_report import scan_events
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0, S


@pytest.fixture(scope="module")
def clean() -> list:
    return dq.clean_stream()


def incidents(events: list) -> list[Incident]:
    from feature_service.quality.report import merge_incidents

    _, records = scan_events(events)
    return merge_incidents(records)


def only(found: list[Incident], kind: IncidentKind) -> Incident:
    assert [i.kind for i in found] == [kind], [i.to_dict() for i in found]
    return found[0]


def test_clean_stream_has_no_incident(clean: list) -> None:
    assert incidents(clean) == []


def test_bundled_sample_has_no_incident() -> None:
    from feature_service.market.recording import read_recording
    from feature_service.sample.generator import default_sample_path

    assert incidents(list(read_recording(default_sample_path()))) == []


def test_silent_stream(clean: list) -> None:
    events = dq.drop(clean, Ticker, T0 + 3 * MINUTE, T0 + 4 * MINUTE)
    before = dq.last_before(events, Ticker, T0 + 3 * MINUTE)
    after = events[dq.first(events, Ticker, T0 + 4 * MINUTE)]
    inc = only(incidents(events), IncidentKind.STREAM_SILENT)
    assert (inc.stream, inc.start_us, inc.end_us) == ("ticker", before.receive_ts, after.receive_ts)
    assert inc.magnitude == pytest.approx((after.receive_ts - before.receive_ts) / S)


def test_missing_confirmed_klines(clean: list) -> None:
    events = dq.drop(clean, Kline, T0 + 5 * MINUTE, T0 + 7 * MINUTE)  # two candles
    silent, inc = incidents(events)  # the kline stream was also silent past its 90 s limit
    assert (silent.kind, silent.stream) == (IncidentKind.STREAM_SILENT, "kline")
    assert inc.kind is IncidentKind.KLINE_MISSING
    assert inc.magnitude == 2
    assert (inc.start_us, inc.end_us) == (T0 + 4 * MINUTE, T0 + 6 * MINUTE)


def test_price_jump(clean: list) -> None:
    # The whole book moves up 1% at one instant (a snapshot), then carries on from there.
    from feature_service.book.orderbook import OrderBook

    i = dq.first(clean, BookDelta, T0 + 6 * MINUTE + 300_000)
    book = OrderBook(dq.SYMBOL)
    for e in clean[:i]:
        if isinstance(e, BookDelta | BookSnapshot):
            book.apply(e)
    up = 500.0
    bids, asks = book.held_levels()
    t = clean[i].receive_ts - 50
    prev_u = book.update_id
    events = list(clean[:i])
    events.append(
        replace(
            clean[0],
            receive_ts=t,
            exchange_ts=t - dq.LAG,
            bids=[(p + up, q) for p, q in bids],
            asks=[(p + up, q) for p, q in asks],
            update_id=prev_u,
            seq=book.seq,
        )
    )
    for e in clean[i:]:
        if isinstance(e, BookDelta | BookSnapshot):
            e = replace(
                e,
                bids=[(round(p + up, 1), q) for p, q in e.bids],
                asks=[(round(p + up, 1), q) for p, q in e.asks],
            )
        elif isinstance(e, Trade):
            e = replace(e, price=round(e.price + up, 1))
        events.append(e)
    mid = (bids[0][0] + asks[0][0]) / 2
    inc = only(incidents(events), IncidentKind.PRICE_JUMP)
    assert inc.start_us == (t // S + 1) * S  # sampled at the next 1 s boundary
    assert inc.magnitude == pytest.approx(math.log((mid + up) / mid), rel=1e-2)


def test_trade_outside_book(clean: list) -> None:
    i = dq.first(clean, Trade, T0 + 2 * MINUTE)
    trade = clean[i]
    book = [e for e in clean[:i] if isinstance(e, BookDelta | BookSnapshot)][-1]
    best_ask = min(p for p, q in book.asks if q) if isinstance(book, BookSnapshot) else None
    events = dq.with_event(clean, i, replace(trade, price=round(trade.price * 1.02, 1)))
    inc = only(incidents(events), IncidentKind.TRADE_OUTSIDE_BOOK)
    assert (inc.stream, inc.start_us) == ("trade", trade.receive_ts)
    assert 0.015 < inc.magnitude < 0.025
    del best_ask


def test_zero_size_level_in_snapshot(clean: list) -> None:
    i = dq.first(clean, BookSnapshot, T0 + 3 * MINUTE)
    snap = clean[i]
    events = dq.with_event(clean, i, replace(snap, bids=[*snap.bids, (1.0, 0.0), (2.0, 0.0)]))
    inc = only(incidents(events), IncidentKind.ZERO_SIZE_LEVEL)
    assert (inc.start_us, inc.magnitude) == (snap.receive_ts, 2.0)


def test_crossed_book(clean: list) -> None:
    i = dq.first(clean, BookDelta, T0 + 4 * MINUTE + 5 * S)  # between two snapshots
    j = dq.first(clean, BookDelta, T0 + 4 * MINUTE + 6_500_000)
    d = clean[i]
    price = 60_000.0  # a bid far above every ask
    events = dq.with_event(clean, i, replace(d, bids=[*d.bids, (price, 1.0)]))
    e = events[j]
    events = dq.with_event(events, j, replace(e, bids=[*e.bids, (price, 0.0)]))
    inc = only(incidents(events), IncidentKind.CROSSED_BOOK)
    assert (inc.start_us, inc.end_us) == (d.receive_ts, e.receive_ts)
    assert inc.magnitude > 0.19  # (60000 - ~50000) / ~50000


def test_ohlc_inconsistent(clean: list) -> None:
    i = dq.first(clean, Kline, T0 + 2 * MINUTE)
    k = clean[i]
    events = dq.with_event(clean, i, replace(k, high=k.close - 2.0))
    inc = only(incidents(events), IncidentKind.OHLC_INCONSISTENT)
    assert inc.start_us == k.receive_ts
    assert inc.magnitude == pytest.approx(2.0 / k.close)


def test_u_gap_and_desync_until_snapshot(clean: list) -> None:
    i = dq.first(clean, BookDelta, T0 + 2 * MINUTE + 200_000)
    events = clean[:i] + clean[i + 1 :]
    gapped = events[i] if isinstance(events[i], BookDelta) else None
    gapped = events[dq.first(events, BookDelta, clean[i].receive_ts)]
    snap = events[dq.first(events, BookSnapshot, gapped.receive_ts)]
    found = incidents(events)
    assert [x.kind for x in found] == [IncidentKind.U_GAP, IncidentKind.BOOK_DESYNC]
    gap, desync = found
    assert (gap.start_us, gap.magnitude) == (gapped.receive_ts, 1.0)
    assert (desync.start_us, desync.end_us) == (gapped.receive_ts, snap.receive_ts)
    assert desync.magnitude == pytest.approx((snap.receive_ts - gapped.receive_ts) / S)


def test_u_reset(clean: list) -> None:
    i = dq.first(clean, BookSnapshot, T0 + 5 * MINUTE)
    old_u = clean[i].update_id
    inc = only(incidents(dq.renumber_after_reset(clean, i)), IncidentKind.U_RESET)
    assert (inc.start_us, inc.magnitude) == (clean[i].receive_ts, float(old_u - 1))


def test_seq_backwards(clean: list) -> None:
    i = dq.first(clean, BookDelta, T0 + MINUTE)
    d = clean[i]
    events = dq.with_event(clean, i, replace(d, seq=d.seq - 100))
    inc = only(incidents(events), IncidentKind.SEQ_BACKWARDS)
    assert (inc.start_us, inc.magnitude) == (d.receive_ts, 97.0)  # 100 back from +3


def test_duplicates(clean: list) -> None:
    i = dq.first(clean, BookDelta, T0 + MINUTE)
    j = dq.first(clean, Trade, T0 + 2 * MINUTE)
    d, t = clean[i], clean[j]
    events = dq.insert(clean, replace(d, receive_ts=d.receive_ts + 10))
    events = dq.insert(events, replace(t, receive_ts=t.receive_ts + 10, event_id="again"))
    found = incidents(events)
    assert [(x.kind, x.stream, x.start_us) for x in found] == [
        (IncidentKind.DUPLICATE, "orderbook", d.receive_ts + 10),
        (IncidentKind.DUPLICATE, "trade", t.receive_ts + 10),
    ]


def test_clock_skew_episode(clean: list) -> None:
    ta = T0 + 3 * MINUTE
    events = dq.drop(clean, Ticker, ta, ta + 3 * S)
    idx = [dq.first(events, Ticker, ta + 3 * S)]
    for _ in range(2):
        idx.append(dq.first(events, Ticker, events[idx[-1]].receive_ts + 1))
    for k in idx:
        e = events[k]
        events = dq.with_event(events, k, replace(e, exchange_ts=e.receive_ts - 2_005_000))
    inc = only(incidents(events), IncidentKind.CLOCK_SKEW)
    assert (inc.stream, inc.start_us, inc.end_us) == (
        "ticker",
        events[idx[0]].receive_ts,
        events[idx[-1]].receive_ts,
    )
    assert inc.magnitude == pytest.approx(2005.0)


def test_time_backwards(clean: list) -> None:
    i = dq.first(clean, Trade, T0 + 4 * MINUTE)
    prev = dq.last_before(clean, Trade, clean[i].receive_ts)
    t = clean[i]
    events = dq.with_event(clean, i, replace(t, exchange_ts=prev.exchange_ts - 200_000))
    inc = only(incidents(events), IncidentKind.TIME_BACKWARDS)
    assert (inc.stream, inc.start_us, inc.magnitude) == ("trade", t.receive_ts, 200.0)


def test_mask_reports_desync_and_stale_streams(clean: list) -> None:
    from feature_service.engine.core import FeatureEngine

    i = dq.first(clean, BookDelta, T0 + 2 * MINUTE + 200_000)
    events = clean[:i] + clean[i + 1 :]
    engine = FeatureEngine(intervals_s=[1])
    masks = {}
    for e in events:
        for v in engine.process(e):
            masks[v.timestamp] = v.quality
    gap_t = clean[i + 1].receive_ts
    bad = [t for t, m in masks.items() if not m.ok]
    assert bad and all(t > gap_t for t in bad if t > T0 + MINUTE)
    m = masks[(gap_t // S + 1) * S]
    assert not m.ok and "orderbook_out_of_sync" in m.reasons and not m.book_in_sync
    good = masks[T0 + 5 * MINUTE]
    assert good.ok and good.reasons == () and good.age_ms["orderbook"] < 100
