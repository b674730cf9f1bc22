"""features.live sized for live use, and what to do when the broker already holds the queue
with other arguments (e.g. ws-gateway's 24 h TTL / 100,000 messages from earlier versions).

A queue's arguments cannot change while it exists, and a strict re-declaration with other
arguments is refused by the broker (406), so the service never insists: it uses the queue as it
is and either applies a policy through the management API (``RABBITMQ_MANAGEMENT_URL`` set:
RabbitMQ then enforces the lower TTL and length of argument and policy) or logs a warning with
the command that fixes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from yarl import URL

from feature_service.adapters.bus import MessageBus
from feature_service.adapters.bus.topology import (
    features_live_arguments,
    features_live_max_length,
)
from feature_service.adapters.clients.rabbitmq_management import (
    ManagementError,
    RabbitMQManagement,
)
from feature_service.config import Settings
from feature_service.logging import get_logger

log = get_logger(__name__)

POLICY_PRIORITY = 10


def live_queue_arguments(settings: Settings) -> dict[str, Any]:
    length = settings.features_live_max_length or features_live_max_length(
        len(settings.symbols), settings.intervals, settings.features_live_ttl_s
    )
    return features_live_arguments(settings.features_live_ttl_s, length)


def policy_name(queue: str) -> str:
    return f"feature-service.{queue}"


def policy_definition(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "message-ttl": arguments["x-message-ttl"],
        "max-length": arguments["x-max-length"],
        "overflow": arguments["x-overflow"],
    }


def queue_pattern(queue: str) -> str:
    """A regular expression matching exactly ``queue`` (queue names here are [A-Za-z0-9._-])."""
    return "^" + re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", queue) + "$"


def vhost_of(amqp_url: str | None) -> str:
    path = URL(amqp_url or "amqp:///").path
    return "/" if path in ("", "/") else path[1:]


def fix_commands(queue: str, arguments: dict[str, Any], vhost: str = "/") -> list[str]:
    """What an operator runs to bring an existing queue to ``arguments``."""
    definition = json.dumps(policy_definition(arguments), separators=(",", ":"))
    pattern = queue_pattern(queue)
    return [
        f"rabbitmqctl set_policy -p {vhost} --apply-to queues --priority {POLICY_PRIORITY} "
        f"{policy_name(queue)} '{pattern}' '{definition}'",
        f"or: rabbitmqctl delete_queue -p {vhost} {queue}  (then restart the service)",
    ]


@dataclass(frozen=True, slots=True)
class LiveQueueOutcome:
    exact: bool  # the queue has exactly our arguments
    policy_applied: bool = False
    warning: str | None = None


async def ensure_live_queue(bus: MessageBus, settings: Settings) -> LiveQueueOutcome:
    """Declare features.live (exchange + queue) for live use; never fails on a queue that
    exists with other arguments."""
    name = settings.features_exchange
    arguments = live_queue_arguments(settings)
    if await bus.ensure_features_topology(name, arguments):
        return LiveQueueOutcome(exact=True)
    vhost = vhost_of(settings.rabbitmq_url)
    if settings.rabbitmq_management_url:
        management = RabbitMQManagement(settings.rabbitmq_management_url)
        try:
            await apply_policy(management, vhost, name, arguments)
        except ManagementError as exc:
            return _warn(name, arguments, vhost, f"applying the policy failed: {exc}")
        log.info(
            "features_live_policy_applied",
            queue=name,
            policy=policy_name(name),
            definition=policy_definition(arguments),
            management=management.safe_url,
        )
        return LiveQueueOutcome(exact=False, policy_applied=True)
    return _warn(name, arguments, vhost, "FEATURE_SERVICE_RABBITMQ_MANAGEMENT_URL is not set")


async def apply_policy(
    management: RabbitMQManagement, vhost: str, queue: str, arguments: dict[str, Any]
) -> None:
    """PUT the policy; the broker applies it at once (the management API may show it on the
    queue only after its next statistics interval, so that is not waited for)."""
    await management.put_policy(
        vhost,
        policy_name(queue),
        queue_pattern(queue),
        policy_definition(arguments),
        priority=POLICY_PRIORITY,
    )


def _warn(queue: str, arguments: dict[str, Any], vhost: str, why: str) -> LiveQueueOutcome:
    commands = fix_commands(queue, arguments, vhost)
    message = (
        f"queue {queue} already exists with other arguments than {arguments}; it is used as it "
        f"is, so a late consumer may read stale vectors ({why}). Fix: " + " ".join(commands)
    )
    log.warning("features_live_arguments_differ", queue=queue, wanted=arguments, fix=commands)
    return LiveQueueOutcome(exact=False, warning=message)
