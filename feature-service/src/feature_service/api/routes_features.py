"""GET /features/latest: the newest vector per symbol and interval, served from memory."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from feature_service.api.deps import RuntimeDep
from feature_service.api.errors import ApiError
from feature_service.api.schemas import ErrorOut, FeatureVectorOut
from feature_service.engine.vector import parse_interval

router = APIRouter(tags=["features"])


@router.get(
    "/features/latest",
    response_model=FeatureVectorOut,
    responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Latest feature vector of a symbol",
)
async def latest_features(
    runtime: RuntimeDep,
    symbol: Annotated[str, Query(pattern=r"^[A-Za-z0-9]{2,20}$", examples=["BTCUSDT"])],
    interval: Annotated[
        str | None, Query(pattern=r"^(1s|3s|15s|1m|60s)$", description="default: the shortest")
    ] = None,
    include_nulls: Annotated[
        bool,
        Query(
            description="true: every feature of the active version, null when it cannot be "
            "computed (default: only computed features; the others are in null_reasons)"
        ),
    ] = False,
) -> Response:
    symbol = symbol.upper()
    interval_s = parse_interval(interval) if interval else None
    vector = runtime.live.latest_vector(symbol, interval_s)
    if vector is None:
        if runtime.live.latest_vector(symbol) is None:
            raise ApiError(404, f"no features for symbol {symbol} (not configured or no data yet)")
        raise ApiError(404, f"no {interval} features for symbol {symbol} yet")
    body = vector.to_message(include_nulls=include_nulls)
    # Serialised directly: the vector is already validated by construction, and skipping
    # response-model validation keeps this endpoint in the tens of microseconds.
    return Response(orjson.dumps(body), media_type="application/json")
