"""Feature Registry endpoints, exactly the contract's ``/feature-registry*`` routes (thin: the
RegistryService does the work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from feature_service.adapters.metadata.records import RegistryVersionRecord
from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError, trace_id_of
from feature_service.api.schemas import ErrorOut
from feature_service.registry.loader import validate_config
from feature_service.services.registry import ActivationFailed, RegistryError

router = APIRouter(tags=["feature-registry"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


class FeatureRegistryOut(BaseModel):
    version: str
    config: dict[str, Any] = Field(description="the registry YAML as JSON")
    is_active: bool
    validated_at: datetime | None = None
    validation_errors: list[str] = Field(default_factory=list)
    loaded_at: datetime | None = None
    created_at: datetime
    file_path: str | None = None
    file_modified: bool | None = Field(
        None, description="the file no longer has the recorded hash (edited by hand, not synced)"
    )


class FeatureRegistryVersionOut(FeatureRegistryOut):
    created_by: str | None = None
    activated_by: str | None = None
    previous_version: str | None = None
    schema_version: str | None = None
    compatibility_warnings: list[str] | None = None
    breaking_changes: list[str] | None = None
    activation_reason: str | None = None
    rollback_from: str | None = None
    file_hash: str | None = None
    audit: list[dict[str, Any]] = Field(default_factory=list)


class VersionListItemOut(BaseModel):
    version: str
    is_active: bool
    validated_at: datetime | None = None
    created_at: datetime
    usage_count: int


class ValidateOut(BaseModel):
    is_valid: bool
    validation_errors: list[str]
    warnings: list[str]


class CreateVersionIn(BaseModel):
    version: str = Field(min_length=1, max_length=50)
    config: dict[str, Any]
    created_by: str | None = Field(None, max_length=100)


class ActivateIn(BaseModel):
    activation_reason: str | None = None
    created_by: str | None = Field(None, max_length=100)
    acknowledge_breaking_changes: bool = False


class ActivateOut(BaseModel):
    version: str
    activated: bool
    migration_applied: bool
    compatibility_warnings: list[str]
    breaking_changes: list[str]
    previous_version: str | None


class RollbackIn(BaseModel):
    rollback_reason: str | None = None


class RollbackOut(BaseModel):
    rolled_back_from: str | None
    rolled_back_to: str | None
    rollback_reason: str | None
    rollback_timestamp: datetime


class UsageOut(BaseModel):
    version: str
    is_active: bool
    active_datasets_count: int
    feature_computations_count: int
    can_delete: bool
    usage_details: dict[str, Any]


def _registry_out(runtime: RuntimeDep, rec: RegistryVersionRecord) -> dict[str, Any]:
    return {
        "version": rec.version,
        "config": rec.config,
        "is_active": rec.is_active,
        "validated_at": rec.validated_at,
        "validation_errors": rec.validation_errors or [],
        "loaded_at": rec.loaded_at,
        "created_at": rec.created_at,
        "file_path": rec.file_path,
        "file_modified": runtime.registry_service.file_modified(rec),
    }


def _fail(exc: RegistryError, request: Request) -> Exception | JSONResponse:
    if isinstance(exc, ActivationFailed):
        body = {
            "error": "activation_failed",
            "message": exc.message,
            "trace_id": trace_id_of(request),
            **exc.rollback,
        }
        return JSONResponse(status_code=409, content=body)
    return ApiError(exc.status, exc.message)


async def _active(runtime: RuntimeDep) -> RegistryVersionRecord:
    rec = await runtime.store.get_active_registry_version()
    if rec is None:
        raise ApiError(404, "no active feature registry")
    return rec


@router.get("/feature-registry", response_model=FeatureRegistryOut, responses=ERRORS)
async def current(runtime: RuntimeDep) -> dict[str, Any]:
    """The active registry version and its config."""
    return _registry_out(runtime, await _active(runtime))


@router.post("/feature-registry/reload", response_model=FeatureRegistryOut, responses=ERRORS)
async def reload(runtime: RuntimeDep, request: Request) -> Any:
    """Apply a version activated in the database from outside (the CLI without ``--url``),
    then re-read the active version's file; a changed, valid file is applied without restart."""
    service = runtime.registry_service
    try:
        await service.pick_up("api:reload")
    except ActivationFailed as exc:  # the contract's reload answers 400 for a bad config
        kept = exc.rollback["rolled_back_to"]
        raise ApiError(400, f"{exc.message} (version {kept} stays active)") from exc
    rec = await _active(runtime)
    if service.file_modified(rec):
        try:
            rec = await service.sync_file(rec.version, "api:reload")
        except RegistryError as exc:
            failure = _fail(exc, request)
            if isinstance(failure, JSONResponse):
                return failure
            raise failure from exc
    return _registry_out(runtime, rec)


