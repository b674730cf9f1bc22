-- Feature Service: registry versions kept as YAML files (the source of truth), and the audit
-- trail of what was done to them.
--   feature_registry_versions.file_path  the version's file, feature_registry_v{version}.yaml
--   feature_registry_versions.file_hash  its SHA-256 when last read: a hand edit shows as a mismatch
--   feature_registry_audit               one row per creation, activation, rollback, deletion,
--                                        file sync or failed activation: who, when, why
-- Idempotent: running it again changes nothing.
ALTER TABLE feature_registry_versions ADD COLUMN IF NOT EXISTS file_path VARCHAR(500);
ALTER TABLE feature_registry_versions ADD COLUMN IF NOT EXISTS file_hash VARCHAR(64);

CREATE TABLE IF NOT EXISTS feature_registry_audit (
    id UUID PRIMARY KEY,
    version VARCHAR(50) NOT NULL,
    action VARCHAR(20) NOT NULL CHECK (
        action IN ('create', 'activate', 'rollback', 'delete', 'sync', 'activation_failed')
    ),
    actor VARCHAR(100),
    reason TEXT,
    details JSONB,
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC')
);

CREATE INDEX IF NOT EXISTS idx_feature_registry_audit_version
    ON feature_registry_audit (version, created_at);
