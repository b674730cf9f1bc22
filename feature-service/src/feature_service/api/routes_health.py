"""GET /health (liveness + readiness, open) and GET /metrics (Prometheus)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from feature_service.api.deps import RuntimeDep, require_api_key
from feature_service.api.schemas import HealthCheckOut
from feature_service.services.statistics import health_summary

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthCheckOut,
    summary="Liveness and readiness",
    responses={503: {"model": HealthCheckOut, "description": "not ready"}},
    openapi_extra={"security": []},
)
async def health(runtime: RuntimeDep) -> JSONResponse:
    checks = await runtime.health_checks()
    ready = all(bool(c.get("ok")) for c in checks.values())
    body = HealthCheckOut(
        status="healthy" if ready else "unhealthy",
        timestamp=datetime.now(UTC),
        services={
            "database": "connected" if checks["metadata_store"]["ok"] else "disconnected",
            "message_queue": "connected" if checks["bus"]["ok"] else "disconnected",
            # This service does not use a position manager; "disconnected" would alarm monitors.
            "position_manager": "not_applicable",
        },
        checks=checks,
        ready=ready,
        **health_summary(runtime, checks),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics_registry), media_type=CONTENT_TYPE_LATEST)
