-- Run history lookups by period and scope (both dialects).
CREATE INDEX IF NOT EXISTS recon_run_period_idx ON recon_run (period, scope);
