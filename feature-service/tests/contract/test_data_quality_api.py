"""GET /data-quality/report: the contract's DataQualityReport (plus incidents) from stored raw
data, saved in data_quality_reports; 400 for an invalid period; 401 without a key (T148)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from feature_service.adapters.rawstore.writer import RawWriter
from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.market.events import BookDelta
from feature_service.market.recording import event_to_envelope
from tests.fixtures import data_quality as dq
from tests.fixtures.data_quality import MINUTE, T0

KEY = "test-key"
CONTRACT_FIELDS = {
    "id",
    "symbol",
    "period_start",
    "period_end",
    "missing_rate",
    "anomaly_rate",
    "sequence_gaps",
    "desynchronization_events",
    "anomaly_details",
    "sequence_gap_details",
    "recommendations",
    "created_at",
}


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


async def _store_raw(root: Path, events: list) -> None:
    writer = RawWriter(root, flush_rows=100_000, flush_age_s=60.0)
    await writer.start()
    futures = [writer.submit(e, orjson.dumps(event_to_envelope(e))) for e in events]
    await writer.close()
    await asyncio.gather(*futures)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    tmp = tmp_path_factory.mktemp("dq-api")
    clean = dq.clean_stream(minutes=4)
    i = dq.first(clean, BookDelta, T0 + 2 * MINUTE + 200_000)
    events = clean[:i] + clean[i + 1 :]  # one u gap, then a desync until the next snapshot
    asyncio.run(_store_raw(tmp / "raw", events))
    return tmp, events


@pytest.fixture
def client(stored: tuple[Path, list]) -> Iterator[TestClient]:
    tmp, _ = stored
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp,
        api_keys=[KEY],
        replay_enabled=False,
        retention_days=100_000,  # the fixture's data is from 2025: keep it in the hot store
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        yield tc


def _get(client: TestClient, **params: str) -> object:
    return client.get("/data-quality/report", params=params, headers={"X-API-Key": KEY})


def test_report_of_a_stored_period(client: TestClient, stored: tuple[Path, list]) -> None:
    _, events = stored
    r = _get(client, symbol="BTCUSDT", **{"from": _iso(T0), "to": _iso(T0 + 4 * MINUTE)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= CONTRACT_FIELDS
    assert body["period_start"] == "2025-11-24T16:00:00.000000Z"
    assert (body["sequence_gaps"], body["desynchronization_events"]) == (1, 1)
    assert 0 <= body["missing_rate"] <= 1 and 0 <= body["anomaly_rate"] <= 1
    assert body["source"] == "raw_replay"
    assert [i["kind"] for i in body["incidents"]] == ["u_gap", "book_desync"]
    assert body["messages"]["orderbook"] == sum(1 for e in events if e.topic.startswith("order"))
    assert body["recommendations"]
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    saved = client.portal.call(
        runtime.store.latest_quality_report,
        "BTCUSDT",
        datetime.fromtimestamp(T0 / 1e6, tz=UTC),
        datetime.fromtimestamp((T0 + 4 * MINUTE) / 1e6, tz=UTC),
    )
    assert saved is not None and str(saved.id) == body["id"]
    assert (saved.sequence_gaps, saved.desynchronization_events) == (1, 1)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-11-24T17:00:00Z", "2025-11-24T16:00:00Z"),  # backwards
        ("2025-11-24T16:00:00Z", "2025-11-24T16:00:00Z"),  # empty
        ("2025-10-01T00:00:00Z", "2025-11-24T00:00:00Z"),  # longer than 31 days
        ("yesterday", "2025-11-24T16:00:00Z"),  # not a date-time
    ],
)
def test_invalid_period_is_400(client: TestClient, start: str, end: str) -> None:
    r = _get(client, symbol="BTCUSDT", **{"from": start, "to": end})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "message", "trace_id"}


def test_report_needs_an_api_key(client: TestClient) -> None:
    r = client.get(
        "/data-quality/report",
        params={"symbol": "BTCUSDT", "from": _iso(T0), "to": _iso(T0 + MINUTE)},
    )
    assert r.status_code == 401


def test_report_is_in_the_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/data-quality/report"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"symbol", "from", "to"}
    schema = doc["components"]["schemas"]["DataQualityReportOut"]
    assert set(schema["properties"]) >= CONTRACT_FIELDS
