-- Reverts ../026_create_operations_metrics_tables.sql (the rows are operations data only).
DROP TABLE IF EXISTS api_endpoint_metrics;
DROP TABLE IF EXISTS dataset_building_metrics;
DROP TABLE IF EXISTS feature_computation_metrics;
