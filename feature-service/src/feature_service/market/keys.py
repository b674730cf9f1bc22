"""The identity of a consumed message, and the bounded memory of recently seen ones.

``message_key`` is the key the raw store writes next to each row; ``RecentKeys`` is the
per-stream dedup window. The raw reader and the ingest sequencer both use exactly these, so live
dedup and offline dedup can never disagree about what "the same message" is.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Mapping
from typing import Any

import orjson

DEFAULT_DEDUP_WINDOW_US = 15 * 60 * 1_000_000
_NEG_INF = -(1 << 62)


def message_key(event_id: str | None, raw: bytes | str | Mapping[str, Any], part: int = 0) -> str:
    """``event_id``, else ``sha:`` + a hash of the canonical body (JSON with sorted keys);
    ``#n`` is appended for the n-th event (n >= 1) of a message that carried several."""
    if event_id:
        base = event_id
    else:
        if isinstance(raw, Mapping):
            body = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        else:
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
            # Canonical form: a redelivered body may be re-serialised with another key order.
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        base = "sha:" + hashlib.blake2b(body, digest_size=16).hexdigest()
    return base if part == 0 else f"{base}#{part}"


def dedup_time(gateway_ts: int | None, exchange_ts: int | None, receive_ts: int) -> int:
    """The clock dedup windows run on: gateway time, else exchange time, else receive time.

    A redelivered copy carries its original's gateway time and the queue is FIFO, so on this
    axis the copy sits right next to its original even after an outage of hours, while on the
    receive-time axis the two may be hours apart."""
    if gateway_ts is not None:
        return gateway_ts
    return exchange_ts if exchange_ts is not None else receive_ts


class RecentKeys:
    """Keys seen recently in one stream, remembered for one to two windows of dedup time.

    Two generations of keys, aligned to whole windows of dedup time (``t // window_us``): a key
    is a duplicate when it is in the current or the previous generation. Aligning to absolute
    time makes the answer a function of the stream alone, not of where a reader started, and
    the check is two set lookups with no per-key allocation (the live hot path runs it per
    event). ``max_keys`` caps a generation's size (then it rotates early) as a memory bound."""

    __slots__ = ("_current", "_gen", "_max_keys", "_previous", "_window")

    def __init__(self, window_us: int = DEFAULT_DEDUP_WINDOW_US, max_keys: int = 0) -> None:
        if window_us <= 0:
            raise ValueError("window_us must be positive")
        self._window = window_us
        self._max_keys = max_keys  # 0: no count bound
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._gen = _NEG_INF

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def seen(self, key: str, t: int) -> bool:
        """True when ``key`` is a duplicate; otherwise remember it and return False."""
        gen = t // self._window
        if gen > self._gen:
            # An older t (small disorder across batches) stays in the current generation.
            self._previous = self._current if gen == self._gen + 1 else set()
            self._current = set()
            self._gen = gen
        current = self._current
        if key in current or key in self._previous:
            return True
        current.add(key)
        if self._max_keys and len(current) > self._max_keys:
            self._previous = current
            self._current = set()
        return False

    def heap_bytes(self) -> int:
        """Approximate heap held by the remembered keys (sets and key strings)."""
        sets = (self._current, self._previous)
        return sum(sys.getsizeof(s) + sum(map(sys.getsizeof, s)) for s in sets)

    def forget(self, key: str) -> None:
        """Drop ``key`` (a message whose handling failed: its redelivery is not a duplicate)."""
        self._current.discard(key)
        self._previous.discard(key)
