-- Backfill jobs of feature-service (issue 10): history fetched from Bybit REST into the raw
-- store. A job survives restarts: completed_days lets a resumed job skip finished work.
-- Idempotent (IF NOT EXISTS) so psql may apply it any number of times.
CREATE TABLE IF NOT EXISTS backfill_jobs (
    id UUID PRIMARY KEY,
    symbol VARCHAR(20) NOT NULL,
    category VARCHAR(10) NOT NULL DEFAULT 'linear',
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    data_types JSONB NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'cancelled')),
    trigger VARCHAR(20) NOT NULL DEFAULT 'api',
    progress JSONB,
    completed_days JSONB NOT NULL DEFAULT '[]',
    failed_days JSONB NOT NULL DEFAULT '[]',
    unavailable JSONB NOT NULL DEFAULT '{}',
    error_message TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    updated_at TIMESTAMP,
    CHECK (end_date >= start_date)
);
CREATE INDEX IF NOT EXISTS idx_backfill_jobs_status ON backfill_jobs (status);
CREATE INDEX IF NOT EXISTS idx_backfill_jobs_symbol ON backfill_jobs (symbol, created_at);
