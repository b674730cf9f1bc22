"""Reproducibility manifest: same inputs, same content hash; created_at stays out of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feature_service.datasets.manifest import (
    build_manifest,
    manifest_hash,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from feature_service.datasets.request import DatasetBuildRequest, Period
from feature_service.datasets.splits import walk_forward_folds
from feature_service.registry.loader import Registry, load_registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def request(**overrides: Any) -> DatasetBuildRequest:
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "split_strategy": "time_based",
        "train_period_start": "2024-01-01T00:00:00Z",
        "train_period_end": "2024-02-01T00:00:00Z",
        "validation_period_start": "2024-02-01T00:00:00Z",
        "validation_period_end": "2024-02-08T00:00:00Z",
        "test_period_start": "2024-02-08T00:00:00Z",
        "test_period_end": "2024-02-15T00:00:00Z",
        "target_config": {"type": "classification", "horizon": 300, "threshold": 0.002},
        "feature_registry_version": "1.1.0",
    }
    body.update(overrides)
    return DatasetBuildRequest.model_validate(body)


def manifest(registry: Registry, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "request": request(),
        "registry": registry,
        "package_version": "0.1.0",
        "data_range": (datetime(2023, 12, 31), datetime(2024, 2, 15, 0, 5)),
        "raw_files": {
            "trades/2024-01-02/BTCUSDT.parquet": "bb",
            "trades/2024-01-01/BTCUSDT.parquet": "aa",
        },
        "split_counts": {"train": 100, "validation": 20, "test": 10},
        "fold_info": None,
        "file_hashes": {"train.parquet": "11", "validation.parquet": "22", "test.parquet": "33"},
        "created_at": datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
    }
    args.update(overrides)
    return build_manifest(**args)


def test_same_inputs_same_manifest_except_created_at(registry: Registry) -> None:
    a = manifest(registry)
    b = manifest(registry, created_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert a["created_at"] == "2024-03-01T12:00:00Z"
    assert b["created_at"] == "2025-01-01T00:00:00Z"
    assert a["content_sha256"] == b["content_sha256"]
    assert {k: v for k, v in a.items() if k != "created_at"} == {
        k: v for k, v in b.items() if k != "created_at"
    }
    assert verify_manifest(a) and verify_manifest(b)
    assert manifest_hash(a) == a["content_sha256"]


def test_manifest_records_what_a_rebuild_needs(registry: Registry) -> None:
    m = manifest(registry)
    assert m["package"] == {"name": "feature-service", "version": "0.1.0"}
    assert m["registry"]["version"] == "1.1.0"
    assert m["registry"]["sha256"] == registry.sha256
    assert m["registry"]["features"] == list(registry.feature_names)
    assert m["registry"]["lookback_s"]["relative_volume_24h"] == 86_400
    assert m["registry"]["inputs"] == ["clock", "funding", "kline", "orderbook", "ticker", "trades"]
    assert m["leakage"] == {"horizon_s": 300, "purge_s": 300, "embargo_s": 86_400}
    assert m["request"]["target_config"] == {
        "type": "classification",
        "horizon": 300,
        "threshold": 0.002,
    }
    assert m["request"]["train_period_start"] == "2024-01-01T00:00:00Z"
    assert m["data_range"] == {"start": "2023-12-31T00:00:00Z", "end": "2024-02-15T00:05:00Z"}
    assert m["raw_files"] == [  # sorted by path
        {"path": "trades/2024-01-01/BTCUSDT.parquet", "sha256": "aa"},
        {"path": "trades/2024-01-02/BTCUSDT.parquet", "sha256": "bb"},
    ]
    assert m["splits"] == {"test": 10, "train": 100, "validation": 20}
    assert m["folds"] is None


@pytest.mark.parametrize(
    "change",
    [
        {"package_version": "0.1.1"},
        {"file_hashes": {"train.parquet": "12", "validation.parquet": "22", "test.parquet": "33"}},
        {"split_counts": {"train": 101, "validation": 20, "test": 10}},
        {"raw_files": ["trades/2024-01-01/BTCUSDT.parquet"]},
        {"data_range": Period(0, 1)},
        {"request": request(output_format="csv")},
        {"request": request(features=["mid_price"])},
    ],
)
def test_any_input_change_changes_the_hash(registry: Registry, change: dict[str, Any]) -> None:
    assert manifest(registry, **change)["content_sha256"] != manifest(registry)["content_sha256"]


def test_input_order_does_not_matter(registry: Registry) -> None:
    a = manifest(registry, raw_files=["b.parquet", "a.parquet"])
    b = manifest(registry, raw_files=["a.parquet", "b.parquet"])
    assert a["content_sha256"] == b["content_sha256"]
    assert a["raw_files"] == [
        {"path": "a.parquet", "sha256": None},
        {"path": "b.parquet", "sha256": None},
    ]


def test_tampering_is_detected(registry: Registry) -> None:
    m = manifest(registry)
    m["splits"]["train"] = 99
    assert not verify_manifest(m)


def test_written_manifest_is_sorted_and_stable(tmp_path: Path, registry: Registry) -> None:
    m = manifest(registry)
    first = write_manifest(tmp_path / "a", m)
    second = write_manifest(tmp_path / "b", manifest(registry))
    assert first.name == "manifest.json"
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert text.endswith("}\n")
    assert json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n" == text
    assert read_manifest(tmp_path / "a") == m
    assert verify_manifest(read_manifest(first))


def test_walk_forward_fold_info_is_recorded(registry: Registry) -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    hours = range(0, 60 * 24)
    df = pd.DataFrame(
        {
            "timestamp": (t0 + pd.to_timedelta(list(hours), unit="h")).as_unit("us"),
            "mid_price": [100.0 + h for h in hours],
        }
    )
    req = request(
        split_strategy="walk_forward",
        walk_forward_config={
            "train_window_days": 30,
            "validation_window_days": 7,
            "step_days": 7,
            "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-03-01T00:00:00Z",
            "min_train_samples": 100,
        },
    )
    assert req.walk_forward_config is not None
    folds = walk_forward_folds(df, req.walk_forward_config, 3600, 86_400)
    fold_info = [f.info() for f in folds]
    m = manifest(registry, request=req, fold_info=fold_info)
    assert [f["index"] for f in m["folds"]] == [0, 1, 2, 3]
    assert m["folds"][3]["role"] == "test"
    assert m["folds"][0]["train"]["period_start"] == "2024-01-01T00:00:00Z"
    assert m["folds"][0]["validation"]["records"] == 6 * 24  # 7 days minus the 1-day embargo
    again = manifest(registry, request=req, fold_info=[f.info() for f in folds])
    assert again["content_sha256"] == m["content_sha256"]
    json.dumps(m)  # serialisable as is
