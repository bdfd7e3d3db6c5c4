-- The front-desk console's sessions: `GET /admin?token=` (or the login form) trades the admin
-- token for a random session id kept only in the browser's cookie; the row holds the id's
-- SHA-256 (a copy of this table opens no session) and when it stops being valid. Times are
-- fixed-width UTC text, as in every table here.
CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- What was done to personal data and when (`sara forget`): the contact key (a keyed hash,
-- not the number) and counts, never the data itself.
CREATE TABLE privacy_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    contact_key TEXT,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
