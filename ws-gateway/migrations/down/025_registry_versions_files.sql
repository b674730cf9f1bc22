DROP TABLE IF EXISTS feature_registry_audit;
ALTER TABLE feature_registry_versions DROP COLUMN IF EXISTS file_hash;
ALTER TABLE feature_registry_versions DROP COLUMN IF EXISTS file_path;
