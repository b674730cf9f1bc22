-- SQLite twin of 023_create_backfill_jobs.sql (dates as YYYY-MM-DD text, JSON as text).
CREATE TABLE IF NOT EXISTS backfill_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    category VARCHAR(10) NOT NULL DEFAULT 'linear',
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    data_types TEXT NOT NULL CHECK (json_valid(data_types)),
    status VARCHAR(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'cancelled')),
    trigger VARCHAR(20) NOT NULL DEFAULT 'api',
    progress TEXT CHECK (progress IS NULL OR json_valid(progress)),
    completed_days TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(completed_days)),
    failed_days TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(failed_days)),
    unavailable TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(unavailable)),
    error_message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT,
    CHECK (end_date >= start_date)
);
CREATE INDEX IF NOT EXISTS idx_backfill_jobs_status ON backfill_jobs (status);
CREATE INDEX IF NOT EXISTS idx_backfill_jobs_symbol ON backfill_jobs (symbol, created_at);
