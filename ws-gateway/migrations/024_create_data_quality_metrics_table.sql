-- Feature Service: data quality per symbol and minute (T197), written by its background
-- writer every minute (T201) and read by Grafana.
CREATE TABLE IF NOT EXISTS data_quality_metrics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol VARCHAR(20) NOT NULL,
    metric_timestamp TIMESTAMP NOT NULL,
    missing_rate DECIMAL(5, 4) NOT NULL,
    anomaly_rate DECIMAL(5, 4) NOT NULL,
    sequence_gaps_count INTEGER DEFAULT 0,
    desynchronization_events_count INTEGER DEFAULT 0,
    data_completeness_rate DECIMAL(5, 4) NOT NULL,
    trace_id VARCHAR(100),
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
    CONSTRAINT data_quality_metrics_missing_rate_check
        CHECK (missing_rate >= 0 AND missing_rate <= 1),
    CONSTRAINT data_quality_metrics_anomaly_rate_check
        CHECK (anomaly_rate >= 0 AND anomaly_rate <= 1),
    CONSTRAINT data_quality_metrics_completeness_check
        CHECK (data_completeness_rate >= 0 AND data_completeness_rate <= 1)
);

CREATE INDEX IF NOT EXISTS idx_data_quality_metrics_timestamp
    ON data_quality_metrics (metric_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_data_quality_metrics_symbol
    ON data_quality_metrics (symbol, metric_timestamp DESC);
