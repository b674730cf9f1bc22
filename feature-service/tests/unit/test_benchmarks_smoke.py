"""The benchmark suite, run with tiny sizes so it cannot rot, plus its helpers and generators.

Speed itself is never asserted here (that is what ``make bench`` reports); these tests check
that every benchmark still runs, returns well-formed rows, and measures what it claims to.
"""

from __future__ import annotations

import gc
import importlib
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # `python -m pytest` from the root has it; bare `pytest` not
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks import bench_book, bench_features, common  # noqa: E402

from feature_service.book.orderbook import BookStatus, OrderBook  # noqa: E402
from feature_service.features.catalog import FEATURE_NAMES  # noqa: E402
from feature_service.market.events import BookDelta, BookSnapshot, Kline, Trade  # noqa: E402

RESULT_KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "note"}


def check_rows(rows: list[common.Result], names: set[str]) -> None:
    assert {r.name for r in rows} == names
    for row in rows:
        d = row.as_dict()
        assert set(d) == RESULT_KEYS
        assert row.value > 0 and np.isfinite(row.value), row
        if row.baseline is not None:
            assert row.baseline_value is not None and row.baseline_value > 0, row
            assert row.ratio == pytest.approx(
                common.cost_ratio(row.value, row.baseline_value, row.unit)
            )
            assert row.ratio > 0
        assert row.unit


# --------------------------------------------------------------------------- common


class TestCommon:
    def test_ratio_is_cost_relative_to_the_baseline_for_rates_and_times(self) -> None:
        # 100 msgs/s against a 400 msgs/s baseline costs 4 baselines; 30 µs against 10 µs, 3.
        assert common.cost_ratio(100.0, 400.0, "msgs/s") == 4.0
        assert common.cost_ratio(30.0, 10.0, "µs") == 3.0
        row = common.result("x", 50.0, "events/s", "base", 25.0, "n")
        assert (row.ratio, row.baseline, row.baseline_value, row.note) == (0.5, "base", 25.0, "n")
        with pytest.raises(ValueError):
            common.cost_ratio(0.0, 1.0, "µs")

    def test_percentiles_interpolate_linearly(self) -> None:
        # 1..100: p50 is halfway between 50 and 51; p99 sits at rank 98.01 -> 99 + 0.01.
        p50, p99 = common.percentiles(list(range(1, 101)))
        assert p50 == pytest.approx(50.5)
        assert p99 == pytest.approx(99.01)
        assert common.percentiles([7.0], (0, 50, 100)) == [7.0, 7.0, 7.0]
        with pytest.raises(ValueError):
            common.percentiles([])

    def test_timeit_warms_up_then_times_each_repeat(self) -> None:
        calls: list[bool] = []
        figures = common.timeit(lambda: calls.append(gc.isenabled()), number=3, repeat=4, warmup=2)
        assert len(figures) == 4 and all(f > 0 for f in figures)
        assert len(calls) == 2 + 3 * 4
        # Warm-up runs as usual; every timed call runs with the cyclic GC off, and it is back on.
        assert calls[:2] == [True, True] and not any(calls[2:])
        assert gc.isenabled()

    def test_compare_interleaves_the_callables(self) -> None:
        order: list[str] = []
        times = common.compare(
            {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
            repeat=3,
            warmup=0,
        )
        assert order == ["a", "b"] * 3
        assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
        with pytest.raises(ValueError):
            common.compare({"a": lambda: None}, repeat=0)

    def test_compare_chunked_walks_every_pass_chunk_by_chunk(self) -> None:
        calls: list[tuple[str, int, int]] = []
        made: list[str] = []

        def factory(name: str):  # type: ignore[no-untyped-def]
            def make() -> common.Step:
                made.append(name)
                return lambda i, j: calls.append((name, i, j))

            return make

        times = common.compare_chunked(
            {"a": factory("a"), "b": factory("b")}, 5, chunk=2, repeat=2, warmup=1
        )
        one_round = [("a", 0, 2), ("b", 0, 2), ("a", 2, 4), ("b", 2, 4), ("a", 4, 5), ("b", 4, 5)]
        assert calls == one_round * 3  # warm-up + 2 repeats, each from item 0 in order
        assert made == ["a", "b"] * 3  # a fresh step (fresh state) per round
        assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}
        assert all(t > 0 for v in times.values() for t in v)
        with pytest.raises(ValueError):
            common.compare_chunked({"a": factory("a")}, 0)

    def test_cpu_clock_cost_is_measured(self) -> None:
        assert 0 < common.cpu_clock_cost_ns(1_000) < 1_000_000

    def test_best_is_the_fastest_repeat(self) -> None:
        assert common.best([0.3, 0.1, 0.2]) == 0.1

    @pytest.mark.parametrize(
        ("x", "text"),
        [
            (1_234_567.8, "1,234,568"),
            (150.0, "150.0"),
            (2.5, "2.50"),
            (0.012345, "0.0123"),
            (None, ""),
        ],
    )
    def test_number_format(self, x: float | None, text: str) -> None:
        assert common.fmt_number(x) == text

    def test_table_is_aligned_with_one_line_per_row(self) -> None:
        rows = [
            common.result("short", 1500.0, "msgs/s", "orjson.loads", 3000.0, "note a"),
            common.Result(name="a much longer name", value=2.0, unit="x"),
        ]
        lines = common.format_table(rows).splitlines()
        assert len(lines) == 4
        assert lines[0].split()[:3] == ["benchmark", "value", "unit"]
        # Right-aligned value column: both figures end at the same position.
        assert lines[2].index("1,500") + len("1,500") == lines[3].index("2.00") + len("2.00")
        assert "2.00x" in lines[2]  # the ratio: 3000 / 1500
        assert lines[3].endswith("x")  # no baseline, no ratio: nothing after the unit

    def test_write_json(self, tmp_path: Path) -> None:
        path = tmp_path / "out.json"
        common.write_json(str(path), [common.result("n", 2.0, "µs", "b", 1.0)], {"quick": True})
        doc = json.loads(path.read_text())
        assert doc["meta"] == {"quick": True}
        assert doc["results"] == [
            {
                "name": "n",
                "value": 2.0,
                "unit": "µs",
                "baseline": "b",
                "baseline_value": 1.0,
                "ratio": 2.0,
                "note": "",
            }
        ]


