"""The foundation's done-when: `feature-service compute` on the bundled sample writes Parquet in
which every documented feature is non-null after warm-up; docs, registry and catalog agree."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from feature_service.cli import app
from feature_service.engine.core import FeatureEngine
from feature_service.features.catalog import FEATURE_NAMES
from feature_service.market.events import MarketEvent
from feature_service.registry.loader import load_registry

DOCS = Path(__file__).resolve().parents[3] / "docs" / "features.md"


def test_compute_on_the_bundled_sample_fills_every_feature_after_warm_up(
    tmp_path: Path, sample_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(
        app, ["compute", "--input", str(sample_path), "--output", str(out), "--interval", "1s"]
    )
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert list(df.columns[3 : 3 + len(FEATURE_NAMES)]) == list(FEATURE_NAMES)
    assert df["timestamp"].is_monotonic_increasing
    # The dense part is the last 20 minutes; 5 minutes warm the longest time window up.
    warm = df[df["timestamp"] >= df["timestamp"].max() - pd.Timedelta(minutes=14)]
    assert len(warm) == 14 * 60 + 1
    nulls = {name: int(n) for name, n in warm[list(FEATURE_NAMES)].isna().sum().items() if n}
    assert nulls == {}
    assert (warm["mid_price"] > 90_000).all() and (warm["spread_abs"] > 0).all()
    assert warm["rsi_14"].between(0, 100).all()


def test_docs_registry_and_catalog_name_the_same_features() -> None:
    # Every feature has its own table row: "| name | formula | ...".
    documented = set(re.findall(r"^\| `?([a-z0-9_]+)`? \|", DOCS.read_text(), re.MULTILINE))
    missing = [name for name in FEATURE_NAMES if name not in documented]
    assert missing == []
    assert load_registry().feature_names == FEATURE_NAMES


def test_slow_computations_are_counted_and_logged(sample_events: list[MarketEvent]) -> None:
    engine = FeatureEngine(intervals_s=[1], latency_warning_ms=0.0)
    for event in sample_events[:2000]:
        engine.process(event)
    assert engine.vectors_emitted > 0
    assert engine.slow_computations == engine.vectors_emitted
    assert engine.last_computation_us > 0
