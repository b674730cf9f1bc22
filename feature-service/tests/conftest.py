"""Shared fixtures. Integration fixtures (RabbitMQ, PostgreSQL) live in tests/fixtures/."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from feature_service.market.events import Kline, MarketEvent
from feature_service.market.recording import iter_recording
from feature_service.sample.generator import default_sample_path

pytest_plugins = ["tests.fixtures.bus", "tests.fixtures.broker"]


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return Path(default_sample_path())


@pytest.fixture(scope="session")
def sample_events(sample_path: Path) -> list[MarketEvent]:
    """Four minutes of the sample's dense part (book, trades, tickers, klines), preceded by the
    last 120 warm-up candles: small enough for unit tests, rich enough to exercise every family."""
    events = iter(iter_recording(sample_path))
    warmup: list[MarketEvent] = []
    dense: list[MarketEvent] = []
    for event in events:
        if isinstance(event, Kline) and not dense:
            warmup.append(event)
            continue
        dense.append(event)
        break
    end = dense[0].receive_ts + 240_000_000
    dense.extend(itertools.takewhile(lambda e: e.receive_ts < end, events))
    return warmup[-120:] + dense