@router.get("/feature-registry/validate", response_model=ValidateOut, responses=ERRORS)
async def validate(runtime: RuntimeDep) -> ValidateOut:
    """Validate the active version (its file as it is now, if it was edited)."""
    rec = await _active(runtime)
    service = runtime.registry_service
    config: Any = rec.config
    warnings: list[str] = []
    if service.file_modified(rec):
        warnings.append(f"{rec.file_path} was edited since it was synced: validating the file")
        try:
            config = service.file_config(rec)
        except ValueError as exc:
            return ValidateOut(is_valid=False, validation_errors=[str(exc)], warnings=warnings)
    registry = validate_config(config, retention_days=runtime.settings.retention_days)
    return ValidateOut(
        is_valid=registry.is_valid,
        validation_errors=list(registry.errors),
        warnings=warnings + list(registry.warnings),
    )


@router.get("/feature-registry/versions", response_model=list[VersionListItemOut])
async def versions(runtime: RuntimeDep) -> list[VersionListItemOut]:
    out = []
    for rec in await runtime.registry_service.list():
        used = await runtime.store.count_datasets_by_registry_version(rec.version)
        out.append(
            VersionListItemOut(
                version=rec.version,
                is_active=rec.is_active,
                validated_at=rec.validated_at,
                created_at=rec.created_at,
                usage_count=used,
            )
        )
    return out


@router.post(
    "/feature-registry/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureRegistryVersionOut,
    responses={**ERRORS, 409: {"model": ErrorOut}},
)
async def create(runtime: RuntimeDep, body: CreateVersionIn) -> dict[str, Any]:
    """Create a version: validated, written as its YAML file, recorded (inactive)."""
    try:
        rec = await runtime.registry_service.create(
            body.version, body.config, created_by=body.created_by
        )
    except RegistryError as exc:
        raise ApiError(exc.status, exc.message) from exc
    return await _version_out(runtime, rec)


async def _version_out(runtime: RuntimeDep, rec: RegistryVersionRecord) -> dict[str, Any]:
    audit = await runtime.registry_service.audit(rec.version)
    return {
        **_registry_out(runtime, rec),
        "created_by": rec.created_by,
        "activated_by": rec.activated_by,
        "previous_version": rec.previous_version,
        "schema_version": rec.schema_version,
        "compatibility_warnings": rec.compatibility_warnings,
        "breaking_changes": rec.breaking_changes,
        "activation_reason": rec.activation_reason,
        "rollback_from": rec.rollback_from,
        "file_hash": rec.file_hash,
        "audit": [
            {
                "action": a.action,
                "actor": a.actor,
                "reason": a.reason,
                "at": a.created_at,
                "details": a.details,
            }
            for a in audit
        ],
    }


@router.get(
    "/feature-registry/versions/{version}",
    response_model=FeatureRegistryVersionOut,
    responses=ERRORS,
)
async def get_version(runtime: RuntimeDep, version: str) -> dict[str, Any]:
    try:
        rec = await runtime.registry_service.get(version)
    except RegistryError as exc:
        raise ApiError(exc.status, exc.message) from exc
    return await _version_out(runtime, rec)


