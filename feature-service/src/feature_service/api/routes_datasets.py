"""Dataset endpoints (thin: the DatasetService does the work) and POST /model/evaluate."""

from __future__ import annotations

import tempfile
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from feature_service.adapters.metadata.records import DatasetRecord
from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError
from feature_service.api.schemas import ErrorOut
from feature_service.datasets import DatasetBuildRequest
from feature_service.engine.vector import interval_label
from feature_service.services.datasets import DatasetRequestError

router = APIRouter(tags=["datasets"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
PUBLIC_STATUS = {"queued": "building", "building": "building", "ready": "ready", "failed": "failed"}
METRICS = {
    "regression": ("mse", "rmse", "mae", "r2", "directional_accuracy"),
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "risk_adjusted": ("mse", "rmse", "mae", "r2", "directional_accuracy", "sharpe"),
}


class SplitInfoOut(BaseModel):
    records: int
    period_start: datetime | None = None
    period_end: datetime | None = None


class DatasetBuildResponseOut(BaseModel):
    dataset_id: uuid.UUID
    status: Literal["building", "ready", "failed"]
    state: Literal["queued", "building", "ready", "failed"] = Field(
        description="finer status: a queued build reports status 'building' and state 'queued'"
    )
    queue_position: int | None = Field(None, description="1 = next to run")
    estimated_completion: datetime | None
    splits_info: dict[str, SplitInfoOut] = Field(default_factory=dict)
    error_message: str | None = None


class DatasetListItemOut(BaseModel):
    dataset_id: uuid.UUID
    symbol: str
    status: Literal["building", "ready", "failed"]
    split_strategy: str
    train_records: int
    validation_records: int
    test_records: int
    feature_registry_version: str
    created_at: datetime
    completed_at: datetime | None


class DatasetMetadataOut(DatasetListItemOut):
    state: str
    train_period_start: datetime | None
    train_period_end: datetime | None
    validation_period_start: datetime | None
    validation_period_end: datetime | None
    test_period_start: datetime | None
    test_period_end: datetime | None
    walk_forward_config: dict[str, Any] | None
    target_config: dict[str, Any]
    output_format: str
    feature_interval: str
    storage_path: str | None
    estimated_completion: datetime | None
    error_message: str | None
    queue_position: int | None
    progress: dict[str, Any] | None = Field(
        None, description="stage, fraction (0-1), rows, elapsed_s, eta_s"
    )
    folds: list[dict[str, Any]] | None
    warnings: list[str]
    files: dict[str, str] = Field(default_factory=dict)
    download_urls: dict[str, str] = Field(default_factory=dict)


class ModelEvaluateIn(BaseModel):
    dataset_id: uuid.UUID
    split: Literal["test", "validation"]
    model_version: str = Field(min_length=1, max_length=100)
    metrics_to_compute: list[str] = Field(default_factory=list)


class ModelEvaluateOut(BaseModel):
    evaluation_id: uuid.UUID
    dataset_id: uuid.UUID
    split: str
    model_version: str
    metrics: list[str]
    prepared_dataset_url: str
    metadata: dict[str, Any]


def _list_item(rec: DatasetRecord) -> dict[str, Any]:
    return {
        "dataset_id": rec.id,
        "symbol": rec.symbol,
        "status": PUBLIC_STATUS[rec.status],
        "split_strategy": rec.split_strategy,
        "train_records": rec.train_records,
        "validation_records": rec.validation_records,
        "test_records": rec.test_records,
        "feature_registry_version": rec.feature_registry_version,
        "created_at": rec.created_at,
        "completed_at": rec.completed_at,
    }


async def _dataset(runtime: RuntimeDep, dataset_id: uuid.UUID) -> DatasetRecord:
    rec = await runtime.datasets.store.get_dataset(dataset_id)
    if rec is None:
        raise ApiError(404, f"dataset {dataset_id} not found")
    return rec


@router.post(
    "/dataset/build",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetBuildResponseOut,
    responses=ERRORS,
    summary="Validate a dataset build request and queue it",
)
async def build(runtime: RuntimeDep, request: DatasetBuildRequest) -> DatasetBuildResponseOut:
    service = runtime.datasets
    try:
        rec = await service.submit(request)
    except DatasetRequestError as exc:
        raise ApiError(400, "; ".join(exc.problems), "invalid_request") from exc
    splits = {
        name: SplitInfoOut(
            records=0,
            period_start=getattr(rec, f"{name}_period_start"),
            period_end=getattr(rec, f"{name}_period_end"),
        )
        for name in ("train", "validation", "test")
        if getattr(rec, f"{name}_period_start") is not None
    }
    return DatasetBuildResponseOut(
        dataset_id=rec.id,
        status="building",
        state="queued",
        queue_position=service.queue_position(rec.id),
        estimated_completion=rec.estimated_completion,
        splits_info=splits,
    )


@router.get(
    "/dataset/list",
    response_model=list[DatasetListItemOut],
    responses=ERRORS,
    summary="Datasets, newest first",
)
async def list_datasets(
    runtime: RuntimeDep,
    status_filter: Annotated[
        Literal["building", "ready", "failed"] | None, Query(alias="status")
    ] = None,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9]{2,20}$")] = None,
) -> list[dict[str, Any]]:
    store = runtime.datasets.store
    wanted = ["queued", "building"] if status_filter == "building" else [status_filter]
    records: list[DatasetRecord] = []
    for s in wanted:
        records += await store.list_datasets(status=s, symbol=symbol.upper() if symbol else None)
    records.sort(key=lambda r: (r.created_at, str(r.id)), reverse=True)
    return [_list_item(r) for r in records]


@router.get(
    "/dataset/{dataset_id}",
    response_model=DatasetMetadataOut,
    responses=ERRORS,
    summary="A dataset's metadata, progress, folds and warnings",
)
async def get_dataset(runtime: RuntimeDep, dataset_id: uuid.UUID) -> dict[str, Any]:
    service = runtime.datasets
    rec = await _dataset(runtime, dataset_id)
    progress = service.progress(rec.id) or rec.progress
    files = (rec.manifest or {}).get("outputs", {})
    return {
        **_list_item(rec),
        "state": rec.status,
        **{
            f"{n}_period_{e}": getattr(rec, f"{n}_period_{e}")
            for n in ("train", "validation", "test")
            for e in ("start", "end")
        },
        "walk_forward_config": rec.walk_forward_config,
        "target_config": rec.target_config,
        "output_format": rec.output_format,
        "feature_interval": interval_label(rec.feature_interval_s),
        "storage_path": rec.storage_path,
        "estimated_completion": rec.estimated_completion,
        "error_message": rec.error_message,
        "queue_position": service.queue_position(rec.id),
        "progress": progress,
        "folds": rec.folds,
        "warnings": rec.warnings,
        "files": files,
        "download_urls": service.download_urls(rec) if rec.status == "ready" else {},
    }


@router.post(
    "/dataset/{dataset_id}/cancel",
    response_model=DatasetBuildResponseOut,
    responses={**ERRORS, 409: {"model": ErrorOut}},
    summary="Cancel a queued or running build (its worker process is stopped)",
)
async def cancel(runtime: RuntimeDep, dataset_id: uuid.UUID) -> DatasetBuildResponseOut:
    try:
        rec = await runtime.datasets.cancel(dataset_id)
    except KeyError:
        raise ApiError(404, f"dataset {dataset_id} not found") from None
    if rec is None:
        done = await _dataset(runtime, dataset_id)
        raise ApiError(409, f"dataset {dataset_id} is {done.status}; only a build can be cancelled")
    return DatasetBuildResponseOut(
        dataset_id=rec.id,
        status=PUBLIC_STATUS[rec.status],  # type: ignore[arg-type]
        state=rec.status,  # type: ignore[arg-type]
        queue_position=None,
        estimated_completion=None,
        error_message=rec.error_message,
    )


def _split_file(rec: DatasetRecord, split: str, fold: int | None) -> str:
    files: dict[str, str] = (rec.manifest or {}).get("outputs", {})
    if fold is not None:
        key = f"fold_{fold}_{split}"
    elif split == "test" and split not in files:
        # Walk-forward: the test split is the test fold's; other splits need a fold number.
        key = next((k for k in files if k.endswith("_test")), split)
    else:
        key = split
    if key not in files:
        raise ApiError(
            404,
            f"dataset {rec.id} has no {split} split"
            + (f" in fold {fold}" if fold is not None else "")
            + f"; available: {', '.join(sorted(files)) or 'none'}",
        )
    return files[key]


@router.get(
    "/dataset/{dataset_id}/download",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    response_class=FileResponse,
    summary="Download a split (or all splits and the manifest as one zip)",
)
async def download(
    runtime: RuntimeDep,
    dataset_id: uuid.UUID,
    background: BackgroundTasks,
    split: Literal["train", "validation", "test", "all"] = "all",
    fold: Annotated[int | None, Query(ge=0)] = None,
) -> FileResponse:
    rec = await _dataset(runtime, dataset_id)
    if rec.status != "ready":
        raise ApiError(404, f"dataset {dataset_id} is {rec.status}, not ready")
    root = runtime.datasets.dataset_dir(rec.id).resolve()
    if split == "all":
        files = sorted(set((rec.manifest or {}).get("outputs", {}).values()))
        tmp = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)  # noqa: SIM115
        tmp.close()
        with zipfile.ZipFile(tmp.name, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in [*files, "manifest.json"]:
                path = (root / name).resolve()
                if path.is_relative_to(root) and path.exists():
                    zf.write(path, arcname=name)
        background.add_task(Path(tmp.name).unlink, missing_ok=True)
        return FileResponse(
            tmp.name, media_type="application/zip", filename=f"dataset-{rec.id}.zip"
        )
    name = _split_file(rec, split, fold)
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, f"file for split {split} is missing")
    return FileResponse(path, media_type="application/octet-stream", filename=f"{rec.id}-{name}")


