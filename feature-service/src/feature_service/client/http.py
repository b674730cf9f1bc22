"""FeatureServiceClient: the HTTP API in typed calls, plus ``vectors()`` over features.live."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pandas as pd
from pydantic import BaseModel

from feature_service.client.errors import (
    DatasetBuildFailed,
    DatasetBuildTimeout,
    FeatureServiceError,
    error_for,
)
from feature_service.client.live import iter_vectors
from feature_service.client.models import DatasetMetadata, DatasetSummary, FeatureVector

ProgressCallback = Callable[[DatasetMetadata], None]


class FeatureServiceClient:
    """``base_url`` like ``http://127.0.0.1:4500``; ``amqp_url`` (for ``vectors``) like
    ``amqp://guest:guest@127.0.0.1:5672/``. Use as ``async with`` or call ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        amqp_url: str | None = None,
        exchange: str = "features.live",
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.exchange = exchange
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key},
            timeout=timeout_s,
            transport=transport,
        )

    async def __aenter__(self) -> FeatureServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------------
    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise FeatureServiceError(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise error_for(response.status_code, body)
        return response

    # -- features ------------------------------------------------------------------------------
    async def latest(self, symbol: str, interval: str | None = None) -> FeatureVector:
        """The newest vector of ``symbol`` (``interval`` "1s", "3s", "15s", "1m"; default the
        shortest). Raises ``NotFound`` before the service has one."""
        params = {"symbol": symbol} | ({"interval": interval} if interval else {})
        response = await self._request("GET", "/features/latest", params=params)
        return FeatureVector.model_validate_json(response.content)

    def vectors(
        self,
        symbols: Iterable[str] | None = None,
        intervals: Iterable[str] | None = None,
    ) -> AsyncIterator[FeatureVector]:
        """Vectors as they are published: the client binds its own exclusive, auto-deleted
        queue to the features.live exchange, so it starts with the next vector (never a
        backlog) and the queue disappears with the connection."""
        if not self.amqp_url:
            raise FeatureServiceError("vectors() needs amqp_url (the RabbitMQ the service uses)")
        return iter_vectors(self.amqp_url, self.exchange, symbols, intervals)

    # -- datasets ------------------------------------------------------------------------------
    async def submit_dataset(self, request: Mapping[str, Any] | BaseModel) -> UUID:
        """POST /dataset/build; returns the dataset id (``BadRequest`` lists every reason a
        request cannot be built)."""
        body = request.model_dump(mode="json") if isinstance(request, BaseModel) else request
        response = await self._request("POST", "/dataset/build", json=body)
        return UUID(response.json()["dataset_id"])

    async def dataset(self, dataset_id: UUID | str) -> DatasetMetadata:
        response = await self._request("GET", f"/dataset/{dataset_id}")
        return DatasetMetadata.model_validate_json(response.content)

    async def list_datasets(
        self, status: str | None = None, symbol: str | None = None
    ) -> list[DatasetSummary]:
        params = {k: v for k, v in (("status", status), ("symbol", symbol)) if v}
        response = await self._request("GET", "/dataset/list", params=params)
        return [DatasetSummary.model_validate(item) for item in response.json()]

    async def build_dataset(
        self,
        request: Mapping[str, Any] | BaseModel,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval_s: float = 1.0,
        timeout_s: float | None = 3600.0,
    ) -> DatasetMetadata:
        """Submit, then wait until the build is ready: the ready metadata, ``DatasetBuildFailed``
        when it failed, ``DatasetBuildTimeout`` when ``timeout_s`` passed (the build goes on).
        ``on_progress`` gets each state seen while waiting."""
        dataset_id = await self.submit_dataset(request)
        started = time.monotonic()
        while True:
            meta = await self.dataset(dataset_id)
            if on_progress is not None:
                on_progress(meta)
            if meta.status == "ready":
                return meta
            if meta.status == "failed":
                raise DatasetBuildFailed(meta)
            waited = time.monotonic() - started
            if timeout_s is not None and waited >= timeout_s:
                raise DatasetBuildTimeout(meta, waited)
            await asyncio.sleep(poll_interval_s)

    async def download(
        self,
        dataset_id: UUID | str,
        split: str = "train",
        path: Path | str | None = None,
        *,
        fold: int | None = None,
    ) -> Path | pd.DataFrame:
        """A split's file: written to ``path`` (returned) when given, else read into a
        DataFrame (parquet or csv; hdf5 and ``split="all"`` need a path)."""
        params: dict[str, Any] = {"split": split} | ({"fold": fold} if fold is not None else {})
        url = f"/dataset/{dataset_id}/download"
        if path is not None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            async with self._http.stream("GET", url, params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for(response.status_code, _json_or_text(response))
                # Streamed to disk (a split can be large); file writes off the event loop.
                out = await asyncio.to_thread(target.open, "wb")
                try:
                    async for chunk in response.aiter_bytes():
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    await asyncio.to_thread(out.close)
            return target
        response = await self._request("GET", url, params=params)
        name = response.headers.get("content-disposition", "")
        if ".csv" in name:
            return pd.read_csv(io.BytesIO(response.content), parse_dates=["timestamp"])
        if ".parquet" in name:
            return pd.read_parquet(io.BytesIO(response.content))
        raise FeatureServiceError(f"cannot read {name or 'this file'} into a DataFrame: pass path")


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
