-- Reverts ../027_create_feature_registry_usage.sql (usage counts only: after the revert a
-- version's computations before it no longer count towards "in use").
DROP TABLE IF EXISTS feature_registry_usage;