# --------------------------------------------------------------------------- book


class TestBookSim:
    def test_deltas_look_like_orderbook_50(self) -> None:
        sim = bench_book.BookSim(random.Random(3))
        bids, asks, u = sim.snapshot()
        assert len(bids) == len(asks) == 50
        last_u = u
        for _ in range(3_000):
            d_bids, d_asks, u = sim.step()
            assert u == last_u + 1  # contiguous u
            last_u = u
            assert 1 <= len(d_bids) + len(d_asks) <= 8
            # Each price at most once per side, as Bybit sends it.
            assert len({p for p, _ in d_bids}) == len(d_bids)
            assert len({p for p, _ in d_asks}) == len(d_asks)
            assert len(sim.bids.keys) == len(sim.asks.keys) == 50
            assert sim.best_bid_tick() < sim.best_ask_tick()

    def test_messages_rebuild_the_simulated_book_exactly(self) -> None:
        stream = bench_book.book_messages(2_000, seed=5)
        events = bench_book.parse_all(stream.messages)
        assert isinstance(events[0], BookSnapshot)
        assert all(isinstance(e, BookDelta) for e in events[1:])
        receive = [ts for ts, _ in stream.messages]
        assert receive == sorted(receive) and len(set(receive)) == len(receive)
        book = OrderBook(bench_book.SYMBOL)
        for event in events:
            book.apply(event)
        assert book.status is BookStatus.SYNCED
        assert book.stats.deltas_applied == 2_000 and book.stats.gaps == 0
        bids, asks = book.held_levels()
        sim = stream.sim
        assert bids == [(t / 10, lots / 1000) for t, lots in sim.levels(sim.bids)]
        assert asks == [(t / 10, lots / 1000) for t, lots in sim.levels(sim.asks)]

    def test_wire_text(self) -> None:
        assert bench_book.price_text(1_000_003) == "100000.30"
        assert bench_book.size_text(1_234) == "1.234"
        assert bench_book.size_text(5) == "0.005"
        assert bench_book.size_text(0) == "0"

    def test_measure_tiny(self) -> None:
        rows = bench_book.measure(n_deltas=200, repeat=1, sample_messages=30)
        check_rows(
            rows,
            {
                "book.apply (synthetic orderbook.50)",
                "book.ingest (synthetic orderbook.50)",
                "book.apply (bundled sample)",
                "book.ingest (bundled sample)",
            },
        )
        assert all(r.unit == "msgs/s" for r in rows)


