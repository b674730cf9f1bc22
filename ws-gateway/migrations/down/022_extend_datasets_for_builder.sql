-- A queued build cannot resume on the older schema (it has no 'queued' state): it is marked
-- failed with a reason. Random-split datasets have no representation there, so their presence
-- makes this downgrade fail on the CHECK below; delete them first if that is really intended.
UPDATE datasets
SET status = 'failed',
    error_message = COALESCE(error_message, 'queued build abandoned: schema downgraded below 022')
WHERE status = 'queued';

ALTER TABLE datasets
    DROP CONSTRAINT datasets_status_check,
    ADD CONSTRAINT datasets_status_check CHECK (status IN ('building', 'ready', 'failed')),
    DROP CONSTRAINT datasets_split_strategy_check,
    ADD CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward')),
    DROP CONSTRAINT IF EXISTS datasets_feature_interval_s_check,
    DROP COLUMN progress,
    DROP COLUMN folds,
    DROP COLUMN warnings,
    DROP COLUMN manifest,
    DROP COLUMN feature_interval_s,
    DROP COLUMN request;
