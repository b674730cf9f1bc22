DROP TABLE IF EXISTS feature_registry_versions;
