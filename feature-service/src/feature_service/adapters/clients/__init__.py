"""HTTP clients of other services (ws-gateway REST)."""

from feature_service.adapters.clients.ws_gateway import (
    Subscription,
    WsGatewayAuthError,
    WsGatewayClient,
    WsGatewayClientError,
    WsGatewayError,
    WsGatewayRateLimitError,
    WsGatewayResponseError,
    WsGatewayUnavailableError,
)

__all__ = [
    "Subscription",
    "WsGatewayAuthError",
    "WsGatewayClient",
    "WsGatewayClientError",
    "WsGatewayError",
    "WsGatewayRateLimitError",
    "WsGatewayResponseError",
    "WsGatewayUnavailableError",
]
