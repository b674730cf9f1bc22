-- Feature Service: how many vectors each Feature Registry version computed, per hour (FR-062,
-- FR-067). The usage route counts a version's computations of the last 24 h from here, so a
-- version the service computed before a restart still counts as in use and cannot be deleted.
-- The service adds its counts every minute (computations = computations + new ones; several
-- instances on one database add up) and deletes rows older than two days.
-- hour_epoch: whole hours since 1970-01-01 00:00 UTC of the vectors' close times.
-- Idempotent: running it again changes nothing.

CREATE TABLE IF NOT EXISTS feature_registry_usage (
    version VARCHAR(50) NOT NULL,
    hour_epoch BIGINT NOT NULL,
    computations BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP NOT NULL DEFAULT NOW(),
    PRIMARY KEY (version, hour_epoch)
);
CREATE INDEX IF NOT EXISTS idx_feature_registry_usage_hour
    ON feature_registry_usage (hour_epoch);
