"""Feature Registry versions: YAML files as the source of truth, the metadata store as the index.

Each version is a file ``feature_registry_v{version}.yaml`` in ``registry_versions_dir``; its
row in ``feature_registry_versions`` keeps the config as validated, the file's path and SHA-256,
the validation result, who created / activated it, when and why, and the previous version.
A file edited by hand is detected by its hash (``file_modified``) and reported until
``sync_file`` re-reads and re-validates it.

Activation (and rollback) checks compatibility with the active version, then hands the plan to
``apply`` -- the runtime's hot switch of the live engine and of new dataset builds. Any failure
(validation, a breaking change not acknowledged, the first computation) leaves the previous
version active; the outcome is in the audit trail either way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from feature_service.adapters.metadata.base import MetadataStore
from feature_service.adapters.metadata.records import RegistryAuditRecord, RegistryVersionRecord
from feature_service.logging import get_logger
from feature_service.registry.compat import compare
from feature_service.registry.loader import Registry, default_registry_path, validate_config

log = get_logger(__name__)

Apply = Callable[[Registry], Awaitable[str | None]]  # None = applied, else why it failed


class RegistryError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ActivationFailed(RegistryError):
    """The activation failed and the previous version stayed active (HTTP 409)."""

    def __init__(self, message: str, rollback: dict[str, Any]) -> None:
        super().__init__(409, message)
        self.rollback = rollback


@dataclass(frozen=True, slots=True)
class Activation:
    version: str
    previous_version: str | None
    compatibility_warnings: list[str]
    breaking_changes: list[str]


def file_name(version: str) -> str:
    return f"feature_registry_v{version}.yaml"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: str | None) -> bytes | None:
    """The file's bytes, or None when there is no such file (small files: read inline)."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


