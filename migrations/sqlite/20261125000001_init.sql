-- Sara's embedded store: contacts, conversations (state + version), the turn log and bookings.
-- Times are TEXT in one fixed-width UTC form (YYYY-MM-DDTHH:MM:SS.ffffffZ) so that comparing
-- the text compares the instants.
-- `contact_key` is how rows find a contact. Today it is the E.164 phone; when personal data
-- is encrypted at rest it becomes a keyed hash of the phone and `phone` becomes ciphertext,
-- without changing how rows are joined.

CREATE TABLE contacts (
    contact_key TEXT PRIMARY KEY NOT NULL,
    phone       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE conversations (
    contact_key TEXT PRIMARY KEY NOT NULL REFERENCES contacts (contact_key),
    -- the serialized conversation state (JSON)
    state       TEXT NOT NULL,
    -- compare-and-swap counter: every commit names the version it read
    version     INTEGER NOT NULL CHECK (version > 0),
    -- the seq of the newest turn, so that turn numbers stay gapless
    last_seq    INTEGER NOT NULL CHECK (last_seq >= 0),
    updated_at  TEXT NOT NULL
);

CREATE TABLE turns (
    id          INTEGER PRIMARY KEY,
    contact_key TEXT NOT NULL REFERENCES conversations (contact_key),
    seq         INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    -- the provider's message id; its uniqueness is what makes webhooks idempotent
    provider_id TEXT UNIQUE,
    text        TEXT NOT NULL,
    reply       TEXT NOT NULL,
    intent      TEXT NOT NULL,
    nlu         TEXT NOT NULL,
    understood  TEXT NOT NULL,
    at          TEXT NOT NULL,
    elapsed_ms  INTEGER NOT NULL,
    UNIQUE (contact_key, seq)
);

-- No foreign key to contacts: a booking is written (an effect of the turn) before the turn
-- that made it is committed.
CREATE TABLE bookings (
    id          TEXT PRIMARY KEY NOT NULL,
    contact_key TEXT NOT NULL,
    phone       TEXT NOT NULL,
    name        TEXT,
    email       TEXT,
    service     TEXT NOT NULL,
    start       TEXT NOT NULL,
    "end"       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'pending', 'cancelled')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK (start < "end")
);

CREATE INDEX bookings_start ON bookings (start);
CREATE INDEX bookings_contact ON bookings (contact_key);
