-- Reverts ../026_create_operations_metrics_tables.sql (SQLite twin).
DROP TABLE IF EXISTS api_endpoint_metrics;
DROP TABLE IF EXISTS dataset_building_metrics;
DROP TABLE IF EXISTS feature_computation_metrics;