# --------------------------------------------------------------------------- features


class TestFeatures:
    def test_market_has_the_advertised_shape(self) -> None:
        market = bench_features.synth_market(3, history=120, seed=2)
        history = bench_book.parse_all(market.history)
        events = bench_book.parse_all(market.live)
        assert len(history) == 120 and all(isinstance(k, Kline) and k.confirmed for k in history)
        starts = [k.start for k in history]  # type: ignore[union-attr]
        assert starts == list(range(starts[0], bench_book.START_US, 60_000_000))
        receive = [e.receive_ts for e in events]
        assert receive == sorted(receive)
        trades = [e for e in events if isinstance(e, Trade)]
        assert 10 * 180 <= len(trades) <= 20 * 180
        confirmed = [e for e in events if isinstance(e, Kline) and e.confirmed]
        assert [k.start for k in confirmed] == [
            bench_book.START_US + i * 60_000_000 for i in range(3)
        ]
        # A confirmed candle's volume is the sum of its minute's trades.
        first = [t for t in trades if t.trade_time < bench_book.START_US + 60_000_000]
        assert confirmed[0].volume == pytest.approx(sum(t.size for t in first))
        assert sum(isinstance(e, BookDelta) for e in events) == 3 * 60 * 50

    def test_vector_pass_samples_every_close_with_its_baseline(self) -> None:
        market = bench_features.synth_market(2, history=100, seed=4)
        history = bench_book.parse_all(market.history)
        events = bench_book.parse_all(market.live)
        run = bench_features.vector_pass(history, events)
        # One close per second of stream (the last events arrive just after the 120th second).
        assert len(run.vector_us) == len(run.vector_wall_us) == len(run.dumps_us) == 120
        for series in (run.vector_us, run.vector_wall_us, run.dumps_us):
            assert all(x > 0 for x in series)
        assert list(run.features) == list(FEATURE_NAMES)

    def test_measure_tiny(self) -> None:
        rows = bench_features.measure(minutes=2, repeat=1, passes=2, history=100)
        check_rows(
            rows,
            {
                "features.vector p50",
                "features.vector p99",
                "features.vector budget headroom",
                "engine.process",
                "engine.process rate",
                "engine.ingest (parse + process)",
                "engine.ingest through IngestBoundary (+ sequencer dedup)",
            },
        )
        by_name = {r.name: r for r in rows}
        p99 = by_name["features.vector p99"].value
        assert by_name["features.vector p50"].value <= p99
        headroom = by_name["features.vector budget headroom"]
        wall_p99 = re.search(r"wall p99 ([0-9.]+) µs", headroom.note)
        assert wall_p99 is not None
        assert headroom.value == pytest.approx(70_000 / float(wall_p99.group(1)), rel=1e-2)
        assert f"{len(FEATURE_NAMES)} values" in by_name["features.vector p50"].note


# --------------------------------------------------------------------------- runner


