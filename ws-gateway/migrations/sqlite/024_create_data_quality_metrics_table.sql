-- SQLite twin of 024_create_data_quality_metrics_table.sql. Rates are REAL (the writer rounds
-- them to 4 decimals); timestamps are ISO-8601 text in UTC.
CREATE TABLE IF NOT EXISTS data_quality_metrics (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    metric_timestamp TEXT NOT NULL,
    missing_rate REAL NOT NULL CHECK (missing_rate >= 0 AND missing_rate <= 1),
    anomaly_rate REAL NOT NULL CHECK (anomaly_rate >= 0 AND anomaly_rate <= 1),
    sequence_gaps_count INTEGER DEFAULT 0,
    desynchronization_events_count INTEGER DEFAULT 0,
    data_completeness_rate REAL NOT NULL
        CHECK (data_completeness_rate >= 0 AND data_completeness_rate <= 1),
    trace_id TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now'))
);

CREATE INDEX IF NOT EXISTS idx_data_quality_metrics_timestamp
    ON data_quality_metrics (metric_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_data_quality_metrics_symbol
    ON data_quality_metrics (symbol, metric_timestamp DESC);
