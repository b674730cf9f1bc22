"""Statistics helpers: the raw storage scan per kind and day, the measured memory walk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from feature_service.services.statistics import deep_sizeof, scan_datasets, scan_raw


def _file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_scan_raw_counts_per_kind_and_day(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _file(raw / "orderbook/deltas/2026-11-25/BTCUSDT/part-1-aaaaaaaa.parquet", 100)
    _file(raw / "orderbook/deltas/2026-11-25/ETHUSDT/part-2-bbbbbbbb.parquet", 50)
    _file(raw / "orderbook/deltas/2026-11-26/BTCUSDT/part-3-cccccccc.parquet", 7)
    _file(raw / "trades/2026-11-26/BTCUSDT/part-4-dddddddd.parquet", 30)
    _file(raw / "trades/2026-11-26/BTCUSDT/.part-5-eeeeeeee.parquet.tmp", 999)  # in progress
    _file(raw / "trades/2026-11-26/BTCUSDT/.hidden.parquet", 999)
    out = scan_raw(raw)
    assert (out["size_bytes"], out["file_count"]) == (187, 4)
    deltas = out["kinds"]["orderbook/deltas"]
    assert (deltas["size_bytes"], deltas["file_count"]) == (157, 3)
    assert deltas["days"] == {
        "2026-11-25": {"size_bytes": 150, "file_count": 2},
        "2026-11-26": {"size_bytes": 7, "file_count": 1},
    }
    assert out["kinds"]["trades"]["days"] == {"2026-11-26": {"size_bytes": 30, "file_count": 1}}
    assert scan_raw(tmp_path / "nothing") == {"size_bytes": 0, "file_count": 0, "kinds": {}}


def test_scan_datasets_counts_folders(tmp_path: Path) -> None:
    _file(tmp_path / "a" / "train.parquet", 10)
    _file(tmp_path / "a" / "manifest.json", 5)
    _file(tmp_path / "b" / "train.parquet", 1)
    assert scan_datasets(tmp_path) == {"size_bytes": 16, "file_count": 3, "datasets": 2}


class _Slotted:
    __slots__ = ("items", "other")

    def __init__(self, items: object, other: object) -> None:
        self.items = items
        self.other = other


def test_deep_sizeof_follows_slots_and_counts_shared_objects_once() -> None:
    floats = [float(i) + 0.5 for i in range(1000)]
    expected_floats = sys.getsizeof(floats) + sum(sys.getsizeof(f) for f in floats)
    holder = _Slotted(floats, floats)  # the same list twice
    size = deep_sizeof(holder)
    assert size == sys.getsizeof(holder) + expected_floats
    array = np.zeros(10_000)
    assert deep_sizeof(_Slotted(array, None)) >= array.nbytes


class _Bus:
    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    async def queue_status(self, name: str) -> tuple[int, int] | None:
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]


async def test_poll_queues_reports_each_queue_state() -> None:
    from types import SimpleNamespace

    from feature_service.config import Settings
    from feature_service.services.statistics import poll_queues
    from feature_service.telemetry import Telemetry

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    q = settings.input_queues
    answers: dict[str, object] = {
        q["orderbook"]: (12, 1),
        q["trade"]: (0, 0),
        q["kline"]: None,
        q["ticker"]: ConnectionError("refused"),
        q["funding"]: (3, 2),
    }
    rt = SimpleNamespace(settings=settings, bus=_Bus(answers), telemetry=Telemetry())
    depths = {d.queue: d for d in await poll_queues(rt)}  # type: ignore[arg-type]
    assert (depths[q["orderbook"]].messages, depths[q["orderbook"]].state) == (12, "consuming")
    assert depths[q["trade"]].state == "idle"
    assert depths[q["kline"]].state == "missing"
    assert depths[q["ticker"]].state == "unreachable" and depths[q["ticker"]].messages is None
    assert rt.telemetry.queue_depths == depths
