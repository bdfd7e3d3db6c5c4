-- The front-desk console's sessions: `GET /admin?token=` (or the login form) trades the admin
-- token for a random session id kept only in the browser's cookie; the row holds the id's
-- SHA-256 (a copy of this table opens no session) and when it stops being valid.
CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- What was done to personal data and when (`sara forget`): the contact key (a keyed hash,
-- not the number) and counts, never the data itself.
CREATE TABLE privacy_audit (
    id BIGSERIAL PRIMARY KEY,
    action TEXT NOT NULL,
    contact_key TEXT,
    detail TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
