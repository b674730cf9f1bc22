"""Settings come from FEATURE_SERVICE_* variables with embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_service.config import Settings


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RABBITMQ_URL", "DATABASE_URL", "PORT", "SYMBOLS", "API_KEYS"):
        monkeypatch.delenv(f"FEATURE_SERVICE_{key}", raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.port == 4500
    assert s.rabbitmq_url is None and s.database_url is None
    assert s.intervals == [1, 3, 15, 60]
    assert s.raw_dir == Path("data/raw")
    assert s.input_queues == {
        "orderbook": "ws-gateway.orderbook",
        "trade": "ws-gateway.trade",
        "kline": "ws-gateway.kline",
        "ticker": "ws-gateway.ticker",
        "funding": "ws-gateway.funding",
    }


def test_csv_variables_and_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_SERVICE_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.setenv("FEATURE_SERVICE_API_KEYS", "a,b")
    monkeypatch.setenv("FEATURE_SERVICE_INTERVALS", "60,1,1")
    monkeypatch.setenv("FEATURE_SERVICE_CONSUME_ORDERS", "true")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.symbols == ["BTCUSDT", "ETHUSDT"]
    assert s.api_keys == ["a", "b"]
    assert s.intervals == [1, 60]
    assert s.consume_orders and "order" not in s.input_queues  # executions have their own path


def test_bad_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_SERVICE_INTERVALS", "0")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_env_example_lists_every_setting() -> None:
    text = (Path(__file__).parents[3] / "env.example").read_text()
    for name in Settings.model_fields:
        assert f"FEATURE_SERVICE_{name.upper()}" in text, name


def test_upstream_defaults_ask_depth_50_and_leave_funding_to_the_ticker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.orderbook_depth, s.funding_stream, s.depth_source) == (50, False, "stream")
    assert (s.subscription_max_attempts, s.subscription_retry_interval_s) == (3, 300.0)
    assert "funding" not in s.expected_inputs and "funding" in s.input_queues
    monkeypatch.setenv("FEATURE_SERVICE_FUNDING_STREAM", "true")
    monkeypatch.setenv("FEATURE_SERVICE_ORDERBOOK_DEPTH", "200")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.orderbook_depth == 200 and "funding" in s.expected_inputs
    monkeypatch.setenv("FEATURE_SERVICE_SUBSCRIPTION_MAX_ATTEMPTS", "0")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]
