-- The outbox: one row per message Sara sends outside a webhook's HTTP answer, written in the
-- same transaction as the turn that caused it. The recipient and the payload are personal
-- data, sealed like the rest (AES-256-GCM, "outbox.recipient", "outbox.payload"); the
-- contact key orders one customer's messages (they leave in id order).
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_key TEXT NOT NULL,
    recipient BYTEA NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'email', 'voice')),
    kind TEXT NOT NULL CHECK (kind IN ('reply', 'confirmation', 'reminder', 'notice',
        'staff_alert', 'staff_reply')),
    payload BYTEA NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'delivered',
        'read', 'failed', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claim_owner TEXT,
    claim_until TIMESTAMPTZ,
    provider_id TEXT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (channel, next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_pending_by_contact ON outbox (contact_key, id) WHERE status = 'pending';
CREATE INDEX outbox_by_provider_id ON outbox (provider_id) WHERE provider_id IS NOT NULL;

-- Scheduled work (reminders, retries), claimed when due; the payload sealed ("jobs.payload").
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    payload BYTEA NOT NULL,
    unique_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    claim_owner TEXT,
    claim_until TIMESTAMPTZ,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_due ON jobs (due_at) WHERE status = 'pending';
