"""HTTP contract: status codes, bodies, schemas and authentication of every endpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feature_service.api.openapi import export_openapi
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.recording import event_to_envelope
from feature_service.market.timeutil import parse_iso_us

KEY = "test-key"
REPO = Path(__file__).resolve().parents[3]


class StepClock:
    """Deterministic service clock for the contract tests."""

    def __init__(self) -> None:
        self.now = 0

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0  # the timer never fires on its own; tests tick explicitly


@pytest.fixture
def client(tmp_path: Path, sample_events: list) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY, "second-key"],
        replay_enabled=False,
        intervals=[1, 60],
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        runtime = app.state.runtime
        clock = StepClock()
        end = sample_events[-1].receive_ts - 90_000_000

        def feed() -> None:
            # Runs in the app's event loop thread, like the consumers do.
            runtime.live.clock = clock
            for event in sample_events:
                if event.receive_ts > end:
                    break
                clock.now = event.receive_ts
                body = json.dumps(event_to_envelope(event, include_service_time=False))
                runtime.live.ingest(body)

        # The first two and a half minutes of the sample, through the live ingest path.
        tc.portal.call(feed)
        yield tc


def test_features_latest_returns_the_full_vector(client: TestClient) -> None:
    response = client.get(
        "/features/latest", params={"symbol": "BTCUSDT"}, headers={"X-API-Key": KEY}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT"
    assert body["interval"] == "1s"
    assert body["feature_registry_version"] == "1.1.0"
    # Only computed features, finite numbers; every other feature is named in null_reasons.
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in body["features"].values())
    assert set(body["features"]) | set(body["null_reasons"]) == set(FEATURE_NAMES)
    assert not set(body["features"]) & set(body["null_reasons"])
    assert body["features"]["mid_price"] > 0
    assert isinstance(body["features"]["trade_count_3s"], int)
    assert parse_iso_us(body["timestamp"]) == body["timestamp_us"]
    assert body["timestamp_us"] % 1_000_000 == 0
    assert body["stale"] is False


def test_features_latest_with_include_nulls_returns_the_full_key_set(client: TestClient) -> None:
    params = {"symbol": "BTCUSDT", "interval": "1m", "include_nulls": "true"}
    body = client.get("/features/latest", params=params, headers={"X-API-Key": KEY}).json()
    assert list(body["features"]) == list(FEATURE_NAMES)
    assert set(body["null_reasons"]) == {k for k, v in body["features"].items() if v is None}
    # 120 warm-up candles are not the 24 h relative volume needs
    assert (
        body["features"]["relative_volume_24h"] is None
        and "relative_volume_24h" in body["null_reasons"]
    )
    default = client.get(
        "/features/latest",
        params={"symbol": "BTCUSDT", "interval": "1m"},
        headers={"X-API-Key": KEY},
    ).json()
    assert "relative_volume_24h" not in default["features"]
    assert default["features"] == {k: v for k, v in body["features"].items() if v is not None}


def test_features_latest_by_interval_and_lowercase_symbol(client: TestClient) -> None:
    r1 = client.get("/features/latest?symbol=btcusdt&interval=1m", headers={"X-API-Key": KEY})
    assert r1.status_code == 200
    assert r1.json()["interval"] == "1m"
    assert r1.json()["timestamp_us"] % 60_000_000 == 0


def test_query_string_api_key_is_accepted(client: TestClient) -> None:
    r = client.get("/features/latest?symbol=BTCUSDT&api_key=second-key")
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "missing API key"), ({"X-API-Key": "wrong"}, "invalid API key")],
)
def test_auth_failures_are_401_with_the_error_body(
    client: TestClient, headers: dict[str, str], message: str
) -> None:
    r = client.get("/features/latest?symbol=BTCUSDT", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert set(body) == {"error", "message", "trace_id"}
    assert body["error"] == "unauthorized"
    assert message in body["message"]
    assert body["trace_id"]


def test_unknown_symbol_is_404_with_a_message(client: TestClient) -> None:
    r = client.get("/features/latest?symbol=ETHUSDT", headers={"X-API-Key": KEY})
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "not_found"
    assert "ETHUSDT" in body["message"]


def test_interval_not_computed_is_404(client: TestClient) -> None:
    r = client.get("/features/latest?symbol=BTCUSDT&interval=15s", headers={"X-API-Key": KEY})
    assert r.status_code == 404
    assert "15s" in r.json()["message"]


@pytest.mark.parametrize(
    "query",
    ["", "?symbol=", "?symbol=BTC-USDT", "?symbol=BTCUSDT&interval=2s", "?symbol=" + "A" * 21],
)
def test_malformed_queries_are_422(client: TestClient, query: str) -> None:
    r = client.get(f"/features/latest{query}", headers={"X-API-Key": KEY, "X-Trace-Id": "abc"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["trace_id"] == "abc"
    assert body["message"]


def test_health_is_open_and_reports_readiness(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["ready"] is True
    assert body["services"]["message_queue"] == "connected"
    assert body["services"]["database"] == "connected"
    checks = body["checks"]
    assert {"bus", "metadata_store", "registry", "computation"} <= set(checks)
    assert checks["registry"]["version"] == "1.1.0"
    assert checks["registry"]["features"] == len(FEATURE_NAMES)
    assert checks["bus"]["backend"] == "memory"
    assert checks["computation"]["last_computation_ms"] >= 0


def test_metrics_need_a_key_and_expose_counters(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    text = r.text
    assert "feature_service_vectors_emitted_total" in text
    assert 'feature_service_messages_consumed_total{queue=""}' in text
    assert "feature_service_orderbook_events" in text


def test_unknown_path_uses_the_error_body(client: TestClient) -> None:
    r = client.get("/nope", headers={"X-API-Key": KEY})
    assert r.status_code == 404
    assert set(r.json()) == {"error", "message", "trace_id"}


def test_openapi_is_served_and_declares_the_api_key(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/features/latest" in spec["paths"]
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    get = spec["paths"]["/features/latest"]["get"]
    assert {"APIKeyHeader": []} in get["security"]
    assert spec["paths"]["/health"]["get"]["security"] == []


def test_committed_openapi_export_is_current() -> None:
    committed = (REPO / "specs/005-feature-service/contracts/openapi.json").read_text()
    assert committed == export_openapi(), "run `make openapi` and commit the result"
