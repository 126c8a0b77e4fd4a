-- Reconciliation warehouse tables (contracts.md, "warehouse tables").
-- Plain SQL accepted by both PostgreSQL and DuckDB. Table names are unqualified: the writer sets the
-- schema (search_path) before running this file. JSON documents are stored as text (portable);
-- in PostgreSQL query them with ::jsonb.

CREATE TABLE IF NOT EXISTS recon_run (
    run_id          text PRIMARY KEY,
    started_at      timestamptz,
    finished_at     timestamptz,
    period          text NOT NULL,
    accounts        text NOT NULL,          -- comma-separated waba ids
    scope           text NOT NULL,          -- 'full' or 'dispute:<id>'
    tool_version    text NOT NULL,
    input_checksums text NOT NULL,          -- JSON: [{"path", "rows", "sha256"}, ...]
    status          text NOT NULL,          -- 'published' or 'failed'
    counts          text NOT NULL,          -- JSON: run.json "counts"
    error           text NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS recon_variance (
    waba_id           text NOT NULL,
    billing_month     text NOT NULL,
    market            text NOT NULL,
    pricing_model     text NOT NULL,
    category          text NOT NULL,
    pricing_type      text NOT NULL,
    expected_quantity bigint NOT NULL,
    invoiced_quantity bigint NOT NULL,
    quantity_diff     bigint NOT NULL,
    expected_amount   numeric(18, 6) NOT NULL,
    invoiced_amount   numeric(18, 6) NOT NULL,
    amount_diff       numeric(18, 6) NOT NULL,
    currency          text NOT NULL,
    status            text NOT NULL,
    run_id            text NOT NULL,
    scope             text NOT NULL,
    PRIMARY KEY (waba_id, billing_month, scope, market, pricing_model, category, pricing_type)
);

CREATE TABLE IF NOT EXISTS recon_unit (
    unit_id            text NOT NULL,
    waba_id            text NOT NULL,
    phone_number_id    text NOT NULL,
    user_wa_id         text NOT NULL,
    country            text NOT NULL,
    market             text NOT NULL,
    pricing_model      text NOT NULL,
    category           text NOT NULL,
    pricing_type       text NOT NULL,
    opened_at          timestamptz NOT NULL,
    expires_at         timestamptz,
    opening_message_id text NOT NULL,
    message_count      integer NOT NULL,
    billing_month      text NOT NULL,
    tier               text NOT NULL,
    rate               numeric(18, 6),          -- NULL = no rate found (unpriced), never 0
    amount             numeric(18, 6),
    currency           text NOT NULL,
    run_id             text NOT NULL,
    scope              text NOT NULL
    -- key (waba_id, billing_month, scope, unit_id): a PRIMARY KEY on PostgreSQL (002_recon_unit_keys.postgresql.sql);
    -- on DuckDB the writer checks uniqueness before loading, because ART indexes make bulk slice deletes
    -- about 20x slower there (columnar scans answer the dispute queries fast enough).
);