class TestRunner:
    def test_every_listed_section_module_exposes_run_or_is_absent(self) -> None:
        present = {name for name in cli.SECTIONS if cli.load_section(name) is not None}
        assert {"book", "features"} <= present
        for name in present:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            assert callable(module.run)

    def test_missing_section_is_skipped_and_a_failing_one_reported(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert cli.load_section("no_such_section") is None

        def fake_load(name: str, package: str = "benchmarks"):  # type: ignore[no-untyped-def]
            if name == "gone":
                return None
            if name == "broken":
                return lambda quick: 1 / 0
            return lambda quick: [
                common.Result(name=f"{name}.x", value=1.0 if quick else 2.0, unit="x")
            ]

        monkeypatch.setattr(cli, "load_section", fake_load)
        results, skipped, failed = cli.run_sections(
            ["ok", "gone", "broken", "ok2"], quick=True, log=lambda _m: None
        )
        assert [r.name for r in results] == ["ok.x", "ok2.x"]
        assert [r.value for r in results] == [1.0, 1.0]
        assert skipped == ["gone"] and failed == ["broken"]

    def test_main_prints_the_table_and_writes_json(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        seen: list[tuple[str, bool]] = []

        def fake_load(name: str, package: str = "benchmarks"):  # type: ignore[no-untyped-def]
            def run(quick: bool) -> list[common.Result]:
                seen.append((name, quick))
                return [common.result(f"{name}.row", 10.0, "msgs/s", "base", 20.0)]

            return run

        monkeypatch.setattr(cli, "load_section", fake_load)
        out = tmp_path / "r.json"
        assert cli.main(["--only", "features,book", "--quick", "--json", str(out)]) == 0
        assert seen == [("features", True), ("book", True)]
        printed = capsys.readouterr().out
        assert "features.row" in printed and "book.row" in printed
        assert "2.00x" in printed  # half the baseline's rate: twice its cost
        doc = json.loads(out.read_text())
        assert [r["name"] for r in doc["results"]] == ["features.row", "book.row"]
        assert doc["meta"]["quick"] is True

    def test_unknown_section_is_an_error(self) -> None:
        with pytest.raises(SystemExit):
            cli.parse_args(["--only", "book,nonsense"])


# --------------------------------------------------------------------------- live / raw / offline

from benchmarks import bench_live, bench_offline, bench_rawstore  # noqa: E402

from feature_service.adapters.rawstore.layout import Kind, kind_of  # noqa: E402
from feature_service.market.parsing import parse_message  # noqa: E402
from feature_service.market.timeutil import parse_iso_us  # noqa: E402


def _vectors(rows: list[tuple[int, int, int, int]]) -> bench_live.Vectors:
    """(symbol index, close time, receipt, last feed index) per vector."""
    columns = list(zip(*rows, strict=True))
    return bench_live.Vectors(
        symbol=np.array(columns[0], dtype=np.int64),
        t_us=np.array(columns[1], dtype=np.int64),
        received_us=np.array(columns[2], dtype=np.int64),
        last_index=np.array(columns[3], dtype=np.int64),
        compute_ms=np.ones(len(rows)),
        features=[{} for _ in rows],
    )


class TestLiveFeed:
    def test_feed_is_ws_gateway_envelopes_round_robin_with_the_index_in_trace_id(self) -> None:
        symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
        feed = bench_live.build_feed(900, seed=4, symbols=symbols)
        now = 1_800_000_000_123_456
        books = {s: OrderBook(s) for s in symbols}
        kinds: list[str] = []
        for i, msg in enumerate(feed):
            body = msg.body(now + i)
            doc = json.loads(body)
            assert set(doc) == {
                "event_id",
                "event_type",
                "topic",
                "timestamp",
                "received_at",
                "payload",
                "trace_id",
            }
            assert parse_iso_us(doc["received_at"]) == now + i - bench_live.GATEWAY_LAG_US
            assert parse_iso_us(doc["timestamp"]) == now + i - bench_live.EXCHANGE_LAG_US
            assert msg.headers == {
                "event_type": doc["event_type"],
                "topic": doc["topic"],
                "trace_id": doc["trace_id"],
            }
            (event,) = parse_message(body, receive_ts=now + i)
            assert event.symbol == symbols[i % 3]
            assert bench_live.index_of_trace(event.trace_id) == i
            kinds.append(msg.kind)
            if isinstance(event, Trade):
                assert msg.kind == "trade" and doc["topic"] == f"publicTrade.{event.symbol}"
                # Trade time is stamped at publish, in ms, from the exchange time.
                assert event.trade_time == (now + i - bench_live.EXCHANGE_LAG_US) // 1000 * 1000
            else:
                assert isinstance(event, BookSnapshot if i < 3 else BookDelta)
                assert msg.kind == "orderbook" and doc["topic"] == f"orderbook.50.{event.symbol}"
                books[event.symbol].apply(event)
        for book in books.values():  # every symbol's deltas follow on: the books stay in sync
            assert book.status is BookStatus.SYNCED and book.stats.gaps == 0
        share = kinds.count("orderbook") / len(kinds)
        assert 0.68 <= share <= 0.82  # 3 book messages for each trade

    def test_trace_ids(self) -> None:
        assert bench_live.index_of_trace(bench_live.trace_id_of(123_456)) == 123_456
        assert bench_live.index_of_trace("5d0c7a8e-1f2b-4c3d-8e9f-0a1b2c3d4e5f") == -1
        assert bench_live.index_of_trace(None) == -1

    def test_parse_vectors_keeps_the_1s_vectors_of_known_symbols(self) -> None:
        def body(symbol: str, interval: str, trace: str | None) -> bytes:
            return json.dumps(
                {
                    "symbol": symbol,
                    "interval": interval,
                    "timestamp_us": 2_000_000,
                    "trace_id": trace,
                    "computation_latency_ms": 0.25,
                    "features": {"mid_price": 1.0},
                }
            ).encode()

        received = [
            (2_010_000, body("ETHUSDT", "1s", bench_live.trace_id_of(7))),
            (2_011_000, body("ETHUSDT", "3s", bench_live.trace_id_of(7))),
            (2_012_000, body("XXXUSDT", "1s", None)),
            (2_013_000, body("BTCUSDT", "1s", None)),
        ]
        v = bench_live.parse_vectors(received, ("BTCUSDT", "ETHUSDT"))
        assert v.symbol.tolist() == [1, 0]
        assert v.received_us.tolist() == [2_010_000, 2_013_000]
        assert v.last_index.tolist() == [7, -1]
        assert v.compute_ms.tolist() == [0.25, 0.25]
        assert v.features == [{"mid_price": 1.0}] * 2


class TestLiveMatching:
    def test_each_message_goes_to_the_first_vector_that_includes_it(self) -> None:
        s = 1_000_000
        # Two symbols: message i belongs to symbol i % 2.
        publish = np.array(
            [
                100_000,  # 0, sym 0: in the vector at 1 s (it covers up to index 2)
                200_000,  # 1, sym 1: in 1 s
                990_000,  # 2, sym 0: in 1 s too (covered: last index 2)
                999_000,  # 3, sym 1: published before 1 s but arrived after: 1 s vector
                #             only covers index 1 -> the 2 s vector
                1_500_000,  # 4, sym 0: 2 s
                2_500_000,  # 5, sym 1: no vector after it -> unmatched
            ],
            dtype=np.int64,
        )
        vectors = _vectors(
            [
                (0, 1 * s, 1 * s + 4_000, 2),
                (1, 1 * s, 1 * s + 6_000, 1),
                (0, 2 * s, 2 * s + 3_000, 4),
                (1, 2 * s, 2 * s + 9_000, 3),
            ]
        )
        m = bench_live.match_messages(publish, 2, vectors)
        # Concatenated per symbol: symbol 0's messages (0, 2, 4), then symbol 1's (1, 3).
        assert m.unmatched == 1
        assert m.service_us.tolist() == [4_000, 4_000, 3_000, 6_000, 9_000]
        assert m.raw_us.tolist() == [
            1_004_000 - 100_000,
            1_004_000 - 990_000,
            2_003_000 - 1_500_000,
            1_006_000 - 200_000,
            2_009_000 - 999_000,
        ]
        assert m.boundary_wait_us.tolist() == [900_000, 10_000, 500_000, 800_000, 1_000]

    def test_a_message_published_after_the_close_waits_for_the_next_vector(self) -> None:
        # Index 0 published 2 ms after the 1 s close: even if the 1 s vector's trace claims it
        # (it cannot), the t > publish rule sends it to 2 s; the service latency then starts at
        # that vector's close, not at the publish.
        publish = np.array([1_002_000], dtype=np.int64)
        vectors = _vectors([(0, 1_000_000, 1_010_000, 0), (0, 2_000_000, 2_005_000, 0)])
        m = bench_live.match_messages(publish, 1, vectors)
        assert m.service_us.tolist() == [5_000]
        assert m.raw_us.tolist() == [2_005_000 - 1_002_000]
        assert m.unmatched == 0

    def test_crossing_rate_is_the_5_to_95_percent_slope(self) -> None:
        samples = [(0.0, 0), (1.0, 40), (2.0, 100), (3.0, 600), (4.0, 960), (5.0, 1000)]
        # 5 % = 50 first reached at 2.0 s (100); 95 % = 950 first reached at 4.0 s (960).
        assert bench_live.crossing_rate(samples, 1000) == pytest.approx((960 - 100) / 2.0)
        with pytest.raises(ValueError):
            bench_live.crossing_rate([(0.0, 0), (1.0, 10)], 1000)

    def test_latency_rows_report_the_matched_percentiles(self) -> None:
        matched = bench_live.Matched(
            service_us=np.arange(1, 101, dtype=np.int64) * 1_000,  # 1..100 ms
            raw_us=np.full(100, 500_000, dtype=np.int64),
            boundary_wait_us=np.full(100, 400_000, dtype=np.int64),
            unmatched=0,
        )
        vectors = _vectors([(0, 1_000_000, 1_001_000, 0)] * 3)
        run = bench_live.LatencyRun(1000.0, 100, 990.0, 0.01, matched, vectors, [1.0, 3.0])
        rows = bench_live.latency_rows(run, np.array([500, 1_500], dtype=np.int64))
        by_name = {r.name.split(" (")[0]: r for r in rows}
        assert by_name["live.latency service p50"].value == pytest.approx(50.5)
        assert by_name["live.latency service p99"].value == pytest.approx(99.01)
        assert by_name["live.latency service p50"].baseline_value == pytest.approx(1.0)
        assert "p95 95.0 ms" in by_name["live.latency service p99"].note
        assert "MISSED" in by_name["live.latency service p99"].note  # p95 95 ms > 70 ms
        assert by_name["live.publish->vector p50"].value == pytest.approx(500.0)
        assert by_name["live.publish->vector p50"].baseline_value == pytest.approx(400.0)
        assert by_name["live.compute per vector p99"].value == pytest.approx(1.0)
        for row in rows:
            assert row.ratio == pytest.approx(
                common.cost_ratio(row.value, row.baseline_value or 0, row.unit)
            )


def _rabbitmq_reachable() -> bool:
    import socket
    from urllib.parse import urlparse

    url = urlparse(bench_live.rabbitmq_url())
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 1.0):
            return True
    except OSError:
        return False


@pytest.mark.integration
def test_live_measure_tiny_against_rabbitmq() -> None:
    # `make test` starts RabbitMQ first; never skip silently when it is missing.
    assert _rabbitmq_reachable(), "RabbitMQ is not reachable (run `make services`)"
    sizes = bench_live.Sizes(rates=(400.0,), seconds=1.0, ingest_messages=3_000, rtt_messages=40)
    rows = bench_live.measure(sizes)
    tag = "(400 msgs/s)"
    check_rows(
        rows,
        {
            f"live.latency service p50 {tag}",
            f"live.latency service p99 {tag}",
            f"live.publish->vector p50 {tag}",
            f"live.publish->vector p99 {tag}",
            f"live.compute per vector p50 {tag}",
            f"live.compute per vector p99 {tag}",
            "live.ingest sustained (raw store on)",
        },
    )
    by_name = {r.name: r for r in rows}
    assert "400 msgs matched (0 unmatched)" in by_name[f"live.latency service p50 {tag}"].note
    # A vector cannot reach the reader before its close: the raw delay is at least the wait.
    raw = by_name[f"live.publish->vector p50 {tag}"]
    assert raw.value >= raw.baseline_value  # type: ignore[operator]


# --------------------------------------------------------------------------- rawstore


class TestRawstore:
    def test_inputs_cover_every_kind_with_their_own_bodies(self) -> None:
        inputs = bench_rawstore.build_inputs(minutes=1, snapshots=5, klines=20, funding=7)
        assert set(inputs) == set(bench_rawstore.KIND_LABELS)
        assert len(inputs[Kind.ORDERBOOK_SNAPSHOTS].events) == 5 + 1  # the stream's own first
        assert len(inputs[Kind.KLINES].events) == 20  # confirmed history only
        assert len(inputs[Kind.FUNDING].events) == 7 + 1
        assert len(inputs[Kind.ORDERBOOK_DELTAS].events) == 60 * 50
        for kind, data in inputs.items():
            assert len(data.events) == len(data.bodies) > 0
            for event, body in zip(data.events[:50], data.bodies[:50], strict=True):
                assert kind_of(event) is kind
                assert parse_message(body, receive_ts=event.receive_ts) == [event]
        klines = inputs[Kind.KLINES].events
        assert all(k.confirmed for k in klines)  # type: ignore[attr-defined]
        days = {e.receive_ts // 86_400_000_000 for e in klines}
        assert len(days) == 1

    def test_writers_report_the_bytes_they_put_on_disk(self, tmp_path: Path) -> None:
        inputs = bench_rawstore.build_inputs(minutes=1, snapshots=3, klines=10, funding=3)
        data = inputs[Kind.TRADES]
        written = bench_rawstore.sync_write(data, tmp_path / "sync")
        assert written == sum(p.stat().st_size for p in (tmp_path / "sync").rglob("*.parquet"))
        async_bytes = bench_rawstore.async_write(data, tmp_path / "async", flush_rows=100)
        files = list((tmp_path / "async").rglob("*.parquet"))
        assert len(files) == -(-len(data.events) // 100)  # ceil: one file per batch
        assert async_bytes == sum(p.stat().st_size for p in files)
        tables = bench_rawstore.equivalent_tables(data, chunk=100)
        assert sum(t.num_rows for t in tables) == len(data.events)
        bare = bench_rawstore.bare_write(tables, tmp_path / "bare")
        assert bare == sum(p.stat().st_size for p in (tmp_path / "bare").glob("*.parquet"))

    def test_buffer_memory_grows_with_the_buffered_messages(self, tmp_path: Path) -> None:
        data = bench_rawstore.build_inputs(minutes=1, snapshots=1, klines=1, funding=1)[
            Kind.ORDERBOOK_DELTAS
        ]
        small = bench_rawstore.buffer_memory(data, tmp_path / "a", 1_000)
        large = bench_rawstore.buffer_memory(data, tmp_path / "b", 2_000)
        assert small.json == sum(len(b) for b in data.bodies[:1_000])
        # It holds the bodies (fresh copies) and the events: more than the JSON alone ...
        assert small.buffered > small.json and large.buffered > large.json
        # ... and per message about the same at both sizes.
        assert large.buffered / small.buffered == pytest.approx(2.0, rel=0.25)
        assert small.arrow > 0

    def test_measure_tiny(self) -> None:
        rows = bench_rawstore.measure(minutes=1, snapshots=5, klines=30, funding=20, repeat=1)
        labels = bench_rawstore.KIND_LABELS.values()
        check_rows(
            rows,
            {f"rawstore.write {label}" for label in labels}
            | {f"rawstore.bytes/msg {label}" for label in labels}
            | {
                "rawstore.async write orderbook deltas (5,000-row batches)",
                "rawstore.async write orderbook deltas (500-row batches)",
                "rawstore.buffer memory orderbook deltas",
                "rawstore.buffer memory trades",
            },
        )
        by_name = {r.name: r for r in rows}
        # zstd Parquet of ~430-byte envelopes: well under the JSON, far over nothing.
        assert 20 < by_name["rawstore.bytes/msg orderbook deltas"].value < 430


# --------------------------------------------------------------------------- offline


class TestOffline:
    def test_measure_tiny_and_the_projection_arithmetic(self) -> None:
        rows = bench_offline.measure(minutes=2, repeat=1)
        check_rows(rows, {"offline.rebuild", "offline.month projection", "offline.month vs SC-005"})
        by_name = {r.name: r for r in rows}
        rebuild = by_name["offline.rebuild"]
        found = re.search(r"\(([0-9,]+)/h\) -> ([0-9,]+) 1 s vectors", rebuild.note)
        assert found is not None
        per_hour = int(found.group(1).replace(",", ""))
        assert int(found.group(2).replace(",", "")) == 120  # one vector per second of 2 min
        month = by_name["offline.month projection"]
        assert month.value == pytest.approx(30 * 24 * per_hour / rebuild.value / 60, rel=1e-9)
        assert month.baseline_value == pytest.approx(
            30 * 24 * per_hour / (rebuild.baseline_value or 0) / 60, rel=1e-9
        )
        assert by_name["offline.month vs SC-005"].value == pytest.approx(120 / month.value)

    def test_rebuild_and_live_replay_must_agree(self) -> None:
        same = bench_offline.Pass(1.0, 1.0, 10, 2, {"a": 1.0})
        bench_offline._check_same(same, bench_offline.Pass(2.0, 2.0, 10, 2, {"a": 1.0}))
        with pytest.raises(RuntimeError):
            bench_offline._check_same(same, bench_offline.Pass(1.0, 1.0, 10, 3, {"a": 1.0}))
        with pytest.raises(RuntimeError):
            bench_offline._check_same(same, bench_offline.Pass(1.0, 1.0, 10, 2, {"a": 2.0}))


# --------------------------------------------------------------------------- peers


class TestPeers:
    def test_measure_tiny_reports_every_peer_row_measured_or_marked_missing(self) -> None:
        from benchmarks import bench_peers

        rows = bench_peers.measure_book(300, 1) + bench_peers.measure_indicators(400, 1)
        assert len(rows) == 4
        measured = [r for r in rows if np.isfinite(r.value)]
        check_rows(measured, {r.name for r in measured})
        for row in rows:
            if not np.isfinite(row.value):
                assert "not installed" in row.note, row
        # TA-Lib is a dev dependency: that row is always measured (and its values were checked
        # against ours before the row was made)
        assert any(r.baseline and r.baseline.startswith("TA-Lib") for r in measured)

    def test_check_against_talib_refuses_values_that_differ(self) -> None:
        from benchmarks import bench_peers

        closes = bench_peers._closes(300)
        with pytest.raises(RuntimeError):
            bench_peers._check_against_talib(closes, (50.0, closes[-1], 0.0))


class TestParsing:
    def test_strict_against_plain_rows_and_the_baseline_really_skips_the_checks(self) -> None:
        from benchmarks import bench_parsing

        rows = bench_parsing.measure(n_deltas=200, sample=300, repeat=1)
        check_rows(
            rows,
            {
                "parse.strict_values (synthetic orderbook.50)",
                "parse.strict_values (bundled sample, all kinds)",
            },
        )
        trade = bench_parsing.sample_lines(2_000)
        line = next(x for x in trade if b'"event_type":"trade"' in x)
        doc = json.loads(line)
        doc["payload"]["p"] = "\uff11\uff12"  # full-width digits: refused when strict
        body = json.dumps(doc).encode()
        from feature_service.market.errors import MessageRejected
        from feature_service.market.parsing import parse_message

        with pytest.raises(MessageRejected):
            parse_message(body)
        with bench_parsing.plain_values():
            (event,) = parse_message(body)
        assert event.price == 12.0  # type: ignore[attr-defined]
        with pytest.raises(MessageRejected):  # restored
            parse_message(body)