async def _usage(runtime: RuntimeDep, version: str) -> UsageOut:
    try:
        rec = await runtime.registry_service.get(version)
    except RegistryError as exc:
        raise ApiError(exc.status, exc.message) from exc
    datasets = [
        d for d in await runtime.store.list_datasets() if d.feature_registry_version == version
    ]
    computations = await runtime.usage.count(runtime.store, version, runtime.live.clock.now_us())
    can_delete = not rec.is_active and not datasets and computations == 0
    reasons = []
    if rec.is_active:
        reasons.append("it is the active version")
    if datasets:
        reasons.append(f"{len(datasets)} dataset(s) were built with it")
    if computations:
        reasons.append(f"{computations} vector(s) computed with it in the last 24 h")
    return UsageOut(
        version=version,
        is_active=rec.is_active,
        active_datasets_count=len(datasets),
        feature_computations_count=computations,
        can_delete=can_delete,
        usage_details={
            "datasets": [{"dataset_id": str(d.id), "status": d.status} for d in datasets],
            "message": "not in use" if can_delete else "in use: " + "; ".join(reasons),
        },
    )


@router.get("/feature-registry/versions/{version}/usage", response_model=UsageOut, responses=ERRORS)
async def usage(runtime: RuntimeDep, version: str) -> UsageOut:
    return await _usage(runtime, version)


@router.delete(
    "/feature-registry/versions/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def delete(runtime: RuntimeDep, version: str) -> Response:
    used = await _usage(runtime, version)
    try:
        await runtime.registry_service.delete(version, in_use=not used.can_delete, by="api")
    except RegistryError as exc:
        detail = exc.message if used.can_delete else used.usage_details["message"]
        raise ApiError(exc.status, f"{exc.message}: {detail}") from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/feature-registry/versions/{version}/activate",
    response_model=ActivateOut,
    responses={**ERRORS, 409: {"model": RollbackOut}},
)
async def activate(
    runtime: RuntimeDep, version: str, request: Request, body: ActivateIn | None = None
) -> Any:
    """Activate a version: compatibility check, hot switch at the next boundary; any failure
    keeps the previous version (409 with the rollback)."""
    body = body or ActivateIn()
    try:
        result = await runtime.registry_service.activate(
            version,
            by=body.created_by,
            reason=body.activation_reason,
            acknowledge_breaking_changes=body.acknowledge_breaking_changes,
        )
    except RegistryError as exc:
        failure = _fail(exc, request)
        if isinstance(failure, JSONResponse):
            return failure
        raise failure from exc
    return ActivateOut(
        version=result.version,
        activated=True,
        migration_applied=result.previous_version not in (None, result.version),
        compatibility_warnings=result.compatibility_warnings,
        breaking_changes=result.breaking_changes,
        previous_version=result.previous_version,
    )


@router.post("/feature-registry/rollback", response_model=RollbackOut, responses=ERRORS)
async def rollback(runtime: RuntimeDep, request: Request, body: RollbackIn | None = None) -> Any:
    """Go back to the version active before the current one."""
    body = body or RollbackIn()
    try:
        return await runtime.registry_service.rollback(body.rollback_reason, by="api")
    except RegistryError as exc:
        failure = _fail(exc, request)
        if isinstance(failure, JSONResponse):
            return failure
        raise failure from exc


@router.post(
    "/feature-registry/versions/{version}/sync-file",
    response_model=FeatureRegistryVersionOut,
    responses=ERRORS,
)
async def sync_file(runtime: RuntimeDep, version: str, request: Request) -> Any:
    """Re-read a version's YAML file (edited by hand) into the store, after validating it."""
    try:
        rec = await runtime.registry_service.sync_file(version, "api")
    except RegistryError as exc:
        failure = _fail(exc, request)
        if isinstance(failure, JSONResponse):
            return failure
        raise failure from exc
    return await _version_out(runtime, rec)
