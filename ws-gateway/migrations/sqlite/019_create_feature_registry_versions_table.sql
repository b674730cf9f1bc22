-- SQLite twin of ../019_create_feature_registry_versions_table.sql. Booleans are 0/1, TEXT[]
-- columns are JSON arrays in text.
-- supersedes: 019_create_feature_registry_versions_table e4c4d0d328ccf06825fe436d4d4b9c7e3a4dddbc66ad1ea9bcf1e095a74ed28f
CREATE TABLE IF NOT EXISTS feature_registry_versions (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    config TEXT NOT NULL CHECK (json_valid(config)),
    is_active INTEGER NOT NULL DEFAULT 0 CHECK (is_active IN (0, 1)),
    validated_at TEXT,
    validation_errors TEXT CHECK (validation_errors IS NULL OR json_valid(validation_errors)),
    loaded_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    created_by VARCHAR(100),
    activated_by VARCHAR(100),
    rollback_from VARCHAR(50),
    previous_version VARCHAR(50),
    schema_version VARCHAR(50),
    migration_script TEXT,
    compatibility_warnings TEXT
        CHECK (compatibility_warnings IS NULL OR json_valid(compatibility_warnings)),
    breaking_changes TEXT CHECK (breaking_changes IS NULL OR json_valid(breaking_changes)),
    activation_reason TEXT
);

CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_is_active
    ON feature_registry_versions (is_active);
CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_created_at
    ON feature_registry_versions (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_feature_registry_versions_previous_version
    ON feature_registry_versions (previous_version);
CREATE UNIQUE INDEX IF NOT EXISTS uq_feature_registry_versions_one_active
    ON feature_registry_versions (is_active) WHERE is_active = 1;
