"""Embedded input: replays a recording into the ws-gateway queues of the in-process bus.

It plays ws-gateway's role in the zero-setup demo, so the whole consumer path (parsing, dead
letters, raw storage, engine, publishing) runs exactly as in production. Times in the recording
are shifted so the data looks current (a whole number of minutes, which keeps candles aligned),
and each loop is shifted further by the recording's length. Candle history older than the dense
part (the warm-up) is published at once on the first loop, like a backfill.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from feature_service.engine.clocks import ServiceClock
from feature_service.logging import get_logger
from feature_service.market.recording import iter_envelopes
from feature_service.market.timeutil import format_iso_us, parse_iso_us

log = get_logger(__name__)

MINUTE_US = 60_000_000
Publish = Callable[[str, bytes], Awaitable[None]]

_MS_PAYLOAD_KEYS = ("T", "start", "end", "timestamp", "fundingRateTimestamp", "nextFundingTime")


@dataclass(slots=True)
class _Line:
    at_us: int  # the recording's service receive time (or received_at)
    event_type: str
    envelope: dict[str, Any]


def _line_time(envelope: dict[str, Any]) -> int:
    for key in ("service_received_at", "received_at", "timestamp"):
        value = envelope.get(key)
        if isinstance(value, str):
            return parse_iso_us(value)
    raise ValueError(
        "the replay source needs ws-gateway envelope lines (with received_at); "
        "bare Bybit frames can be computed offline with `feature-service compute`"
    )


def shift_envelope(envelope: dict[str, Any], shift_us: int) -> dict[str, Any]:
    """A copy with every time moved by ``shift_us`` (a whole number of milliseconds)."""
    out = dict(envelope)
    out.pop("service_received_at", None)
    for key in ("timestamp", "received_at"):
        if isinstance(out.get(key), str):
            out[key] = format_iso_us(parse_iso_us(out[key]) + shift_us)
    payload = dict(out.get("payload") or {})
    shift_ms = shift_us // 1000
    for key in _MS_PAYLOAD_KEYS:
        value = payload.get(key)
        if isinstance(value, bool) or value is None or value == "":
            continue
        if isinstance(value, int):
            payload[key] = value + shift_ms
        elif isinstance(value, str) and value.isdigit():
            payload[key] = str(int(value) + shift_ms)
    out["payload"] = payload
    return out


class ReplaySource:
    """Use: ``start_us = await source.prepare()``, pick the time shift (the app aligns its
    virtual clock to ``start_us + shift``), then ``source.start(shift, clock)``."""

    def __init__(
        self,
        path: Path,
        publish: Publish,
        queues: dict[str, str],
        *,
        loop: bool = True,
    ) -> None:
        self._path = path
        self._publish = publish
        self._queues = queues
        self._loop = loop
        self._warmup: list[_Line] = []
        self._dense: list[_Line] = []
        self.published = 0
        self.loops = 0
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> None:
        lines = [
            _Line(_line_time(env), str(env.get("event_type", "")), env)
            for env in iter_envelopes(self._path)
        ]
        lines.sort(key=lambda line: line.at_us)
        dense_start = next((ln.at_us for ln in lines if ln.event_type != "kline"), None)
        if dense_start is None:
            self._dense = lines
            return
        self._warmup = [ln for ln in lines if ln.at_us < dense_start]
        self._dense = [ln for ln in lines if ln.at_us >= dense_start]

    async def prepare(self) -> int:
        """Load the recording; returns the time its dense (live-like) part starts."""
        await asyncio.to_thread(self._load)
        if not self._dense:
            raise ValueError(f"recording {self._path} holds no messages")
        return self._dense[0].at_us

    @staticmethod
    def aligned_shift(start_us: int, now_us: int) -> int:
        """Whole minutes that move ``start_us`` to at most one minute before ``now_us``."""
        return ((now_us - start_us) // MINUTE_US) * MINUTE_US

    async def run(self, shift_us: int, clock: ServiceClock) -> None:
        dense = self._dense
        start = dense[0].at_us
        loop_span = ((dense[-1].at_us - start) // MINUTE_US + 1) * MINUTE_US
        log.info(
            "replay_started",
            path=str(self._path),
            warmup_messages=len(self._warmup),
            dense_messages=len(dense),
            loop_minutes=loop_span // MINUTE_US,
        )
        for line in self._warmup:
            await self._send(line, shift_us)
        while True:
            shift = shift_us + self.loops * loop_span
            for line in dense:
                delay = clock.sleep_seconds_until(line.at_us + shift)
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._send(line, shift)
            self.loops += 1
            if not self._loop:
                log.info("replay_finished", published=self.published)
                return

    async def _send(self, line: _Line, shift_us: int) -> None:
        queue = self._queues.get(line.event_type)
        if queue is None:
            return
        await self._publish(queue, orjson.dumps(shift_envelope(line.envelope, shift_us)))
        self.published += 1

    def start(self, shift_us: int, clock: ServiceClock) -> None:
        self._task = asyncio.create_task(self.run(shift_us, clock), name="replay-source")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
