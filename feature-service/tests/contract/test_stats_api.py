"""HTTP contract of /stats*, /metrics, the flat /health fields and X-Trace-Id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feature_service.api import schemas_stats as s
from feature_service.api.schemas import HealthCheckOut
from feature_service.app import create_app
from feature_service.config import Settings
from tests.fixtures import events as ev

KEY = "test-key"
H = {"X-API-Key": KEY}
T0 = 1_795_600_000_000_000

ENDPOINTS = {
    "/stats": s.AllStatsOut,
    "/stats/storage": s.StorageStatsOut,
    "/stats/processing": s.ProcessingStatsOut,
    "/stats/service": s.ServiceStatsOut,
}
LIST_ENDPOINTS = {
    "/stats/rolling-windows": s.RollingWindowsStatsOut,
    "/stats/subscriptions": s.SubscriptionStatsOut,
}


class StepClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY],
        replay_enabled=False,
        intervals=[1, 60],
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        runtime = app.state.runtime

        def feed() -> None:
            runtime.live.clock = StepClock(T0)
            for i in range(5):
                runtime.live.clock.now = T0 + i * 400_000
                runtime.live.ingest(ev.body(ev.trade(T0 + i * 400_000, i)), "ws-gateway.trade")
                runtime.live.ingest(
                    ev.body(ev.snapshot(T0 + i * 400_000, i)), "ws-gateway.orderbook"
                )

        tc.portal.call(feed)
        yield tc


@pytest.mark.parametrize("path", [*ENDPOINTS, *LIST_ENDPOINTS])
def test_stats_need_the_api_key(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message", "trace_id"}


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_stats_bodies_match_their_schema(client: TestClient, path: str) -> None:
    response = client.get(path, headers=H)
    assert response.status_code == 200, response.text
    ENDPOINTS[path].model_validate(response.json())


@pytest.mark.parametrize("path", list(LIST_ENDPOINTS))
def test_stats_lists_match_their_schema(client: TestClient, path: str) -> None:
    response = client.get(path, headers=H)
    assert response.status_code == 200, response.text
    rows = response.json()
    assert rows
    for row in rows:
        LIST_ENDPOINTS[path].model_validate(row)


def test_every_stats_path_has_a_typed_response_in_openapi(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in [*ENDPOINTS, *LIST_ENDPOINTS]:
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        text = str(schema["schema"])
        assert "$ref" in text, path


def test_rolling_windows_filters_by_symbol(client: TestClient) -> None:
    rows = client.get("/stats/rolling-windows", params={"symbol": "btcusdt"}, headers=H).json()
    assert [r["symbol"] for r in rows] == ["BTCUSDT"]
    assert rows[0]["total_trades_count"] == 5
    assert rows[0]["book_levels"] == {"bids": 1, "asks": 1}
    missing = client.get("/stats/rolling-windows", params={"symbol": "XRPUSDT"}, headers=H)
    assert missing.status_code == 404


def test_all_stats_serves_the_rest_when_a_part_fails(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def broken() -> dict[str, object]:
        raise OSError("disk gone")

    runtime.statistics.storage = broken
    body = client.get("/stats", headers=H).json()
    assert body["storage"] is None
    assert body["errors"] == {"storage": "OSError: disk gone"}
    assert body["processing"]["events_processed_1h"] == 10
    assert body["service"]["tracked_symbols"] == ["BTCUSDT"]


def test_service_stats(client: TestClient) -> None:
    body = client.get("/stats/service", headers=H).json()
    assert body["mode"] == "embedded"
    assert body["registry_version"] == "1.1.0"
    assert body["intervals"] == ["1s", "1m"]
    assert body["uptime_seconds"] >= 0


def test_incoming_trace_id_is_honoured_and_a_missing_one_made(client: TestClient) -> None:
    mine = "trace-abc-123"
    response = client.get("/stats/service", headers={**H, "X-Trace-Id": mine})
    assert response.headers["X-Trace-Id"] == mine
    made = client.get("/stats/service", headers=H).headers["X-Trace-Id"]
    assert str(uuid.UUID(made)) == made
    # Error bodies carry the same id as the header.
    failed = client.get("/stats/service", headers={"X-Trace-Id": mine})
    assert failed.status_code == 401
    assert failed.json()["trace_id"] == failed.headers["X-Trace-Id"] == mine
    junk = client.get("/health", headers={"X-Trace-Id": "bad id\twith spaces"})
    assert junk.headers["X-Trace-Id"] != "bad id\twith spaces"


def test_metrics_parse_and_carry_the_histograms(client: TestClient) -> None:
    client.get("/stats/service", headers=H)
    text = client.get("/metrics", headers=H).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "feature_service_vector_computation_seconds",
        "feature_service_vector_publish_delay_seconds",
        "feature_service_message_age_seconds",
        "feature_service_http_request_duration_seconds",
        "feature_service_dataset_build_duration_seconds",
    ):
        assert families[name].type == "histogram", name
    for name in (
        "feature_service_messages",
        "feature_service_book_resyncs",
        "feature_service_quality_incidents",
        "feature_service_dataset_builds",
        "feature_service_backfill_rows",
        "feature_service_backfill_jobs",
    ):
        assert families[name].type == "counter", name
    for name in ("feature_service_consumer_lag_messages", "feature_service_raw_pending_rows"):
        assert families[name].type == "gauge", name
    http = families["feature_service_http_request_duration_seconds"]
    counts = {
        (x.labels["route"], x.labels["status"]): x.value
        for x in http.samples
        if x.name.endswith("_count") and x.labels["method"] == "GET"
    }
    assert counts[("/stats/service", "200")] == 1
    age = families["feature_service_message_age_seconds"]
    trade_count = [
        x.value
        for x in age.samples
        if x.name.endswith("_count") and x.labels["queue"] == "ws-gateway.trade"
    ]
    assert trade_count == [5]


def test_health_has_the_flat_fields(client: TestClient) -> None:
    body = client.get("/health").json()
    HealthCheckOut.model_validate(body)
    assert body["database_connected"] is True
    assert body["queue_connected"] is True
    assert body["feature_registry_loaded"] is True
    assert body["active_dataset_builds_count"] == 0
    assert body["last_dataset_build_duration_seconds"] is None
    # Two seconds of data: the 1 s vectors exist and took measurable time.
    assert body["latest_feature_computation_timestamp"] is not None
    assert body["average_latency_ms_last_5min"] > 0
