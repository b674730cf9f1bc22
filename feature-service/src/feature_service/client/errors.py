"""Typed errors: one class per kind of failure a caller handles differently."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feature_service.client.models import DatasetMetadata


class FeatureServiceError(Exception):
    """Base class of everything the client raises on purpose."""


class FeatureServiceHTTPError(FeatureServiceError):
    """A 4xx/5xx answer; ``error``, ``message`` and ``trace_id`` come from the error body."""

    def __init__(
        self, status_code: int, error: str, message: str, trace_id: str | None = None
    ) -> None:
        super().__init__(f"{status_code} {error}: {message}")
        self.status_code = status_code
        self.error = error
        self.message = message
        self.trace_id = trace_id


class ClientError(FeatureServiceHTTPError):
    """4xx: the request was wrong; repeating it will not help."""


class BadRequest(ClientError):
    """400: e.g. a dataset request that cannot be built (the message lists every reason)."""


class Unauthorized(ClientError):
    """401: missing or invalid API key."""


class NotFound(ClientError):
    """404: unknown symbol, interval, dataset or split (or a split not built yet)."""


class ValidationFailed(ClientError):
    """422: the request did not match the API's schema."""


class ServerError(FeatureServiceHTTPError):
    """5xx: the service failed or is unavailable; worth retrying later."""


class DatasetBuildFailed(FeatureServiceError):
    """The build ran and failed; ``metadata.error_message`` says why."""

    def __init__(self, metadata: DatasetMetadata) -> None:
        super().__init__(f"dataset {metadata.id} failed: {metadata.error_message}")
        self.metadata = metadata


class DatasetBuildTimeout(FeatureServiceError):
    """``build_dataset`` stopped waiting; the build itself goes on (``metadata`` is the last
    state seen)."""

    def __init__(self, metadata: DatasetMetadata, waited_s: float) -> None:
        super().__init__(f"dataset {metadata.id} not ready after {waited_s:.0f} s")
        self.metadata = metadata


_BY_STATUS: dict[int, type[FeatureServiceHTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    422: ValidationFailed,
}


def error_for(status_code: int, body: Any) -> FeatureServiceHTTPError:
    """The typed error for an answer's status and its ``{error, message, trace_id}`` body."""
    if not isinstance(body, dict):
        body = {"message": str(body)[:500]}
    cls = _BY_STATUS.get(status_code) or (ServerError if status_code >= 500 else ClientError)
    return cls(
        status_code,
        str(body.get("error", "error")),
        str(body.get("message", "")),
        body.get("trace_id"),
    )
