"""`feature-service registry ...` on the service's own SQLite database and versions folder."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from feature_service.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEATURE_SERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FEATURE_SERVICE_DATABASE_URL", raising=False)
    # No service answers where the settings say it runs: activate falls back to the database.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("FEATURE_SERVICE_PORT", str(port))
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["registry", *args])
    return result.exit_code, result.stdout


def test_validate_reports_rules_and_exit_code(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"version": "2.0.0", "features": [{"name": "rsi_7"}]}))
    code, out = _run("validate", str(good))
    assert code == 0 and json.loads(out)["features"] == ["rsi_7"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"version": "2.0.0", "features": [{"name": "rsi_1"}]}))
    code, out = _run("validate", str(bad))
    assert code == 1 and "feature rsi_1: unknown_family" in out


def test_create_list_activate_show_rollback(env: Path, tmp_path: Path) -> None:
    source = tmp_path / "v2.yaml"
    source.write_text(yaml.safe_dump({"version": "2.0.0", "features": [{"name": "mid_price"}]}))
    code, out = _run("create", str(source), "--by", "ops")
    assert code == 0, out
    assert Path(json.loads(out)["file_path"]) == env / "registry" / "feature_registry_v2.0.0.yaml"
    code, out = _run("list")
    assert [(v["version"], v["is_active"]) for v in json.loads(out)] == [
        ("2.0.0", False),
        ("1.1.0", True),
    ]
    code, out = _run("activate", "2.0.0")
    assert code == 1  # dropping 47 features is breaking
    code, out = _run("activate", "2.0.0", "--acknowledge-breaking-changes", "--reason", "smaller")
    assert code == 0, out
    done = json.loads(out)
    assert done["previous_version"] == "1.1.0"
    # said plainly: the running service does not compute it until a reload
    assert "database only" in done["note"] and "registry reload" in done["note"]
    code, out = _run("show", "2.0.0")
    shown = json.loads(out)
    assert shown["is_active"] is True and [a[1] for a in shown["audit"]] == ["create", "activate"]
    code, out = _run("rollback", "--reason", "back")
    assert code == 0 and json.loads(out)["rolled_back_to"] == "1.1.0"
    assert _run("show", "9.9.9")[0] == 1


def test_an_explicit_url_that_does_not_answer_changes_nothing(env: Path, tmp_path: Path) -> None:
    source = tmp_path / "v2.yaml"
    source.write_text(yaml.safe_dump({"version": "2.0.0", "features": [{"name": "mid_price"}]}))
    assert _run("create", str(source))[0] == 0
    port = os.environ["FEATURE_SERVICE_PORT"]
    args = ("--acknowledge-breaking-changes", "--url", f"http://127.0.0.1:{port}")
    assert _run("activate", "2.0.0", *args)[0] == 1
    out = _run("list")[1]
    assert [(v["version"], v["is_active"]) for v in json.loads(out)] == [
        ("2.0.0", False),
        ("1.1.0", True),
    ]
    assert _run("reload")[0] == 1  # nothing to reload without a service
