"""RabbitMQ management HTTP API: just enough to apply and read one queue policy.

A queue's x-arguments cannot change once it exists; a policy can bound it after the fact. For
``message-ttl`` and ``max-length`` RabbitMQ applies the lower of argument and policy, so a
policy tightens a queue declared with looser arguments (e.g. ws-gateway's 24 h / 100,000).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from yarl import URL


class ManagementError(Exception):
    """The management API refused or could not be reached."""


class RabbitMQManagement:
    """``base_url`` like ``http://guest:guest@127.0.0.1:15672`` (credentials in the URL)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        url = URL(base_url)
        self._auth = (url.user or "guest", url.password or "guest")
        self._base = str(url.with_user(None).with_path("")).rstrip("/")
        self._timeout = timeout_s

    @property
    def safe_url(self) -> str:
        return self._base

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with httpx.AsyncClient(auth=self._auth, timeout=self._timeout) as http:
                response = await http.request(method, f"{self._base}/api{path}", json=body)
        except httpx.HTTPError as exc:
            raise ManagementError(f"{method} {self._base}/api{path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise ManagementError(
                f"{method} {self._base}/api{path}: {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    async def put_policy(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        *,
        priority: int = 10,
        apply_to: str = "queues",
    ) -> None:
        body = {
            "pattern": pattern,
            "definition": definition,
            "priority": priority,
            "apply-to": apply_to,
        }
        await self._request("PUT", f"/policies/{_q(vhost)}/{_q(name)}", body)

    async def delete_policy(self, vhost: str, name: str) -> None:
        await self._request("DELETE", f"/policies/{_q(vhost)}/{_q(name)}")


def _q(part: str) -> str:
    return quote(part, safe="")
