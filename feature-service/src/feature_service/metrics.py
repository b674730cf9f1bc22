"""Prometheus metrics, collected at scrape time from the runtime's counters and the
``Telemetry`` structures, so the hot path pays nothing for Prometheus itself.

Names follow the Prometheus conventions: ``feature_service_`` prefix, base units (seconds,
bytes), ``_total`` on counters (prometheus-client appends it to counter families). The full
list with meanings is in README, "Metrics"; grafana/dashboards/*.json query only these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime
    from feature_service.telemetry import LabeledHistograms


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
        yield from telemetry_families(self._runtime)
        yield from _quality_metrics(self._runtime)


def _quality_metrics(runtime: Runtime) -> Iterator[Metric]:
    """What the quality side adds to the telemetry's incident and resync counters."""
    resyncer = getattr(runtime, "resyncer", None)
    if resyncer is not None:
        resync = CounterMetricFamily(
            "feature_service_book_resync_requests",
            "Order book resync requests by outcome (requested, sent, merged, delayed, failed, ...)",
            labels=["outcome"],
        )
        for outcome, n in resyncer.summary().items():
            resync.add_metric([outcome], n)
        yield resync
    recorder = getattr(runtime, "quality_recorder", None)
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


def histogram_family(
    name: str, doc: str, labels: list[str], source: LabeledHistograms
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, hist in sorted(source.by_key.items()):
        family.add_metric(list(key), hist.cumulative(), hist.sum)
    return family


def counter_family(
    name: str, doc: str, labels: list[str], values: dict[Any, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return family


def telemetry_families(runtime: Runtime) -> Iterator[Metric]:
    t = runtime.telemetry
    yield histogram_family(
        "feature_service_vector_computation_seconds",
        "Time to compute one feature vector, per interval",
        ["interval"],
        t.computation,
    )
    yield histogram_family(
        "feature_service_vector_publish_delay_seconds",
        "Interval boundary to the broker's publish confirm (service clock), per interval",
        ["interval"],
        t.publish_delay,
    )
    yield histogram_family(
        "feature_service_message_age_seconds",
        "Message age on arrival: service receive time minus exchange time, per queue",
        ["queue"],
        t.message_age,
    )
    yield histogram_family(
        "feature_service_http_request_duration_seconds",
        "HTTP request latency per route template, method and status",
        ["method", "route", "status"],
        t.http,
    )
    yield histogram_family(
        "feature_service_dataset_build_duration_seconds",
        "Duration of finished dataset builds, per final status",
        ["status"],
        t.dataset_build_seconds,
    )
    yield counter_family(
        "feature_service_dataset_builds",
        "Dataset builds that finished, per status (ready, failed)",
        ["status"],
        dict(t.dataset_builds),
    )
    yield counter_family(
        "feature_service_messages",
        "Consumed messages per queue and outcome (stored, applied, rejected, store_failed)",
        ["queue", "outcome"],
        dict(t.messages),
    )
    yield counter_family(
        "feature_service_messages_redelivered",
        "Messages the broker delivered again (flagged redelivered)",
        ["queue"],
        dict(t.redelivered),
    )
    resyncs = {symbol: 0 for symbol in runtime.settings.symbols} | dict(t.book_resyncs)
    yield counter_family(
        "feature_service_book_resyncs",
        "Order book resynchronisations requested after a sequence gap or desync",
        ["symbol"],
        resyncs,
    )
    yield counter_family(
        "feature_service_quality_incidents",
        "Data quality incidents detected, per symbol and kind",
        ["symbol", "kind"],
        dict(t.quality_incidents),
    )
    yield counter_family(
        "feature_service_backfill_rows",
        "Historical rows stored by backfill jobs, per symbol and data kind",
        ["symbol", "kind"],
        dict(t.backfill_rows_total),
    )
    yield counter_family(
        "feature_service_backfill_jobs",
        "Backfill jobs that finished, per status",
        ["status"],
        dict(t.backfill_jobs),
    )
    lag = GaugeMetricFamily(
        "feature_service_consumer_lag_messages",
        "Messages waiting in each consumed queue (broker's count, refreshed every few seconds)",
        labels=["queue"],
    )
    consumers = GaugeMetricFamily(
        "feature_service_queue_consumers",
        "Consumers attached to each consumed queue (broker's count)",
        labels=["queue"],
    )
    for name, depth in sorted(t.queue_depths.items()):
        if depth.messages is not None:
            lag.add_metric([name], depth.messages)
        if depth.consumers is not None:
            consumers.add_metric([name], depth.consumers)
    yield lag
    yield consumers
    yield GaugeMetricFamily(
        "feature_service_raw_pending_rows",
        "Rows handed to the raw store and not yet durable (their messages are unacked)",
        value=runtime.raw_writer.stats.pending_rows,
    )
    yield GaugeMetricFamily(
        "feature_service_uptime_seconds",
        "Seconds since the service started",
        value=runtime.uptime_s(),
    )
    writer = getattr(runtime, "metrics_writer", None)
    if writer is not None:
        yield counter_family(
            "feature_service_metrics_table_rows",
            "Rows offered to the metrics tables, per table and outcome (written, dropped, failed)",
            ["table", "outcome"],
            writer.outcomes(),
        )


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    return registry
