-- SQLite twin of ../025_registry_versions_files.sql (times as text, JSON as text).
ALTER TABLE feature_registry_versions ADD COLUMN file_path VARCHAR(500);
ALTER TABLE feature_registry_versions ADD COLUMN file_hash VARCHAR(64);

CREATE TABLE feature_registry_audit (
    id TEXT PRIMARY KEY NOT NULL,
    version VARCHAR(50) NOT NULL,
    action VARCHAR(20) NOT NULL CHECK (
        action IN ('create', 'activate', 'rollback', 'delete', 'sync', 'activation_failed')
    ),
    actor VARCHAR(100),
    reason TEXT,
    details TEXT CHECK (details IS NULL OR json_valid(details)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE INDEX idx_feature_registry_audit_version ON feature_registry_audit (version, created_at);
