"""DatasetService queueing: builds run in submission order with bounded parallelism, queued
builds know their place, a failing build does not stop the others, and a restart resumes."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feature_service.adapters.metadata import SqliteMetadataStore
from feature_service.datasets import DatasetBuildRequest
from feature_service.registry.loader import load_registry, validate_config
from feature_service.services import datasets as datasets_module
from feature_service.services.dataset_builder import BuildFailed, BuildResult
from feature_service.services.datasets import DatasetRequestError, DatasetService


def _request(minute: int) -> DatasetBuildRequest:
    def at(m: int) -> str:
        return f"2026-01-01T00:{m:02d}:00"

    return DatasetBuildRequest.model_validate(
        {
            "symbol": "BTCUSDT",
            "split_strategy": "time_based",
            "train_period_start": at(minute),
            "train_period_end": at(minute + 20),
            "validation_period_start": at(minute + 20),
            "validation_period_end": at(minute + 25),
            "test_period_start": at(minute + 25),
            "test_period_end": at(minute + 30),
            "target_config": {"type": "regression", "horizon": 10},
            "feature_registry_version": "1.1.0",
            "features": ["mid_price", "volume_15s"],
        }
    )


class FakeBuilds:
    """Stands in for the CPU-bound builder: each build waits until the test releases it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.fail: set[str] = set()
        self.registries: list[Any] = []

    def __call__(
        self, req: DatasetBuildRequest, registry: Any, raw: Path, out: Path, **kw: Any
    ) -> BuildResult:
        key = out.name
        self.started.append(key)
        self.registries.append(registry)
        kw["progress"]({"stage": "replay", "fraction": 0.5, "rows": 1, "elapsed_s": 0.1})
        self.release.setdefault(key, threading.Event()).wait(10)
        if key in self.fail:
            raise BuildFailed("boom")
        return BuildResult(
            files={"train": "train.parquet"},
            counts={"train": 3, "validation": 2, "test": 1},
            splits_info={},
            folds=None,
            warnings=[],
            manifest={"outputs": {"train": "train.parquet"}},
            rows=6,
            dropped_targets=0,
            elapsed_s=0.1,
        )

    def finish(self, key: str) -> None:
        self.release.setdefault(key, threading.Event()).set()


class ThreadBuild:
    """The build runner seam: runs the fake in a thread instead of a worker process."""

    fake: FakeBuilds

    def __init__(self, request: dict[str, Any], registry: Any, raw: Path, out: Path) -> None:
        self.args = (DatasetBuildRequest.model_validate(request), registry, raw, out)
        self.cancelled = False

    async def run(self, on_progress: Any) -> BuildResult:
        loop = asyncio.get_running_loop()

        def progress(p: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(on_progress, p)

        result = await asyncio.to_thread(self.fake, *self.args, progress=progress)
        if self.cancelled:
            from feature_service.services.workers import BuildCancelled

            raise BuildCancelled("cancelled by request")
        return result

    def cancel(self) -> None:
        self.cancelled = True
        self.fake.finish(self.args[3].name)


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    fake = FakeBuilds()
    ThreadBuild.fake = fake
    monkeypatch.setattr(datasets_module, "check_data_available", lambda raw, req: None)
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.connect()
    await store.upgrade()
    svc = DatasetService(
        store, load_registry(), tmp_path / "raw", tmp_path / "datasets", build_runner=ThreadBuild
    )
    await svc.start()
    yield svc, fake, store
    for event in fake.release.values():
        event.set()
    await svc.stop()
    await store.close()


async def _wait_status(store: SqliteMetadataStore, dataset_id: object, status: str) -> None:
    for _ in range(500):
        if (await store.get_dataset(dataset_id)).status == status:  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"dataset never became {status}")


