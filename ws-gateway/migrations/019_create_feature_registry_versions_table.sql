-- Feature Service: every Feature Registry version ever loaded, with its activation history.
-- supersedes: 019_create_feature_registry_versions_table 5622bdfd09ffb00fad3c69c70d323b439760e9704a77f23f24afbb2d9585cd2a
-- Idempotent. The spec's SQL sketch (and so possibly ws-gateway's own 019) creates only the
-- first 7 columns: the other ten are added when missing. All of them are nullable, so adding
-- them to a table with rows needs no default.
CREATE TABLE IF NOT EXISTS feature_registry_versions (
    version VARCHAR(50) PRIMARY KEY,
    config JSONB NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT false,
    validated_at TIMESTAMP,
    validation_errors TEXT[],
    loaded_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
    created_by VARCHAR(100),
    activated_by VARCHAR(100),
    rollback_from VARCHAR(50),
    previous_version VARCHAR(50),
    schema_version VARCHAR(50),
    migration_script TEXT,
    compatibility_warnings TEXT[],
    breaking_changes TEXT[],
    activation_reason TEXT
);

ALTER TABLE feature_registry_versions
    ADD COLUMN IF NOT EXISTS created_by VARCHAR(100),
    ADD COLUMN IF NOT EXISTS activated_by VARCHAR(100),
    ADD COLUMN IF NOT EXISTS rollback_from VARCHAR(50),
    ADD COLUMN IF NOT EXISTS previous_version VARCHAR(50),
    ADD COLUMN IF NOT EXISTS schema_version VARCHAR(50),
    ADD COLUMN IF NOT EXISTS migration_script TEXT,
    ADD COLUMN IF NOT EXISTS compatibility_warnings TEXT[],
    ADD COLUMN IF NOT EXISTS breaking_changes TEXT[],
    ADD COLUMN IF NOT EXISTS activation_reason TEXT;

CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_is_active
    ON feature_registry_versions (is_active);
CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_created_at
    ON feature_registry_versions (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_previous_version
    ON feature_registry_versions (previous_version);
-- At most one active version: every active row has the same key (true), so a second one clashes.
CREATE UNIQUE INDEX IF NOT EXISTS uq_feature_registry_versions_one_active
    ON feature_registry_versions (is_active) WHERE is_active;
