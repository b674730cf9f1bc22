"""Prometheus metrics, collected at scrape time from the runtime's counters, so the hot path
pays nothing for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        live = self._runtime.live
        engine = live.engine
        stats = live.stats

        consumed = CounterMetricFamily(
            "feature_service_messages_consumed", "Messages consumed", labels=["queue"]
        )
        for queue, n in stats.consumed.items():
            consumed.add_metric([queue], n)
        yield consumed

        rejected = CounterMetricFamily(
            "feature_service_messages_rejected",
            "Messages dead-lettered as malformed",
            labels=["queue", "reason"],
        )
        for (queue, reason), n in stats.rejected.items():
            rejected.add_metric([queue, reason], n)
        yield rejected

        nulls = CounterMetricFamily(
            "feature_service_feature_null",
            "Null feature values by reason",
            labels=["feature", "reason"],
        )
        for (name, reason), n in engine.null_counts.items():
            nulls.add_metric([name, reason], n)
        yield nulls

        yield CounterMetricFamily(
            "feature_service_vectors_emitted",
            "Feature vectors emitted",
            value=engine.vectors_emitted,
        )
        yield CounterMetricFamily(
            "feature_service_vectors_published", "Vectors published", value=stats.published
        )
        yield CounterMetricFamily(
            "feature_service_publish_failures", "Failed publishes", value=stats.publish_failures
        )
        yield CounterMetricFamily(
            "feature_service_slow_computations",
            "Vectors whose computation exceeded the latency warning",
            value=engine.slow_computations,
        )
        yield GaugeMetricFamily(
            "feature_service_last_computation_seconds",
            "Duration of the last vector computation",
            value=engine.last_computation_us / 1e6,
        )
        book = GaugeMetricFamily(
            "feature_service_orderbook_events",
            "Order book sequencing counters",
            labels=["symbol", "kind"],
        )
        for symbol, state in engine.states.items():
            for kind, n in state.book_counters().items():
                book.add_metric([symbol, kind], n)
        yield book
        yield from _quality_metrics(self._runtime)


def _quality_metrics(runtime: Runtime) -> Iterator[Metric]:
    incidents = CounterMetricFamily(
        "feature_service_quality_incidents",
        "Data quality incidents detected, by symbol and kind",
        labels=["symbol", "kind"],
    )
    for (symbol, kind), n in runtime.engine.quality.detected.items():
        incidents.add_metric([symbol, kind], n)
    yield incidents
    resyncer = runtime.resyncer
    if resyncer is not None:
        resync = CounterMetricFamily(
            "feature_service_book_resyncs",
            "Order book resync requests (requested, sent, merged, delayed, failed, ...)",
            labels=["outcome"],
        )
        for outcome, n in resyncer.summary().items():
            resync.add_metric([outcome], n)
        yield resync
    recorder = runtime.quality_recorder
    if recorder is not None:
        yield CounterMetricFamily(
            "feature_service_quality_metric_rows_written",
            "Rows written to data_quality_metrics",
            value=recorder.rows_written,
        )
        yield CounterMetricFamily(
            "feature_service_quality_metric_write_failures",
            "Failed writes to data_quality_metrics (rows are kept and retried)",
            value=recorder.write_failures,
        )


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    return registry
