"""Data quality: the 24 h report, the monitor's cost per event, and book recovery over RabbitMQ.

Input: ``minutes`` of the synthetic BTCUSDT market of ``bench_features`` (book deltas every
20 ms, 10-20 trades a second, 100 ms tickers, klines), i.e. ~75 messages a second.

Rows:
- ``quality.monitor per event``: ``QualityMonitor.observe`` after the book applied the event
  (CPU). Baseline: ``OrderBook.apply`` + ``SymbolState.apply`` of the same events, the engine
  step it rides on.
- ``quality.report 24h from summaries`` (wall): the hour's per-minute summaries and incidents
  (from the monitor) laid end to end over 24 h in the summary store, then
  ``QualityReports.compute`` of that day, as GET /data-quality/report runs it. Baseline:
  reading those files and ``orjson.loads`` of every line (the floor of any reader).
  ``quality.report 24h vs 1 s aim``: 1 s / that time (SC-007 allows 5 s).
- ``quality.report replay of raw`` (wall): the hour stored in a raw store and reported with
  no summaries (the replay path), events per second. Baseline: ``RawReader.iter_events`` alone.
- ``quality.report 24h via the raw path (import summaries)`` (wall): data entered other than
  live (import, backfill) is summarised from the raw store when it is stored; the hour is
  summarised so (its cost, projected to 24 h, in the note), then a day of that session's
  summaries is reported through ``QualityReports.compute`` (source ``raw_summaries``, after the
  raw-file fingerprint check). Baseline: reading + ``orjson.loads`` of those summary lines.
- ``quality.resync gap -> usable book`` (wall, p50 / max of ``rounds``): the live service over
  RabbitMQ with the local fake ws-gateway, which publishes a snapshot when the order book topic
  is subscribed; from the receive time of the delta that revealed the gap to the receive time
  of the snapshot that made the book usable (the desync incident's duration). Baseline: one
  REST round trip to the fake gateway (GET /health) in the same run. SC-006: under 1 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench_book import SYMBOL, parse_all
from benchmarks.bench_features import synth_market
from benchmarks.common import Result, best, cpu_clock, percentiles, result
from feature_service.adapters.qualitystore import QualityStore
from feature_service.adapters.rawstore.reader import RawReader
from feature_service.adapters.rawstore.writer import RawWriterSync
from feature_service.book.orderbook import OrderBook
from feature_service.features.state import SymbolState
from feature_service.market.events import BookDelta, BookSnapshot, MarketEvent
from feature_service.quality.incidents import Incident
from feature_service.quality.monitor import QualityMonitor
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary
from feature_service.services.quality_report import MARKET_KINDS, QualityReports

REPO = Path(__file__).resolve().parents[1]
US_PER_DAY = 86_400_000_000


def _monitor_pass(events: list[MarketEvent]) -> tuple[float, float, QualityMonitor]:
    book = OrderBook(SYMBOL)
    monitor = QualityMonitor()
    started = cpu_clock()
    for e in events:
        if isinstance(e, BookSnapshot | BookDelta):
            book.apply(e)
        monitor.observe(e, book)
    monitor_s = cpu_clock() - started
    state = SymbolState(SYMBOL)
    started = cpu_clock()
    for e in events:
        state.apply(e)
    return monitor_s, cpu_clock() - started, monitor


def _day_of_summaries(
    minutes: list[MinuteSummary], incidents: list[Incident], day_start: int
) -> tuple[list[MinuteSummary], list[Incident]]:
    """The hour's minutes repeated over a whole day, shifted to start at ``day_start``."""
    base = minutes[0].minute_us
    out_m: list[MinuteSummary] = []
    out_i: list[Incident] = []
    hours = 24 * 60 // len(minutes) + 1
    for h in range(hours):
        for m in minutes:
            shift = day_start - base + h * len(minutes) * US_PER_MINUTE
            d = m.to_dict()
            d["minute_us"] = m.minute_us + shift
            d["first_rx"] = {k: v + shift for k, v in d["first_rx"].items()}
            d["last_rx"] = {k: v + shift for k, v in d["last_rx"].items()}
            if d["minute_us"] < day_start + US_PER_DAY:
                out_m.append(MinuteSummary.from_dict(d))
        for inc in incidents:
            shift = day_start - base + h * len(minutes) * US_PER_MINUTE
            out_i.append(
                Incident(
                    inc.kind, inc.symbol, inc.stream, inc.start_us + shift,
                    None if inc.end_us is None else inc.end_us + shift, inc.magnitude,
                    inc.detail, inc.detected_us + shift, inc.seq + h * 100_000,
                )
            )  # fmt: skip
    return out_m, out_i


