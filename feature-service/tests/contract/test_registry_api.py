"""HTTP contract of every ``/feature-registry*`` route, on SQLite and on the real PostgreSQL:
status codes and bodies, versions as files (hand edits detected by hash, synced), compatibility
acknowledgement, activation with hot switch, rollback, usage, deletion, audit trail, start-up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from feature_service.app import create_app
from feature_service.config import Settings
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.events import MarketEvent
from feature_service.market.recording import event_to_envelope
from feature_service.services.runtime import Runtime

pytest_plugins = ["tests.fixtures.metadata"]

KEY = "test-key"
H = {"X-API-Key": KEY}
NEW_NAMES = [n for n in FEATURE_NAMES if n != "slope_bid"] + ["vwap_30s", "rsi_7"]


class StepClock:
    def __init__(self) -> None:
        self.now = 0

    def now_us(self) -> int:
        return self.now

    def sleep_seconds_until(self, t_us: int) -> float:
        return 3600.0


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        api_keys=[KEY],
        replay_enabled=False,
        intervals=[1],
    )


@pytest.fixture
def app_factory(tmp_path: Path, store_factory: Any) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make() -> TestClient:
        settings = _settings(tmp_path)
        runtime = Runtime(settings, store=store_factory())
        tc = TestClient(create_app(settings, runtime))
        tc.__enter__()
        clients.append(tc)
        return tc

    yield make
    for tc in clients:
        tc.__exit__(None, None, None)


def _feed(client: TestClient, events: list[MarketEvent], clock: StepClock) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]

    def feed() -> None:
        runtime.live.clock = clock
        for event in events:
            clock.now = event.receive_ts
            runtime.live.ingest(json.dumps(event_to_envelope(event, include_service_time=False)))

    client.portal.call(feed)  # type: ignore[union-attr]


def _config(version: str, names: list[str]) -> dict[str, Any]:
    return {"version": version, "features": [{"name": n} for n in names]}


def test_active_registry_is_the_bundled_one_migrated_at_start_up(app_factory: Any) -> None:
    client = app_factory()
    body = client.get("/feature-registry", headers=H).json()
    assert body["version"] == "1.1.0" and body["is_active"] is True
    assert [f["name"] for f in body["config"]["features"]] == list(FEATURE_NAMES)
    assert body["file_modified"] is False
    assert Path(body["file_path"]).name == "feature_registry_v1.1.0.yaml"
    assert client.get("/feature-registry/validate", headers=H).json() == {
        "is_valid": True,
        "validation_errors": [],
        "warnings": [],
    }
    listed = client.get("/feature-registry/versions", headers=H).json()
    assert [(v["version"], v["is_active"], v["usage_count"]) for v in listed] == [
        ("1.1.0", True, 0)
    ]
    assert client.get("/feature-registry").status_code == 401


def test_create_refuses_invalid_and_duplicate_versions(app_factory: Any) -> None:
    client = app_factory()
    bad = client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", ["vwap_30s", "future_price"])},
    )
    assert bad.status_code == 400
    assert "feature future_price: unknown_family" in bad.json()["message"]
    assert (
        client.post("/feature-registry/versions", headers=H, json={"version": "x"}).status_code
        == 422
    )
    made = client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", NEW_NAMES), "created_by": "ana"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["is_active"] is False and body["created_by"] == "ana"
    assert body["previous_version"] == "1.1.0" and body["validation_errors"] == []
    assert Path(body["file_path"]).read_bytes()
    assert [a["action"] for a in body["audit"]] == ["create"]
    again = client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", NEW_NAMES)},
    )
    assert again.status_code == 409
    assert client.get("/feature-registry/versions/9.9.9", headers=H).status_code == 404


def test_activate_needs_acknowledgement_switches_and_rolls_back(
    app_factory: Any, sample_events: list[MarketEvent]
) -> None:
    client = app_factory()
    client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", NEW_NAMES)},
    )
    refused = client.post("/feature-registry/versions/2.0.0/activate", headers=H)
    assert refused.status_code == 400
    assert "removed: slope_bid" in refused.json()["message"]
    assert client.post("/feature-registry/versions/3.0.0/activate", headers=H).status_code == 404

    done = client.post(
        "/feature-registry/versions/2.0.0/activate",
        headers=H,
        json={
            "acknowledge_breaking_changes": True,
            "activation_reason": "try rsi_7",
            "created_by": "ana",
        },
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["activated"] is True and body["previous_version"] == "1.1.0"
    assert body["breaking_changes"] == ["removed: slope_bid"]
    assert any(w.startswith("added: vwap_30s") for w in body["compatibility_warnings"])
    assert client.get("/feature-registry", headers=H).json()["version"] == "2.0.0"

    # vectors now carry 2.0.0 and its features
    _feed(client, sample_events[:3000], StepClock())
    # include_nulls: the full key set of the version (by default only computed values appear)
    query = {"symbol": "BTCUSDT", "include_nulls": "true"}
    latest = client.get("/features/latest", params=query, headers=H).json()
    assert latest["feature_registry_version"] == "2.0.0"
    assert list(latest["features"]) == NEW_NAMES

    usage = client.get("/feature-registry/versions/2.0.0/usage", headers=H).json()
    assert usage["is_active"] is True and usage["can_delete"] is False
    assert usage["feature_computations_count"] > 0 and usage["active_datasets_count"] == 0
    deleted = client.delete("/feature-registry/versions/2.0.0", headers=H)
    assert deleted.status_code == 400

    # The switch back happens at the next boundary: events keep flowing meanwhile.
    result: dict[str, Any] = {}
    poster = threading.Thread(
        target=lambda: result.update(
            r=client.post("/feature-registry/rollback", headers=H, json={"rollback_reason": "bad"})
        )
    )
    poster.start()
    time.sleep(1.0)
    _feed(client, sample_events[3000:4000], StepClock())
    poster.join(30)
    rolled = result["r"]
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["rolled_back_from"] == "2.0.0"
    assert rolled.json()["rolled_back_to"] == "1.1.0"
    assert rolled.json()["rollback_reason"] == "bad"
    assert client.get("/feature-registry", headers=H).json()["version"] == "1.1.0"
    audit = client.get("/feature-registry/versions/1.1.0", headers=H).json()["audit"]
    assert [a["action"] for a in audit] == ["create", "activate", "rollback"]
    assert audit[-1]["reason"] == "bad"
    # 2.0.0 computed vectors in the last 24 h: still in use
    assert client.delete("/feature-registry/versions/2.0.0", headers=H).status_code == 400


def test_computations_still_count_after_a_restart(
    app_factory: Any, sample_events: list[MarketEvent]
) -> None:
    """The 24 h computation count is in the database (migration 027), not only in memory: a
    restarted service still sees the version in use."""
    client = app_factory()
    client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", NEW_NAMES)},
    )
    activated = client.post(
        "/feature-registry/versions/2.0.0/activate",
        headers=H,
        json={"acknowledge_breaking_changes": True},
    )
    assert activated.status_code == 200, activated.text
    clock = StepClock()
    _feed(client, sample_events[:2000], clock)
    path = "/feature-registry/versions/2.0.0/usage"
    counted = client.get(path, headers=H).json()["feature_computations_count"]
    assert counted > 0
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.portal.call(runtime.usage.flush, runtime.store)  # type: ignore[union-attr]
    again = app_factory()  # a new process on the same database
    again.app.state.runtime.live.clock = clock  # type: ignore[attr-defined]
    assert again.get(path, headers=H).json()["feature_computations_count"] == counted


def test_rollback_without_previous_version_is_400(app_factory: Any) -> None:
    client = app_factory()
    assert client.post("/feature-registry/rollback", headers=H).status_code == 400


def test_hand_edited_file_is_detected_and_synced(app_factory: Any) -> None:
    client = app_factory()
    made = client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.1.0", "config": _config("2.1.0", ["mid_price", "vwap_30s"])},
    ).json()
    path = Path(made["file_path"])
    path.write_text(yaml.safe_dump(_config("2.1.0", ["mid_price", "vwap_30s", "rsi_7"])))
    seen = client.get("/feature-registry/versions/2.1.0", headers=H).json()
    assert seen["file_modified"] is True
    synced = client.post("/feature-registry/versions/2.1.0/sync-file", headers=H)
    assert synced.status_code == 200, synced.text
    assert synced.json()["file_modified"] is False
    assert [f["name"] for f in synced.json()["config"]["features"]][-1] == "rsi_7"
    path.write_text(yaml.safe_dump(_config("2.1.0", ["mid_price", "vwap_3x"])))
    broken = client.post("/feature-registry/versions/2.1.0/sync-file", headers=H)
    assert broken.status_code == 400 and "vwap_3x" in broken.json()["message"]
    # an invalid hand edit of a version makes its activation fail and keeps 1.1.0
    failed = client.post(
        "/feature-registry/versions/2.1.0/activate",
        headers=H,
        json={"acknowledge_breaking_changes": True},
    )
    assert failed.status_code == 409
    body = failed.json()
    assert body["rolled_back_from"] == "2.1.0" and body["rolled_back_to"] == "1.1.0"
    assert "vwap_3x" in body["rollback_reason"] and body["rollback_timestamp"]
    assert client.get("/feature-registry", headers=H).json()["version"] == "1.1.0"
    # an inactive, unused version can go: row and file
    path.write_text(yaml.safe_dump(_config("2.1.0", ["mid_price"])))
    assert client.delete("/feature-registry/versions/2.1.0", headers=H).status_code == 204
    assert not path.exists()
    assert client.get("/feature-registry/versions/2.1.0", headers=H).status_code == 404
    assert client.delete("/feature-registry/versions/2.1.0", headers=H).status_code == 404


def test_reload_applies_an_edited_active_file(app_factory: Any) -> None:
    client = app_factory()
    current = client.get("/feature-registry", headers=H).json()
    path = Path(current["file_path"])
    edited = {**current["config"], "features": [*current["config"]["features"], {"name": "rsi_7"}]}
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    assert client.get("/feature-registry", headers=H).json()["file_modified"] is True
    reloaded = client.post("/feature-registry/reload", headers=H)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["file_modified"] is False
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.engine.plan.names[-1] == "rsi_7"
    path.write_text("version: [broken")
    assert client.post("/feature-registry/reload", headers=H).status_code == 400
    validated = client.get("/feature-registry/validate", headers=H).json()
    assert validated["is_valid"] is False and validated["warnings"]


def test_reload_picks_up_a_version_activated_in_the_database(app_factory: Any) -> None:
    """``registry activate --db-only`` changes the database only; the running service applies
    it on reload (hot switch), or puts the database back when applying it fails."""
    client = app_factory()
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for version in ("2.0.0", "3.0.0"):
        made = client.post(
            "/feature-registry/versions",
            headers=H,
            json={"version": version, "config": _config(version, NEW_NAMES)},
        )
        assert made.status_code == 201, made.text
    client.portal.call(runtime.store.activate_registry_version, "2.0.0", "cli", "db only")  # type: ignore[union-attr]
    assert runtime.engine.plan.names == tuple(FEATURE_NAMES)  # not applied by itself
    reloaded = client.post("/feature-registry/reload", headers=H)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["version"] == "2.0.0"
    assert runtime.engine.plan.names == tuple(NEW_NAMES)
    assert runtime.registry.version == runtime.datasets.registry.version == "2.0.0"
    audit = client.get("/feature-registry/versions/2.0.0", headers=H).json()["audit"]
    assert [a["action"] for a in audit] == ["create", "activate"]

    async def failing(_registry: Any) -> str:
        return "first computation of 3.0.0 failed for BTCUSDT: boom"

    runtime.registry_service.apply = failing
    client.portal.call(runtime.store.activate_registry_version, "3.0.0", "cli", "db only")  # type: ignore[union-attr]
    refused = client.post("/feature-registry/reload", headers=H)
    assert refused.status_code == 400
    assert "boom" in refused.json()["message"] and "2.0.0 stays active" in refused.json()["message"]
    current = client.get("/feature-registry/versions/2.0.0", headers=H).json()
    assert current["is_active"] is True and current["previous_version"] == "1.1.0"
    assert runtime.engine.plan.names == tuple(NEW_NAMES)
    audit = client.get("/feature-registry/versions/3.0.0", headers=H).json()["audit"]
    assert [a["action"] for a in audit] == ["create", "activation_failed"]


def test_restart_loads_the_active_version_from_the_store(app_factory: Any) -> None:
    client = app_factory()
    client.post(
        "/feature-registry/versions",
        headers=H,
        json={"version": "2.0.0", "config": _config("2.0.0", NEW_NAMES)},
    )
    client.post(
        "/feature-registry/versions/2.0.0/activate",
        headers=H,
        json={"acknowledge_breaking_changes": True},
    )
    again = app_factory()  # a second service on the same store and folder
    assert again.get("/feature-registry", headers=H).json()["version"] == "2.0.0"
    assert again.app.state.runtime.engine.plan.names == tuple(NEW_NAMES)  # type: ignore[attr-defined]


def test_openapi_has_exactly_the_contract_registry_routes() -> None:
    from feature_service.api.openapi import export_openapi

    paths = json.loads(export_openapi())["paths"]
    routes = {
        (path, method)
        for path, ops in paths.items()
        if path.startswith("/feature-registry")
        for method in ops
    }
    assert routes == {
        ("/feature-registry", "get"),
        ("/feature-registry/reload", "post"),
        ("/feature-registry/validate", "get"),
        ("/feature-registry/versions", "get"),
        ("/feature-registry/versions", "post"),
        ("/feature-registry/versions/{version}", "get"),
        ("/feature-registry/versions/{version}", "delete"),
        ("/feature-registry/versions/{version}/activate", "post"),
        ("/feature-registry/versions/{version}/usage", "get"),
        ("/feature-registry/versions/{version}/sync-file", "post"),
        ("/feature-registry/rollback", "post"),
    }
    assert "204" in paths["/feature-registry/versions/{version}"]["delete"]["responses"]
    assert "409" in paths["/feature-registry/versions/{version}/activate"]["post"]["responses"]
