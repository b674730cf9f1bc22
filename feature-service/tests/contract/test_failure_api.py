"""HTTP behaviour under faults (issue 9): truthful /health, 503 with Retry-After when the
metadata store does not answer, 405 with Allow, bounded dataset requests, cancellation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from feature_service.app import create_app
from feature_service.config import Settings

KEY = "test-key"
H = {"X-API-Key": KEY}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY],
        replay_enabled=False,
        intervals=[1],
        db_timeout_s=0.5,
        health_timeout_s=0.5,
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        yield tc


def _request(start: str, end: str) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": start,
        "train_period_end": "2026-01-01T00:20:00",
        "validation_period_start": "2026-01-01T00:20:00",
        "validation_period_end": "2026-01-01T00:25:00",
        "test_period_start": "2026-01-01T00:25:00",
        "test_period_end": end,
        "target_config": {"type": "regression", "horizon": 10},
        "feature_registry_version": "1.1.0",
        "features": ["mid_price"],
    }


def test_position_manager_is_not_applicable_and_health_lists_the_new_checks(
    client: TestClient,
) -> None:
    body = client.get("/health").json()
    assert body["services"]["position_manager"] == "not_applicable"
    assert {"raw_storage", "market_data"} <= set(body["checks"])
    assert body["checks"]["raw_storage"]["ok"] is True


def test_health_is_not_ready_while_raw_storage_fails(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    writer = runtime.raw_writer
    writer._failed.append(object())  # a batch waiting for its retry
    writer.failure = "OSError: [Errno 28] No space left on device"
    try:
        r = client.get("/health")
        assert r.status_code == 503
        check = r.json()["checks"]["raw_storage"]
        assert check["ok"] is False and "No space left" in check["reason"]
    finally:
        writer._failed.clear()
        writer.failure = None
    assert client.get("/health").status_code == 200


def test_a_store_that_does_not_answer_gives_503_with_retry_after_in_bounded_time(
    client: TestClient,
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    inner = runtime.store.inner
    original = inner.list_datasets

    async def hang(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(60)

    inner.list_datasets = hang
    try:
        started = time.monotonic()
        r = client.get("/dataset/list", headers=H)
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json()["error"] == "unavailable"
        assert elapsed < 30, "bounded by db_timeout_s, not the 60 s hang"
    finally:
        inner.list_datasets = original
    assert client.get("/dataset/list", headers=H).status_code == 200  # recovered, no restart


def test_405_carries_allow(client: TestClient) -> None:
    r = client.put("/dataset/list", headers=H)
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    r = client.delete("/health")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_an_absurd_dataset_period_is_400_with_the_limit(client: TestClient) -> None:
    r = client.post(
        "/dataset/build", headers=H, json=_request("0001-01-01T00:00:00", "9999-12-31T00:00:00")
    )
    assert r.status_code == 400
    assert "366 days" in r.json()["message"]


def test_cancel_of_an_unknown_dataset_is_404(client: TestClient) -> None:
    r = client.post(f"/dataset/{uuid.uuid4()}/cancel", headers=H)
    assert r.status_code == 404
