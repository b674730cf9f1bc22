"""GET /stats and its parts (T247-T254); the logic is in services/statistics.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError
from feature_service.api.schemas_stats import (
    AllStatsOut,
    ProcessingStatsOut,
    RollingWindowsStatsOut,
    ServiceStatsOut,
    StorageStatsOut,
    SubscriptionStatsOut,
)
from feature_service.logging import get_logger

router = APIRouter(prefix="/stats", tags=["statistics"])
log = get_logger(__name__)


def _logged(request: Request, part: str) -> None:
    log.info("stats_requested", part=part, path=request.url.path)


@router.get("", response_model=AllStatsOut, summary="All statistics at once")
async def all_stats(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    _logged(request, "all")
    return await runtime.statistics.collect_all()


@router.get("/storage", response_model=StorageStatsOut, summary="Raw, dataset, archive storage")
async def storage(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    _logged(request, "storage")
    return await runtime.statistics.storage()


@router.get(
    "/processing",
    response_model=ProcessingStatsOut,
    summary="Events processed and vectors computed, last 1 h and 24 h",
)
async def processing(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    _logged(request, "processing")
    return await runtime.statistics.processing()


@router.get(
    "/rolling-windows",
    response_model=list[RollingWindowsStatsOut],
    summary="Per symbol: windows held, book levels, measured memory",
    responses={404: {"description": "the symbol has no state"}},
)
async def rolling_windows(
    request: Request,
    runtime: RuntimeDep,
    symbol: Annotated[str | None, Query(description="only this symbol")] = None,
) -> list[dict[str, Any]]:
    _logged(request, "rolling_windows")
    wanted = symbol.upper() if symbol else None
    rows = await runtime.statistics.rolling_windows(wanted)
    if wanted is not None and not rows:
        raise ApiError(404, f"no state for symbol {wanted}")
    return rows


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionStatsOut],
    summary="Consumed queues as the broker sees them",
)
async def subscriptions(request: Request, runtime: RuntimeDep) -> list[dict[str, Any]]:
    _logged(request, "subscriptions")
    return await runtime.statistics.subscriptions()


@router.get("/service", response_model=ServiceStatsOut, summary="Symbols, mode, version, uptime")
async def service(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    _logged(request, "service")
    return await runtime.statistics.service()
