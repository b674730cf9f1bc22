-- SQLite twin of ../027_create_feature_registry_usage.sql (updated_at is TEXT,
-- 'YYYY-MM-DD HH:MM:SS.fff' UTC).
CREATE TABLE IF NOT EXISTS feature_registry_usage (
    version VARCHAR(50) NOT NULL,
    hour_epoch INTEGER NOT NULL,
    computations INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    PRIMARY KEY (version, hour_epoch)
);
CREATE INDEX IF NOT EXISTS idx_feature_registry_usage_hour
    ON feature_registry_usage (hour_epoch);
