"""A typed async client for Python consumers of the Feature Service (HTTP API + features.live).

    async with FeatureServiceClient("http://127.0.0.1:4500", api_key="demo-key") as fs:
        vector = await fs.latest("BTCUSDT", "1s")
        meta = await fs.build_dataset(request)          # waits, with progress
        train = await fs.download(meta.id, "train")     # a pandas DataFrame

Standalone: it depends only on httpx, pydantic, pandas and (for ``vectors``) aio-pika, never on
the service's internals, so a model service can vendor it.
"""

from feature_service.client.errors import (
    BadRequest,
    ClientError,
    DatasetBuildFailed,
    DatasetBuildTimeout,
    FeatureServiceError,
    FeatureServiceHTTPError,
    NotFound,
    ServerError,
    Unauthorized,
    ValidationFailed,
)
from feature_service.client.http import FeatureServiceClient
from feature_service.client.models import DatasetMetadata, DatasetSummary, FeatureVector

__all__ = [
    "BadRequest",
    "ClientError",
    "DatasetBuildFailed",
    "DatasetBuildTimeout",
    "DatasetMetadata",
    "DatasetSummary",
    "FeatureServiceClient",
    "FeatureServiceError",
    "FeatureServiceHTTPError",
    "FeatureVector",
    "NotFound",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
]