async def _until(predicate, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not reached: {predicate.__doc__ or ''}")


async def test_builds_queue_in_order_and_report_their_place(service) -> None:  # type: ignore[no-untyped-def]
    svc, fake, store = service
    a = await svc.submit(_request(0))
    b = await svc.submit(_request(1))
    c = await svc.submit(_request(2))
    await _until(lambda: fake.started == [str(a.id)])
    assert svc.queue_position(a.id) is None  # running
    assert (svc.queue_position(b.id), svc.queue_position(c.id)) == (1, 2)
    assert (await store.get_dataset(b.id)).status == "queued"
    assert svc.progress(a.id)["fraction"] == 0.5

    fake.fail.add(str(a.id))
    fake.finish(str(a.id))
    await _until(lambda: fake.started == [str(a.id), str(b.id)])
    failed = await store.get_dataset(a.id)
    assert failed.status == "failed" and failed.error_message == "boom"
    assert svc.queue_position(c.id) == 1

    fake.finish(str(b.id))
    fake.finish(str(c.id))
    await _until(lambda: len(fake.started) == 3)
    await _until(lambda: svc.queue_position(c.id) is None)
    await _wait_status(store, c.id, "ready")
    ready = await store.get_dataset(c.id)
    assert (ready.status, ready.train_records, ready.test_records) == ("ready", 3, 1)


async def test_invalid_requests_are_refused_with_reasons(service) -> None:  # type: ignore[no-untyped-def]
    svc, _, store = service
    bad = _request(0).model_copy(update={"feature_registry_version": "0.0.1"})
    with pytest.raises(DatasetRequestError) as info:
        await svc.submit(bad)
    assert any("'0.0.1' is not a stored registry version" in p for p in info.value.problems)
    assert await store.list_datasets() == []


async def test_a_build_uses_the_registry_version_it_names(service) -> None:  # type: ignore[no-untyped-def]
    """Any stored version, not only the active one; the record says which, and the build
    computes that version even if another is active by the time it runs."""
    svc, fake, store = service
    other = validate_config({"version": "2.0.0", "features": [{"name": "vwap_30s"}]})

    async def versions(version: str) -> Any:
        return other if version == "2.0.0" else None

    svc.versions = versions
    req = _request(0).model_copy(
        update={"feature_registry_version": "2.0.0", "features": ["vwap_30s"]}
    )
    first = await svc.submit(req)
    # vwap_30s is not in 1.1.0: the request is checked against the version it names
    wrong = req.model_copy(update={"feature_registry_version": "1.1.0"})
    with pytest.raises(DatasetRequestError, match="unknown features"):
        await svc.submit(wrong)
    active = await svc.submit(_request(1).model_copy(update={"feature_registry_version": "active"}))
    await _until(lambda: fake.started == [str(first.id)])
    fake.finish(str(first.id))
    await _until(lambda: len(fake.started) == 2)
    fake.finish(str(active.id))
    await _wait_status(store, active.id, "ready")
    assert [r.version for r in fake.registries] == ["2.0.0", "1.1.0"]
    assert (await store.get_dataset(first.id)).feature_registry_version == "2.0.0"
    assert (await store.get_dataset(active.id)).feature_registry_version == "1.1.0"


async def test_a_restart_resumes_unfinished_builds(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake = FakeBuilds()
    ThreadBuild.fake = fake
    monkeypatch.setattr(datasets_module, "check_data_available", lambda raw, req: None)
    store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
    await store.connect()
    await store.upgrade()
    first = DatasetService(
        store, load_registry(), tmp_path / "raw", tmp_path / "datasets", build_runner=ThreadBuild
    )
    await first.start()
    a = await first.submit(_request(0))
    b = await first.submit(_request(1))
    await _until(lambda: fake.started == [str(a.id)])
    await first.stop()  # the process dies with a building and b queued

    second = DatasetService(
        store, load_registry(), tmp_path / "raw", tmp_path / "datasets", build_runner=ThreadBuild
    )
    await second.start()
    await _until(lambda: fake.started[1:] == [str(a.id)])  # a runs again first, then b
    fake.finish(str(a.id))
    fake.finish(str(b.id))
    await _until(lambda: fake.started[2:] == [str(b.id)])
    await _wait_status(store, b.id, "ready")
    # Each unfinished build ran exactly once more: no duplicates from the resume.
    assert fake.started == [str(a.id), str(a.id), str(b.id)]
    assert {r.status for r in await store.list_datasets()} == {"ready"}
    await second.stop()
    await store.close()


async def test_a_period_longer_than_the_limit_is_refused_with_the_limit(service) -> None:  # type: ignore[no-untyped-def]
    svc, fake, _ = service
    req = _request(0).model_copy(
        update={
            "train_period_start": datetime(1, 1, 1, tzinfo=UTC),
            "test_period_end": datetime(9999, 12, 31, tzinfo=UTC),
        }
    )
    with pytest.raises(DatasetRequestError) as info:
        await svc.submit(req)
    assert "the limit is 366 days" in str(info.value)
    assert fake.started == []


async def test_queued_and_running_builds_can_be_cancelled(service) -> None:  # type: ignore[no-untyped-def]
    svc, fake, store = service
    running = await svc.submit(_request(0))
    queued = await svc.submit(_request(1))
    await _until(lambda: fake.started == [str(running.id)])

    rec = await svc.cancel(queued.id)
    assert rec is not None and rec.status == "failed" and "cancelled" in rec.error_message
    assert svc.queue_position(queued.id) is None

    await svc.cancel(running.id)
    await _wait_status(store, running.id, "failed")
    assert "cancelled" in (await store.get_dataset(running.id)).error_message
    assert fake.started == [str(running.id)]  # the queued one never ran
    assert await svc.cancel(running.id) is None  # finished: nothing to cancel
