"""Statistics behind GET /stats*: storage, processing, rolling windows, subscriptions, service.

Each part is a coroutine returning a plain dict (the API's schema); ``collect_all`` runs them
concurrently and returns a failing part as its error while the rest is served (T253). A
``QueuePoller`` refreshes the broker's queue depths every few seconds for the consumer-lag gauge,
so a scrape never waits on the broker.

Times: sliding counts run on the service clock (the virtual clock in the demo's accelerated
replay), at minute resolution: "last 1 h" is the current minute and the 59 before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_service import __version__
from feature_service.engine.vector import interval_label
from feature_service.logging import get_logger
from feature_service.market.timeutil import format_iso_us
from feature_service.services.depth_status import symbol_depth
from feature_service.telemetry import QueueDepth

if TYPE_CHECKING:
    from feature_service.services.runtime import Runtime

log = get_logger(__name__)

_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARTS = ("storage", "processing", "rolling_windows", "subscriptions", "service")


def _iso(t_us: int | None) -> str | None:
    return None if t_us is None else format_iso_us(t_us) + "Z"


# -- storage ---------------------------------------------------------------------------------------
def scan_raw(root: Path) -> dict[str, Any]:
    """Bytes and files of ``root/{kind}/{day}/{symbol}/*.parquet``, per kind and per day."""
    total = {"size_bytes": 0, "file_count": 0, "kinds": {}}
    if not root.is_dir():
        return total
    for path in root.rglob("*.parquet"):
        if path.name.startswith("."):
            continue  # a write in progress
        parts = path.relative_to(root).parts
        day_index = next((i for i, p in enumerate(parts) if _DAY_RE.match(p)), None)
        if day_index is None or day_index == 0:
            continue
        kind = "/".join(parts[:day_index])
        day = parts[day_index]
        size = _size(path)
        entry = total["kinds"].setdefault(kind, {"size_bytes": 0, "file_count": 0, "days": {}})
        by_day = entry["days"].setdefault(day, {"size_bytes": 0, "file_count": 0})
        for bucket in (total, entry, by_day):
            bucket["size_bytes"] += size
            bucket["file_count"] += 1
    return total


def scan_tree(root: Path) -> dict[str, int]:
    out = {"size_bytes": 0, "file_count": 0}
    if root.is_dir():
        for path in root.rglob("*"):
            if path.is_file():
                out["size_bytes"] += _size(path)
                out["file_count"] += 1
    return out


def scan_datasets(root: Path) -> dict[str, int]:
    out = scan_tree(root)
    out["datasets"] = sum(1 for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed by retention meanwhile
        return 0


# -- memory ---------------------------------------------------------------------------------
_ATOMIC = (int, float, complex, str, bytes, bool, type(None))


def deep_sizeof(root: object, limit: int = 5_000_000) -> int:
    """Bytes held by ``root`` and everything it references (each object counted once): the
    rolling windows' measured footprint. numpy arrays count their buffers; ``limit`` bounds the
    walk."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        # An ndarray's size already includes the buffer it owns; its items are not objects.
        if isinstance(obj, _ATOMIC) or hasattr(obj, "dtype"):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset) or type(obj).__name__ == "deque":
            stack.extend(obj)  # type: ignore[arg-type]
        else:
            attrs = getattr(obj, "__dict__", None)
            if attrs is not None:
                stack.append(attrs)
            for cls in type(obj).__mro__:
                for slot in cls.__dict__.get("__slots__", ()):
                    with contextlib.suppress(AttributeError):
                        stack.append(getattr(obj, slot))
    return total


# -- the service ----------------------------------------------------------------------------
class StatisticsService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.last_health_check: str | None = None

    # -- parts ------------------------------------------------------------------------------------
    async def storage(self) -> dict[str, Any]:
        s = self.runtime.settings
        raw, datasets, archive = await asyncio.gather(
            asyncio.to_thread(scan_raw, s.raw_dir),
            asyncio.to_thread(scan_datasets, s.datasets_dir),
            asyncio.to_thread(scan_tree, s.archive_dir),
        )
        return {
            "raw_data_storage": raw,
            "dataset_storage": datasets,
            "archive_storage": archive,
            "computed_at": datetime.now(UTC),
        }

    async def processing(self) -> dict[str, Any]:
        rt = self.runtime
        now = rt.live.clock.now_us()
        t = rt.telemetry
        events = {w: t.events_window.totals(now, m) for w, m in (("1h", 60), ("24h", 1440))}
        vectors = {w: t.vectors_window.totals(now, m) for w, m in (("1h", 60), ("24h", 1440))}
        symbols = sorted(
            set(rt.settings.symbols) | set(events["24h"]) | {k[0] for k in vectors["24h"]}
        )
        per_symbol = []
        for symbol in symbols:
            row: dict[str, Any] = {"symbol": symbol}
            for w in ("1h", "24h"):
                row[f"events_processed_{w}"] = int(events[w].get(symbol, 0))
                by_interval = {
                    label: int(n) for (sym, label), n in vectors[w].items() if sym == symbol
                }
                row[f"features_computed_{w}"] = by_interval
            per_symbol.append(row)
        return {
            "events_processed_1h": int(sum(events["1h"].values())),
            "events_processed_24h": int(sum(events["24h"].values())),
            "features_computed_1h": int(sum(vectors["1h"].values())),
            "features_computed_24h": int(sum(vectors["24h"].values())),
            "events_processed_since_start": rt.engine.events_processed,
            "features_computed_since_start": rt.engine.vectors_emitted,
            "symbols": per_symbol,
            "computed_at": datetime.now(UTC),
            "clock_now": _iso(now),
        }

    async def rolling_windows(self, symbol: str | None = None) -> list[dict[str, Any]]:
        rt = self.runtime
        out = []
        counts = rt.telemetry.vectors_by_symbol
        for name, state in sorted(rt.engine.states.items()):
            if symbol is not None and name != symbol:
                continue
            bids, asks = state.book.depth_levels()
            latest = rt.live.latest.get(name, {})
            last = max((v.timestamp for v in latest.values()), default=None)
            out.append(
                {
                    "symbol": name,
                    "intervals": {
                        interval_label(i): int(counts.get((name, i), 0))
                        for i in rt.settings.intervals
                    },
                    "total_trades_count": len(state.trades),
                    "total_klines_count": len(state.klines),
                    "book_levels": {"bids": bids, "asks": asks},
                    "book_status": state.book.status.name.lower(),
                    "book_depth": symbol_depth(state, rt.live.clock.now_us()),
                    # Walked in the loop thread: the state must not change under the walk.
                    "memory_usage_bytes": deep_sizeof(state),
                    "last_update": _iso(last),
                }
            )
        return out

    async def subscriptions(self) -> list[dict[str, Any]]:
        rt = self.runtime
        depths = await poll_queues(rt)
        consumed = rt.live.stats.consumed
        return [
            {
                "queue_name": d.queue,
                "messages_in_queue": d.messages,
                "active_consumers": d.consumers,
                "subscription_status": d.state,
                "messages_consumed": int(consumed.get(d.queue, 0)),
                "backend": rt.bus.backend,
            }
            for d in depths
        ]

    async def service(self) -> dict[str, Any]:
        rt = self.runtime
        checks = await rt.health_checks()
        ready = all(bool(c.get("ok")) for c in checks.values())
        self.last_health_check = datetime.now(UTC).isoformat()
        return {
            "tracked_symbols": list(rt.settings.symbols),
            "service_status": "healthy" if ready else "unhealthy",
            "last_health_check": self.last_health_check,
            "mode": "embedded" if rt.embedded else "rabbitmq",
            "version": __version__,
            "registry_version": rt.registry.version,
            "intervals": [interval_label(i) for i in rt.settings.intervals],
            "uptime_seconds": round(rt.uptime_s(), 3),
        }

    async def collect_all(self) -> dict[str, Any]:
        """Every part at once; a part that fails is None and its error is under ``errors``."""
        makers: dict[str, Callable[[], Awaitable[Any]]] = {
            "storage": self.storage,
            "processing": self.processing,
            "rolling_windows": self.rolling_windows,
            "subscriptions": self.subscriptions,
            "service": self.service,
        }
        results = await asyncio.gather(*(m() for m in makers.values()), return_exceptions=True)
        out: dict[str, Any] = {"errors": {}}
        for name, result in zip(makers, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.warning("stats_part_failed", part=name, error=repr(result))
                out[name] = None
                out["errors"][name] = f"{type(result).__name__}: {result}"
            else:
                out[name] = result
        out["collected_at"] = datetime.now(UTC)
        return out


# -- health ---------------------------------------------------------------------------------
def health_summary(rt: Runtime, checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flat fields of T204, read from the checks already made and the telemetry."""
    t = rt.telemetry
    last = rt.live.stats.last_vector_us
    books_ok = all(state.book.usable for state in rt.engine.states.values())
    quality = checks.get("data_quality")
    stale = checks.get("computation", {}).get("stale_symbols") or []
    return {
        "database_connected": bool(checks.get("metadata_store", {}).get("ok")),
        "queue_connected": bool(checks.get("bus", {}).get("ok")),
        "feature_registry_loaded": bool(checks.get("registry", {}).get("ok")),
        "latest_feature_computation_timestamp": (
            None if last is None else datetime.fromtimestamp(last / 1e6, UTC)
        ),
        "average_latency_ms_last_5min": t.average_latency_ms(rt.live.clock.now_us()),
        "data_quality_ok": not stale and books_ok and (quality is None or bool(quality.get("ok"))),
        "active_dataset_builds_count": len(t.active_builds),
        "last_dataset_build_duration_seconds": (
            None if t.last_build_duration_s is None else round(t.last_build_duration_s, 3)
        ),
    }


# -- queue depths ---------------------------------------------------------------------------
async def poll_queues(rt: Runtime, timeout_s: float = 5.0) -> list[QueueDepth]:
    """Ask the bus about every consumed queue at once; the answers also feed the lag gauge."""
    names = list(rt.settings.input_queues.values())
    if rt.settings.consume_orders:
        names.append(rt.settings.queue_order)

    async def one(name: str) -> QueueDepth:
        now = time.time_ns() // 1000
        try:
            status = await asyncio.wait_for(rt.bus.queue_status(name), timeout_s)
        except Exception as exc:  # broker unreachable: say so, keep the others
            previous = rt.telemetry.queue_depths.get(name)
            if previous is None or previous.state != "unreachable":  # once per outage
                log.info("queue_status_failed", queue=name, error=repr(exc))
            return QueueDepth(name, None, None, "unreachable", now)
        if status is None:
            return QueueDepth(name, None, None, "missing", now)
        messages, consumers = status
        return QueueDepth(name, messages, consumers, "consuming" if consumers else "idle", now)

    depths = await asyncio.gather(*(one(n) for n in names))
    for depth in depths:
        rt.telemetry.queue_depths[depth.queue] = depth
    return list(depths)


async def run_queue_poller(rt: Runtime, every_s: float = 5.0) -> None:
    while True:
        try:
            await poll_queues(rt)
        except Exception:  # never let the poller die
            log.exception("queue_poll_failed")
        await asyncio.sleep(every_s)
