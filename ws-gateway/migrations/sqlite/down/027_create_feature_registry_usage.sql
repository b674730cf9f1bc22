-- Reverts ../027_create_feature_registry_usage.sql.
DROP TABLE IF EXISTS feature_registry_usage;
