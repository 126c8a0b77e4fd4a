-- Indexes for dispute queries (docs/operations.md): by message, by user, by variance group; run history.
CREATE INDEX IF NOT EXISTS recon_unit_opening_message_idx ON recon_unit (opening_message_id);
CREATE INDEX IF NOT EXISTS recon_unit_user_idx ON recon_unit (user_wa_id);
CREATE INDEX IF NOT EXISTS recon_unit_group_idx ON recon_unit (waba_id, billing_month, scope, market, category);
CREATE INDEX IF NOT EXISTS recon_run_period_idx ON recon_run (period, scope);
