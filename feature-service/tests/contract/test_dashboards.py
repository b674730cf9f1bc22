"""Every Grafana panel query names only metrics the service really exports: the names are
checked against a live /metrics scrape of the running app (families and their sample suffixes,
so a labelled family with no samples yet still counts, as it does for Prometheus)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feature_service.app import create_app
from feature_service.config import Settings
from tests.fixtures import events as ev

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
KEY = "k"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}
METRIC_RE = re.compile(r"\bfeature_service_[a-z0-9_]+")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("dash"),
        api_keys=[KEY],
        replay_enabled=False,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        runtime = app.state.runtime
        t0 = time.time_ns() // 1000  # now: the parser's time window is around the receive time

        def feed() -> None:
            for i in range(3):
                runtime.live.ingest(ev.body(ev.trade(t0 + i, i)), settings.queue_trade)

        client.portal.call(feed)
        client.get("/stats/service", headers={"X-API-Key": KEY})
        text = client.get("/metrics", headers={"X-API-Key": KEY}).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    yield names


def queries(path: Path) -> list[tuple[str, str]]:
    """Prometheus queries (``expr``) of every panel."""
    doc = json.loads(path.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in doc["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def sql_queries(path: Path) -> list[tuple[str, str]]:
    doc = json.loads(path.read_text())
    return [
        (panel["title"], target["rawSql"])
        for panel in doc["panels"]
        for target in panel.get("targets", [])
        if "rawSql" in target
    ]


def migration_columns() -> dict[str, set[str]]:
    """Table -> columns, read from migration 026 (the metrics tables the SQL panels query)."""
    sql = (REPO / "ws-gateway/migrations/026_create_operations_metrics_tables.sql").read_text()
    tables = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", sql, re.S):
        tables[name] = {line.split()[0] for line in body.strip().splitlines() if line[4:5] != " "}
    return tables


def test_sql_panels_query_the_metrics_tables_columns() -> None:
    tables = migration_columns()
    assert set(tables) == {
        "feature_computation_metrics", "dataset_building_metrics", "api_endpoint_metrics"
    }  # fmt: skip
    seen = 0
    for path in DASHBOARDS:
        for title, sql in sql_queries(path):
            seen += 1
            [table] = re.findall(r"FROM (\w+)", sql)
            assert table in tables, (title, table)
            selected = re.search(r"SELECT (.*?) FROM", sql, re.S)
            assert selected is not None
            for item in selected.group(1).split(","):
                column = item.split()[0]
                assert column in tables[table], (title, column)
    assert seen >= 3


def test_there_are_three_dashboards_with_panels() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {
        "Feature Service: overview",
        "Feature Service: data quality",
        "Feature Service: datasets and backfills",
    }
    for path in DASHBOARDS:
        assert len(queries(path)) >= 4, path.name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_names_an_exported_metric(path: Path, exported: set[str]) -> None:
    for title, expr in queries(path):
        names = METRIC_RE.findall(expr)
        assert names, f"{title}: no feature_service metric in {expr!r}"
        missing = [n for n in names if n not in exported]
        assert not missing, f"{path.name} / {title}: {missing} not in /metrics"


def test_the_overview_covers_throughput_latency_lag_and_errors() -> None:
    overview = " ".join(
        e for _t, e in queries(REPO / "grafana/dashboards/feature-service-overview.json")
    )
    for needle in (
        "feature_service_messages_consumed_total",
        "histogram_quantile(0.95",
        "feature_service_consumer_lag_messages",
        "feature_service_messages_rejected_total",
    ):
        assert needle in overview
