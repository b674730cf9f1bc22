-- SQLite twin of ../../down/025_registry_versions_files.sql (DROP COLUMN needs SQLite >= 3.35).
DROP INDEX IF EXISTS idx_feature_registry_audit_version;
DROP TABLE IF EXISTS feature_registry_audit;
ALTER TABLE feature_registry_versions DROP COLUMN file_hash;
ALTER TABLE feature_registry_versions DROP COLUMN file_path;
