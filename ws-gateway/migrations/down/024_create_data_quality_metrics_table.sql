DROP TABLE IF EXISTS data_quality_metrics;
