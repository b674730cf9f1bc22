-- Feature Service: data quality of the raw market data over a period, per symbol.
-- supersedes: 020_create_data_quality_reports_table 42382f9d232baa059e96f03c170ee789677b9c95c1d523b980a7ffaeb1db5141
-- Idempotent: an existing table (ws-gateway's own 020) is kept and checked at adoption.
CREATE TABLE IF NOT EXISTS data_quality_reports (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol VARCHAR(20) NOT NULL,
    period_start TIMESTAMP NOT NULL,
    period_end TIMESTAMP NOT NULL,
    missing_rate DECIMAL(5, 4) NOT NULL,
    anomaly_rate DECIMAL(5, 4) NOT NULL,
    sequence_gaps INTEGER NOT NULL DEFAULT 0,
    desynchronization_events INTEGER NOT NULL DEFAULT 0,
    anomaly_details JSONB,
    sequence_gap_details JSONB,
    recommendations TEXT[],
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
    CONSTRAINT data_quality_reports_period_check CHECK (period_start < period_end),
    CONSTRAINT data_quality_reports_missing_rate_check
        CHECK (missing_rate >= 0 AND missing_rate <= 1),
    CONSTRAINT data_quality_reports_anomaly_rate_check
        CHECK (anomaly_rate >= 0 AND anomaly_rate <= 1),
    CONSTRAINT data_quality_reports_sequence_gaps_check CHECK (sequence_gaps >= 0),
    CONSTRAINT data_quality_reports_desynchronization_events_check
        CHECK (desynchronization_events >= 0)
);

-- Serves the lookup "latest report of a symbol whose period lies inside [from, to]".
CREATE INDEX IF NOT EXISTS idx_data_quality_reports_symbol_period
    ON data_quality_reports (symbol, period_start, period_end);
CREATE INDEX IF NOT EXISTS idx_data_quality_reports_created_at ON data_quality_reports (created_at DESC);
