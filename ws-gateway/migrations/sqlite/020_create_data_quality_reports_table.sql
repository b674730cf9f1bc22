-- SQLite twin of ../020_create_data_quality_reports_table.sql. Rates are REAL; the store rounds
-- them to 4 decimals (DECIMAL(5,4) in PostgreSQL) before writing, so both backends hold the same.
-- supersedes: 020_create_data_quality_reports_table ce49b53181683f254e1e4c5afe60933e8548a9274c490988f978486ac2431e43
CREATE TABLE IF NOT EXISTS data_quality_reports (
    id TEXT PRIMARY KEY NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    missing_rate REAL NOT NULL,
    anomaly_rate REAL NOT NULL,
    sequence_gaps INTEGER NOT NULL DEFAULT 0,
    desynchronization_events INTEGER NOT NULL DEFAULT 0,
    anomaly_details TEXT CHECK (anomaly_details IS NULL OR json_valid(anomaly_details)),
    sequence_gap_details TEXT
        CHECK (sequence_gap_details IS NULL OR json_valid(sequence_gap_details)),
    recommendations TEXT CHECK (recommendations IS NULL OR json_valid(recommendations)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    CONSTRAINT data_quality_reports_period_check CHECK (period_start < period_end),
    CONSTRAINT data_quality_reports_missing_rate_check
        CHECK (missing_rate >= 0 AND missing_rate <= 1),
    CONSTRAINT data_quality_reports_anomaly_rate_check
        CHECK (anomaly_rate >= 0 AND anomaly_rate <= 1),
    CONSTRAINT data_quality_reports_sequence_gaps_check CHECK (sequence_gaps >= 0),
    CONSTRAINT data_quality_reports_desynchronization_events_check
        CHECK (desynchronization_events >= 0)
);

CREATE INDEX IF NOT EXISTS idx_data_quality_reports_symbol_period
    ON data_quality_reports (symbol, period_start, period_end);
CREATE INDEX IF NOT EXISTS idx_data_quality_reports_created_at
    ON data_quality_reports (created_at DESC);