@router.post(
    "/model/evaluate",
    response_model=ModelEvaluateOut,
    responses=ERRORS,
    summary="Prepare a dataset split for a model evaluation",
)
async def model_evaluate(runtime: RuntimeDep, body: ModelEvaluateIn) -> ModelEvaluateOut:
    rec = await _dataset(runtime, body.dataset_id)
    if rec.status != "ready":
        raise ApiError(400, f"dataset {rec.id} is {rec.status}, not ready")
    target_type = str(rec.target_config.get("type", "regression"))
    known = METRICS.get(target_type, ())
    unknown = [m for m in body.metrics_to_compute if m not in known]
    if unknown:
        raise ApiError(
            400,
            f"unknown metrics for a {target_type} target: {', '.join(unknown)}; "
            f"available: {', '.join(known)}",
        )
    records = getattr(rec, f"{body.split}_records")
    if not records:
        raise ApiError(400, f"the {body.split} split of dataset {rec.id} is empty")
    file = _split_file(rec, body.split, None)
    file_key = next(k for k, v in (rec.manifest or {}).get("outputs", {}).items() if v == file)
    manifest = rec.manifest or {}
    service = runtime.datasets
    return ModelEvaluateOut(
        evaluation_id=uuid.uuid4(),
        dataset_id=rec.id,
        split=body.split,
        model_version=body.model_version,
        metrics=body.metrics_to_compute or list(known),
        prepared_dataset_url=f"{service.base_url}/dataset/{rec.id}/download?split={body.split}",
        metadata={
            "records": records,
            "file": file,
            "sha256": manifest.get("files", {}).get(file_key),
            "target_config": rec.target_config,
            "feature_registry_version": rec.feature_registry_version,
            "features": manifest.get("registry", {}).get("features", []),
            "period_start": getattr(rec, f"{body.split}_period_start"),
            "period_end": getattr(rec, f"{body.split}_period_end"),
            "output_format": rec.output_format,
        },
    )
