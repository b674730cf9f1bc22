"""FastAPI application factory; the runtime lives in the lifespan, not at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from feature_service import __version__
from feature_service.api import (
    routes_backfill,
    routes_datasets,
    routes_features,
    routes_health,
    routes_quality,
    routes_registry,
    routes_stats,
)
from feature_service.api.deps import require_api_key
from feature_service.api.errors import install_error_handlers
from feature_service.api.middleware import ObservabilityMiddleware
from feature_service.config import Settings, load_settings
from feature_service.services.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="Feature Service",
        version=__version__,
        description=(
            "Live and offline trading features from Bybit market data (via ws-gateway). "
            "Every endpoint except /health and the docs needs the X-API-Key header."
        ),
        servers=[{"url": f"http://localhost:{settings.port}"}],
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(routes_health.router)
    app.include_router(routes_features.router, dependencies=[Depends(require_api_key)])
    app.include_router(routes_datasets.router, dependencies=[Depends(require_api_key)])
    app.include_router(routes_quality.router, dependencies=[Depends(require_api_key)])
    app.include_router(routes_registry.router, dependencies=[Depends(require_api_key)])
    app.include_router(routes_backfill.router, dependencies=[Depends(require_api_key)])
    app.include_router(routes_stats.router, dependencies=[Depends(require_api_key)])
    app.add_middleware(ObservabilityMiddleware)
    return app
