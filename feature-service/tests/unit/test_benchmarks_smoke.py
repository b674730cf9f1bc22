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