def _report_rows(events: list[MarketEvent], monitor: QualityMonitor, repeat: int) -> list[Result]:
    monitor.finish()
    minutes, incidents = monitor.drain()
    rows: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        root = Path(tmp)
        store = QualityStore(root / "quality")
        day = (events[0].receive_ts // US_PER_DAY + 1) * US_PER_DAY
        day_m, day_i = _day_of_summaries(minutes, incidents, day)
        store.append("bench", day_m, day_i)
        store.mark_covered("bench", day, day + US_PER_DAY)
        reports = QualityReports(root / "raw", store)
        report_s, floor_s = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            report, source = reports.compute(SYMBOL, day, day + US_PER_DAY)
            report_s.append(time.perf_counter() - started)
            assert source == "live_summaries" and sum(report.messages.values()) > 0
            started = time.perf_counter()
            for path in (root / "quality" / SYMBOL).rglob("*.jsonl"):
                for line in path.read_bytes().splitlines():
                    orjson.loads(line)
            floor_s.append(time.perf_counter() - started)
        value = best(report_s)
        rows.append(
            result(
                "quality.report 24h from summaries", value * 1000, "ms",
                "read + orjson.loads of the summary lines", best(floor_s) * 1000,
                note=f"wall; {len(day_m)} minutes, {len(day_i)} incident records",
            )
        )  # fmt: skip
        rows.append(
            Result("quality.report 24h vs 1 s aim", 1.0 / value, "x", note="SC-007 allows 5 s")
        )

        # The replay path: the hour in a raw store, no summaries.
        RawWriterSync(root / "raw").write_events(
            events, [orjson.dumps(_envelope(e)) for e in events]
        )
        plain = QualityReports(root / "raw", QualityStore(root / "none"))
        start, end = events[0].receive_ts, events[-1].receive_ts + 1
        replay_s, read_s = [], []
        for _ in range(max(1, repeat // 2)):
            started = time.perf_counter()
            plain.compute(SYMBOL, start, end)
            replay_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            n = sum(1 for _ in RawReader(root / "raw").iter_events(MARKET_KINDS, [SYMBOL]))
            read_s.append(time.perf_counter() - started)
        rows.append(
            result(
                "quality.report replay of raw", n / best(replay_s), "events/s",
                "RawReader.iter_events alone", n / best(read_s),
                note=f"wall; {n} stored events; 24 h projection "
                f"{24 * 60 / (len(minutes) or 1) * best(replay_s):.0f} s",
            )
        )  # fmt: skip
        rows.append(_raw_summaries_row(root, events, minutes, incidents, repeat))
    return rows


def _raw_summaries_row(
    root: Path, events: list[MarketEvent], minutes: list[MinuteSummary],
    incidents: list[Incident], repeat: int,
) -> Result:  # fmt: skip
    """The raw path with summaries made when the data entered the store other than live: the
    hour is summarised from the raw store (timed: the cost an import pays), then a whole day of
    summaries of that session laid over the hour's day (its fingerprint the real raw files)."""
    from feature_service.services.quality_precompute import fingerprint, summarise

    raw, store = root / "raw", QualityStore(root / "raw-quality")
    day = events[0].receive_ts // US_PER_DAY * US_PER_DAY
    end = (events[-1].receive_ts // US_PER_DAY + 1) * US_PER_DAY
    started = time.perf_counter()
    session = summarise(raw, store, SYMBOL, day, end)
    summarise_s = time.perf_counter() - started
    store.remove(session.session)
    day_m, day_i = _day_of_summaries(minutes, incidents, day)
    store.append("bench-raw", day_m, day_i)
    store.mark_covered(
        "bench-raw", day, day + US_PER_DAY, symbol=SYMBOL,
        fingerprint=fingerprint(raw, SYMBOL, day, day + US_PER_DAY),
    )  # fmt: skip
    reports = QualityReports(raw, store)
    report_s, floor_s = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        report, source = reports.compute(SYMBOL, day, day + US_PER_DAY)
        report_s.append(time.perf_counter() - started)
        assert source == "raw_summaries" and sum(report.messages.values()) > 0
        started = time.perf_counter()
        for path in (root / "raw-quality" / SYMBOL).rglob("*.jsonl"):
            for line in path.read_bytes().splitlines():
                orjson.loads(line)
        floor_s.append(time.perf_counter() - started)
    rate = len(events) / summarise_s
    return result(
        "quality.report 24h via the raw path (import summaries)", best(report_s) * 1000, "ms",
        "read + orjson.loads of the summary lines", best(floor_s) * 1000,
        note=f"wall; was a replay (row above); summarising at import: {rate:,.0f} events/s, "
        f"i.e. ~{86_400 * 75 / rate:.0f} s for a day of this ~75 msgs/s market",
    )  # fmt: skip


def _envelope(event: MarketEvent) -> dict[str, Any]:
    from feature_service.market.recording import event_to_envelope

    return event_to_envelope(event)


# -- resync over RabbitMQ --------------------------------------------------------------------
async def _resync_rounds(rounds: int) -> tuple[list[float], float]:
    sys.path.insert(0, str(REPO / "feature-service"))
    import aio_pika
    import httpx
    from tests.fixtures.fake_ws_gateway import FakeWsGateway  # the local fake, as in the tests

    from feature_service.config import Settings
    from feature_service.market.recording import event_to_envelope
    from feature_service.quality.incidents import IncidentKind
    from feature_service.quality.report import merge_incidents
    from feature_service.services.runtime import Runtime

    url = os.environ.get("FEATURE_SERVICE_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"bench-resync-{os.getpid()}"
    queue = f"{prefix}.orderbook"
    loop = asyncio.get_running_loop()
    conn = await aio_pika.connect_robust(url)
    channel = await conn.channel()
    args = {"x-message-ttl": 86_400_000, "x-max-length": 100_000, "x-overflow": "drop-head"}
    names = {k: f"{prefix}.{k}" for k in ("orderbook", "trade", "kline", "ticker", "funding")}
    for name in names.values():
        await channel.declare_queue(name, durable=True, arguments=args)
    state = {"u": 100}

    def envelope(cls: type, u: int) -> bytes:
        now = time.time_ns() // 1000
        event = cls(
            symbol=SYMBOL, topic=f"orderbook.1.{SYMBOL}", exchange_ts=now, gateway_ts=now,
            receive_ts=now, bids=[(100.0, 1.0 + u % 5)], asks=[(100.1, 1.0)], update_id=u,
            seq=u, depth=1,
        )  # fmt: skip
        return orjson.dumps(event_to_envelope(event, include_service_time=False))

    async def publish(body: bytes) -> None:
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=2), routing_key=queue
        )

    def on_subscribe(row: dict[str, Any]) -> None:
        if row["channel_type"] == "orderbook":
            body = envelope(BookSnapshot, state["u"])
            asyncio.run_coroutine_threadsafe(publish(body), loop).result(10)

    durations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-resync-") as tmp, FakeWsGateway("k") as gw:
        gw.on_subscribe = on_subscribe
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            rabbitmq_url=url, data_dir=Path(tmp), ws_gateway_url=gw.base_url,
            ws_gateway_api_key="k", symbols=[SYMBOL], quality_recorder_interval_s=3600.0,
            resync_min_interval_s=0.01, **{f"queue_{k}": v for k, v in names.items()},
            dead_letter_queue=f"{prefix}.dead-letter", features_exchange=f"{prefix}.features",
        )  # fmt: skip
        runtime = Runtime(settings)
        await runtime.start()
        try:
            runtime.resyncer.flap_window_s = 0.0  # measure recovery, not the flap throttle
            book = lambda: runtime.engine.states[SYMBOL].book  # noqa: E731
            await _wait(lambda: SYMBOL in runtime.engine.states and book().usable)
            for _ in range(rounds):
                state["u"] += 3  # two updates lost
                await publish(envelope(BookDelta, state["u"]))
                await _wait(lambda: book().update_id == state["u"] and book().usable)
                await asyncio.sleep(0.05)
            _, records = runtime.engine.quality.drain()
            for inc in merge_incidents(records):
                if inc.kind is IncidentKind.BOOK_DESYNC and inc.end_us is not None:
                    durations.append((inc.end_us - inc.start_us) / 1e6)
            async with httpx.AsyncClient(base_url=gw.base_url) as http:
                await http.get("/health")
                rtt = []
                for _ in range(20):
                    started = time.perf_counter()
                    await http.get("/health")
                    rtt.append(time.perf_counter() - started)
        finally:
            await runtime.stop()
            for name in [*names.values(), f"{prefix}.dead-letter"]:
                await channel.queue_delete(name)
            await conn.close()
    return durations, best(rtt)


async def _wait(predicate: Any, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.002)


def run(quick: bool) -> list[Result]:
    minutes = 3 if quick else 60
    market = synth_market(minutes, history=60 if quick else 1500, seed=11)
    events = parse_all(market.history) + parse_all(market.live)
    passes = [_monitor_pass(events) for _ in range(1 if quick else 3)]
    monitor_s = best([p[0] for p in passes])
    base_s = best([p[1] for p in passes])
    n = len(events)
    rows = [
        result(
            "quality.monitor per event", monitor_s / n * 1e6, "µs",
            "OrderBook.apply + SymbolState.apply", base_s / n * 1e6,
            note=f"CPU; book applied inside the measured pass; {n} events",
        )
    ]  # fmt: skip
    rows += _report_rows(events, passes[0][2], repeat=2 if quick else 5)
    durations, rtt = asyncio.run(_resync_rounds(3 if quick else 10))
    p50, _ = percentiles(durations)
    rows.append(
        result(
            "quality.resync gap -> usable book", p50 * 1000, "ms",
            "fake ws-gateway GET /health round trip", rtt * 1000,
            note=f"wall p50 over {len(durations)} rounds, max {max(durations) * 1000:.1f} ms; "
            "SC-006: < 1 s",
        )
    )  # fmt: skip
    return rows
