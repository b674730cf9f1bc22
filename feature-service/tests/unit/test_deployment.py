"""The compose stack and the image, checked without a Docker engine: structure, health-gated
start order, volumes, and that every variable they set is a real setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from feature_service.cli import app as cli_app
from feature_service.config import Settings

REPO = Path(__file__).resolve().parents[3]
PREFIX = "FEATURE_SERVICE_"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def setting_names() -> set[str]:
    return set(Settings.model_fields)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_the_stack_has_every_part_and_no_ws_gateway(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres", "rabbitmq", "migrate", "feature-service", "prometheus", "grafana"
    }  # fmt: skip
    assert "management" in services["rabbitmq"]["image"]
    text = (REPO / "docker-compose.yml").read_text()
    assert "ws-gateway is NOT defined here" in text and "its own project" in text
    env = env_of(services["feature-service"])
    assert "WS_GATEWAY_URL" in env[PREFIX + "WS_GATEWAY_URL"]  # pointed at it from outside


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            condition = rule["condition"]
            if target == "migrate":
                assert condition == "service_completed_successfully"
            else:
                assert condition == "service_healthy", (name, target)
                assert "healthcheck" in services[target], target
    assert set(services["feature-service"]["depends_on"]) == {"postgres", "rabbitmq", "migrate"}
    assert services["migrate"]["command"] == ["feature-service", "db", "upgrade"]
    for name in ("postgres", "rabbitmq", "feature-service", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_every_variable_the_stack_sets_is_a_setting(compose: dict[str, Any]) -> None:
    names = setting_names()
    seen = 0
    for name, service in compose["services"].items():
        for key in env_of(service):
            if key.startswith(PREFIX):
                seen += 1
                assert key.removeprefix(PREFIX).lower() in names, (name, key)
    assert seen >= 10
    # And they parse: the values the service gets (with the ${...:-default}s applied) load.
    raw = env_of(compose["services"]["feature-service"])
    values = {
        k.removeprefix(PREFIX).lower(): re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", v)
        for k, v in raw.items()
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.rabbitmq_url and settings.database_url
    assert settings.host == "0.0.0.0"


def test_volumes_keep_raw_data_datasets_and_registry_versions(compose: dict[str, Any]) -> None:
    service = compose["services"]["feature-service"]
    env = env_of(service)
    data_dir = env[PREFIX + "DATA_DIR"]
    targets = {}
    for mount in service["volumes"]:
        source, target = mount.split(":")[:2]
        targets[target] = source
        if source.startswith("."):
            assert (REPO / source).exists(), source
        else:
            assert source in compose["volumes"], source
    assert f"{data_dir}/raw" in targets
    assert f"{data_dir}/datasets" in targets
    assert "/app/config/versions" in targets


def test_prometheus_scrapes_the_service_with_its_key(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["feature-service:4500"]
    assert job["metrics_path"] == "/metrics"
    keys = env_of(compose["services"]["feature-service"])[PREFIX + "API_KEYS"].split(",")
    assert job["params"]["api_key"][0] in keys


def test_grafana_is_provisioned_with_the_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(m.split(":")[:2] for m in grafana["volumes"] if m.startswith("."))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./grafana/dashboards"] == "/var/lib/grafana/dashboards"
    providers = yaml.safe_load(
        (REPO / "grafana/provisioning/dashboards/dashboards.yml").read_text()
    )["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(
        (REPO / "grafana/provisioning/datasources/datasources.yml").read_text()
    )["datasources"]
    uids = {s["uid"] for s in sources}
    dashboards = sorted((REPO / "grafana/dashboards").glob("*.json"))
    assert len(dashboards) == 3
    for path in dashboards:
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])


def test_dockerfile_runs_serve_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["feature-service", "serve"]
    assert any((c.name or c.callback.__name__) == "serve" for c in cli_app.registered_commands)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'feature-service = "feature_service.cli:app"' in pyproject
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
        if line.startswith("ENV "):
            for key in re.findall(r"(FEATURE_SERVICE_[A-Z_]+)=", line):
                assert key.removeprefix(PREFIX).lower() in setting_names(), key