class RegistryService:
    def __init__(
        self,
        store: MetadataStore,
        versions_dir: Path,
        *,
        bundled_path: Path | None = None,
        retention_days: float | None = None,
        apply: Apply | None = None,
    ) -> None:
        self.store = store
        self.dir = versions_dir
        self.bundled_path = bundled_path or default_registry_path()
        self.retention_days = retention_days
        self.apply = apply
        self.active: Registry | None = None
        self.active_record: RegistryVersionRecord | None = None

    # -- start-up ------------------------------------------------------------------------------
    async def start(self) -> Registry:
        """Load the active version; with none, migrate the bundled YAML and activate it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        record = await self.store.get_active_registry_version()
        if record is None:
            raw = self.bundled_path.read_bytes()
            config = yaml.safe_load(raw)
            version = str(config.get("version") or "") if isinstance(config, dict) else ""
            existing = await self.store.get_registry_version(version) if version else None
            if existing is None:
                await self.create(version, config, created_by="system", raw=raw)
            record = await self.store.activate_registry_version(
                version, "system", "start-up: no active version, bundled registry migrated"
            )
            await self._audit(version, "activate", "system", "start-up with no active version")
        registry = self._registry_of(record)
        if not registry.is_valid:
            raise RuntimeError(
                f"active feature registry {record.version} is invalid: {list(registry.errors)}"
            )
        self.active, self.active_record = registry, record
        return registry

    # -- reads ---------------------------------------------------------------------------------
    def _registry_of(self, record: RegistryVersionRecord) -> Registry:
        return validate_config(
            record.config,
            digest=record.file_hash or "",
            path=record.file_path or "",
            retention_days=self.retention_days,
        )

    async def registry_for(self, version: str) -> Registry | None:
        """A stored version's registry (what a dataset build with that version computes)."""
        if self.active is not None and version == self.active.version:
            return self.active
        record = await self.store.get_registry_version(version)
        return None if record is None else self._registry_of(record)

    def file_modified(self, record: RegistryVersionRecord) -> bool | None:
        """True when the file no longer has the hash recorded (edited by hand); None if gone."""
        data = _read(record.file_path)
        return None if data is None else _sha(data) != record.file_hash

    def file_config(self, record: RegistryVersionRecord) -> Any:
        """The version's file as it is now (YAML parsed; ValueError if it is not YAML)."""
        data = _read(record.file_path)
        if data is None:
            return record.config
        try:
            return yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML: {exc}") from exc

    async def get(self, version: str) -> RegistryVersionRecord:
        record = await self.store.get_registry_version(version)
        if record is None:
            raise RegistryError(404, f"registry version {version!r} not found")
        return record

    async def list(self) -> list[RegistryVersionRecord]:
        return await self.store.list_registry_versions()

    async def audit(self, version: str | None = None) -> list[RegistryAuditRecord]:
        return await self.store.list_registry_audit(version)

    # -- changes -------------------------------------------------------------------------------
    async def create(
        self,
        version: str,
        config: Any,
        *,
        created_by: str | None = None,
        raw: bytes | None = None,
    ) -> RegistryVersionRecord:
        """Validate, write the file, record the row (400 invalid, 409 duplicate)."""
        if not version or len(version) > 50 or "/" in version:
            raise RegistryError(400, f"bad version {version!r}")
        if not isinstance(config, dict):
            raise RegistryError(400, "config must be an object with version and features")
        config = {**config, "version": version} if "version" not in config else config
        if str(config.get("version")) != version:
            raise RegistryError(
                400, f"config.version {config.get('version')!r} differs from version {version!r}"
            )
        if await self.store.get_registry_version(version) is not None:
            raise RegistryError(409, f"registry version {version} already exists")
        registry = validate_config(config, retention_days=self.retention_days)
        if not registry.is_valid:
            raise RegistryError(400, "invalid registry: " + "; ".join(registry.errors))
        data = raw if raw is not None else yaml.safe_dump(config, sort_keys=False).encode()
        path = self.dir / file_name(version)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        active = await self.store.get_active_registry_version()
        record = RegistryVersionRecord(
            version=version,
            config=config,
            validated_at=_now(),
            validation_errors=[],
            created_by=created_by,
            previous_version=active.version if active else None,
            schema_version=str(config.get("schema_version") or "1"),
            file_path=str(path),
            file_hash=_sha(data),
        )
        record = await self.store.upsert_registry_version(record)
        await self._audit(version, "create", created_by, None)
        return record

    async def sync_file(self, version: str, by: str | None = None) -> RegistryVersionRecord:
        """Re-read a version's file (edited by hand) into the store, if it is valid."""
        record = await self.get(version)
        data = await asyncio.to_thread(_read, record.file_path)
        if data is None:
            raise RegistryError(404, f"the file of version {version} is missing")
        try:
            config = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise RegistryError(400, f"invalid YAML: {exc}") from exc
        registry = validate_config(config, retention_days=self.retention_days)
        if not registry.is_valid:
            raise RegistryError(400, "invalid registry file: " + "; ".join(registry.errors))
        if registry.version != version:
            raise RegistryError(400, f"the file says version {registry.version}, not {version}")
        if record.is_active and self.active is not None and self.apply is not None:
            failure = await self.apply(registry)
            if failure is not None:
                raise ActivationFailed(failure, self._rollback_body(version, version, failure))
            self.active = registry
        record.config = config
        record.file_hash = _sha(data)
        record.validated_at = _now()
        record.validation_errors = []
        record = await self.store.upsert_registry_version(record)
        if record.is_active:
            self.active_record = record
        await self._audit(version, "sync", by, "file re-read")
        return record

    async def activate(
        self,
        version: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        acknowledge_breaking_changes: bool = False,
        action: str = "activate",
    ) -> Activation:
        record = await self.get(version)
        current = self.active_record
        previous = current.version if current is not None else None
        registry = self._registry_of(record)
        if self.file_modified(record):
            # The file is the source of truth: a hand edit is activated only once synced.
            try:
                edited = validate_config(
                    self.file_config(record), retention_days=self.retention_days
                )
                problems = list(edited.errors)
            except ValueError as exc:
                problems = [str(exc)]
            if not problems:
                raise RegistryError(
                    400, f"the file of {version} was edited since it was synced: sync-file first"
                )
            registry = Registry(version, (), {}, "", record.file_path or "", tuple(problems))
        if not registry.is_valid:
            failure = "validation failed: " + "; ".join(registry.errors)
            await self._failed(version, previous, by, failure)
            raise ActivationFailed(failure, self._rollback_body(version, previous, failure))
        compat = compare(self.active.plan if self.active else None, registry.plan)  # type: ignore[arg-type]
        if version == previous:
            return Activation(version, previous, [], [])
        if compat.breaking and not acknowledge_breaking_changes:
            raise RegistryError(
                400,
                "breaking changes need acknowledge_breaking_changes=true: "
                + "; ".join(compat.breaking),
            )
        if self.apply is not None:
            failure = await self.apply(registry)
            if failure is not None:
                await self._failed(version, previous, by, failure)
                raise ActivationFailed(failure, self._rollback_body(version, previous, failure))
        record = await self.store.activate_registry_version(
            version, by, reason, rollback_from=previous if action == "rollback" else None
        )
        record.compatibility_warnings = compat.warnings
        record.breaking_changes = compat.breaking
        record = await self.store.upsert_registry_version(record)
        self.active, self.active_record = registry, record
        await self._audit(version, action, by, reason, {"previous_version": previous})
        log.info("registry_activated", version=version, previous=previous, by=by, action=action)
        return Activation(version, previous, compat.warnings, compat.breaking)

    async def pick_up(self, by: str | None = None) -> RegistryVersionRecord | None:
        """Apply a version activated in the store from outside the service (the CLI without a
        reachable service): the running version follows the store, or, if the new one fails,
        the store goes back to the running one (ActivationFailed). None: nothing to pick up."""
        record = await self.store.get_active_registry_version()
        running = self.active_record
        if record is None or running is None or record.version == running.version:
            return None
        version = record.version
        registry = self._registry_of(record)
        if not registry.is_valid:
            failure: str | None = "validation failed: " + "; ".join(registry.errors)
        else:
            failure = None if self.apply is None else await self.apply(registry)
        if failure is not None:
            back = await self.store.activate_registry_version(
                running.version, by, f"{version} failed: {failure}", rollback_from=version
            )
            back.previous_version = running.previous_version
            self.active_record = await self.store.upsert_registry_version(back)
            await self._failed(version, running.version, by, failure)
            raise ActivationFailed(failure, self._rollback_body(version, running.version, failure))
        self.active, self.active_record = registry, record
        await self._audit(version, "activate", by, "picked up: activated outside the service")
        log.info("registry_activated", version=version, previous=running.version, by=by)
        return record

    async def rollback(self, reason: str | None = None, by: str | None = None) -> dict[str, Any]:
        current = self.active_record
        if current is None or not current.previous_version:
            raise RegistryError(400, "no previous version to roll back to")
        target = current.previous_version
        if await self.store.get_registry_version(target) is None:
            raise RegistryError(400, f"previous version {target} no longer exists")
        await self.activate(
            target, by=by, reason=reason, acknowledge_breaking_changes=True, action="rollback"
        )
        return {
            "rolled_back_from": current.version,
            "rolled_back_to": target,
            "rollback_reason": reason,
            "rollback_timestamp": datetime.now(UTC).isoformat(),
        }

    async def delete(self, version: str, in_use: bool, by: str | None = None) -> None:
        record = await self.get(version)
        if record.is_active or in_use:
            raise RegistryError(400, f"registry version {version} is in use and cannot be deleted")
        await self.store.delete_registry_version(version)
        if record.file_path:
            await asyncio.to_thread(Path(record.file_path).unlink, missing_ok=True)
        await self._audit(version, "delete", by, None)

    # -- internals -----------------------------------------------------------------------------
    async def _failed(self, version: str, previous: str | None, by: str | None, why: str) -> None:
        log.error("registry_activation_failed", version=version, kept=previous, error=why)
        await self._audit(version, "activation_failed", by, why, {"kept_version": previous})

    def _rollback_body(self, version: str, previous: str | None, why: str) -> dict[str, Any]:
        return {
            "rolled_back_from": version,
            "rolled_back_to": previous,
            "rollback_reason": why,
            "rollback_timestamp": datetime.now(UTC).isoformat(),
        }

    async def _audit(
        self,
        version: str,
        action: str,
        actor: str | None,
        reason: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self.store.add_registry_audit(
            RegistryAuditRecord(
                version=version, action=action, actor=actor, reason=reason, details=details
            )
        )
