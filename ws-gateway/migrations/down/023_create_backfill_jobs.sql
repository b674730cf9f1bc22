DROP TABLE IF EXISTS backfill_jobs;
