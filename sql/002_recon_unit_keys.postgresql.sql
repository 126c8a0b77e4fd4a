-- PostgreSQL: the unit key and the indexes for dispute queries (docs/operations.md).
ALTER TABLE recon_unit ADD CONSTRAINT recon_unit_pkey PRIMARY KEY (waba_id, billing_month, scope, unit_id);
CREATE INDEX IF NOT EXISTS recon_unit_opening_message_idx ON recon_unit (opening_message_id);
CREATE INDEX IF NOT EXISTS recon_unit_user_idx ON recon_unit (user_wa_id);
CREATE INDEX IF NOT EXISTS recon_unit_group_idx ON recon_unit (waba_id, billing_month, scope, market, category);
