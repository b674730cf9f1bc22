"""Message bus: the ``MessageBus`` port and its adapters (RabbitMQ, in-process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feature_service.adapters.bus.base import (
    BusError,
    BusHealth,
    BusNotConnected,
    BusStats,
    ConsumerHandle,
    Delivery,
    DeliveryAlreadySettled,
    ExchangeNotFound,
    Handler,
    MessageBus,
    PublishFailed,
    PublishUncertain,
    QueueNotFound,
    QueueSpec,
    TopologyMismatch,
)
from feature_service.adapters.bus.memory import MemoryBus
from feature_service.adapters.bus.rabbitmq import RabbitMQBus
from feature_service.adapters.bus.topology import ws_gateway_queue, ws_gateway_queue_specs

if TYPE_CHECKING:
    from feature_service.config import Settings

__all__ = [
    "BusError",
    "BusHealth",
    "BusNotConnected",
    "BusStats",
    "ConsumerHandle",
    "Delivery",
    "DeliveryAlreadySettled",
    "ExchangeNotFound",
    "Handler",
    "MemoryBus",
    "MessageBus",
    "PublishFailed",
    "PublishUncertain",
    "QueueNotFound",
    "QueueSpec",
    "RabbitMQBus",
    "TopologyMismatch",
    "create_bus",
    "ws_gateway_queue",
    "ws_gateway_queue_specs",
]


def create_bus(settings: Settings) -> MessageBus:
    """RabbitMQ when ``rabbitmq_url`` is set, otherwise the embedded in-process bus."""
    match settings.rabbitmq_url:
        case None | "":
            return MemoryBus(
                prefetch=settings.prefetch, dead_letter_queue=settings.dead_letter_queue
            )
        case url:
            return RabbitMQBus(
                url,
                prefetch=settings.prefetch,
                dead_letter_queue=settings.dead_letter_queue,
                heartbeat_s=settings.rabbitmq_heartbeat_s,
                publish_timeout=settings.publish_timeout_s,
            )
