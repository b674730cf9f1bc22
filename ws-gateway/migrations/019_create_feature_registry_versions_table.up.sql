-- Feature Service: every Feature Registry version ever loaded, with its activation history.
CREATE TABLE feature_registry_versions (
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

CREATE INDEX idx_feature_registry_versions_is_active ON feature_registry_versions (is_active);
CREATE INDEX idx_feature_registry_versions_created_at
    ON feature_registry_versions (created_at DESC);
CREATE INDEX idx_feature_registry_versions_previous_version
    ON feature_registry_versions (previous_version);
-- At most one active version: every active row has the same key (true), so a second one clashes.
CREATE UNIQUE INDEX uq_feature_registry_versions_one_active
    ON feature_registry_versions (is_active) WHERE is_active;
