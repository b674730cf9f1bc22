"""The reproducibility manifest written next to a dataset's split files (FR-050).

It records everything a rebuild needs to give the same bytes — the request, the registry
(version and file hash), the package version, the leakage cuts, the raw inputs, and the
hashes of the outputs. ``content_sha256`` hashes all of it except ``created_at``, so two
builds from the same inputs have the same content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_service.datasets.leakage import LeakageGuard
from feature_service.datasets.request import DatasetBuildRequest, Period, to_utc

if TYPE_CHECKING:
    from feature_service.registry.loader import Registry

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
UNHASHED = frozenset({"created_at", "content_sha256"})


def _iso(value: datetime) -> str:
    return to_utc(value).isoformat().replace("+00:00", "Z")


def _range(data_range: Period | tuple[datetime, datetime]) -> dict[str, str]:
    if isinstance(data_range, Period):
        return data_range.to_dict()
    start, end = data_range
    return {"start": _iso(start), "end": _iso(end)}


def _raw(raw_files: Mapping[str, str] | Iterable[str]) -> list[dict[str, str | None]]:
    if isinstance(raw_files, Mapping):
        items = [(str(p), str(h)) for p, h in raw_files.items()]
        return [{"path": p, "sha256": h} for p, h in sorted(items)]
    return [{"path": p, "sha256": None} for p in sorted(str(p) for p in raw_files)]


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest without its unhashed fields (``created_at``, the hash itself)."""
    body = {k: v for k, v in manifest.items() if k not in UNHASHED}
    return hashlib.sha256(_canonical(body)).hexdigest()


def build_manifest(
    request: DatasetBuildRequest,
    registry: Registry,
    package_version: str,
    data_range: Period | tuple[datetime, datetime],
    raw_files: Mapping[str, str] | Iterable[str],
    split_counts: Mapping[str, Any],
    fold_info: Sequence[Mapping[str, Any]] | None,
    file_hashes: Mapping[str, str],
    *,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """``raw_files``: path -> sha256, or bare paths; ``split_counts``: split -> records (or
    its info dict); ``fold_info``: ``Fold.info()`` per fold for walk-forward, else None;
    ``file_hashes``: output file name -> sha256."""
    guard = LeakageGuard.for_request(request, registry)
    lookbacks = registry.lookbacks
    features = request.selected_features(registry)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "package": {"name": "feature-service", "version": package_version},
        "request": request.model_dump(mode="json"),
        "registry": {
            "version": registry.version,
            "sha256": registry.sha256,
            "features": list(features),
            "lookback_s": {name: lookbacks[name] for name in features},
            # the data types the version's features read (what a rebuild must have stored)
            "inputs": sorted(registry.plan.inputs) if registry.plan is not None else [],
        },
        "leakage": {
            "horizon_s": guard.horizon_s,
            "purge_s": guard.purge_s,
            "embargo_s": guard.embargo_s,
        },
        "data_range": _range(data_range),
        "raw_files": _raw(raw_files),
        "splits": {str(k): v for k, v in sorted(split_counts.items())},
        "folds": None if fold_info is None else [dict(f) for f in fold_info],
        "files": {str(k): str(v) for k, v in sorted(file_hashes.items())},
    }
    manifest["content_sha256"] = manifest_hash(manifest)
    manifest["created_at"] = _iso(created_at or datetime.now(UTC))
    return manifest


def verify_manifest(manifest: Mapping[str, Any]) -> bool:
    """True when the manifest's content matches its recorded hash."""
    return manifest.get("content_sha256") == manifest_hash(manifest)


def write_manifest(directory: Path | str, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` (sorted keys, two-space indent) atomically into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    tmp = path.with_name(path.name + ".partial")
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a manifest")
    return data
