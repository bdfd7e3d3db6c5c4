-- Sara's production store: contacts, conversations (state + version), the turn log and bookings.
-- `contact_key` is how rows find a contact. Today it is the E.164 phone; when personal data
-- is encrypted at rest it becomes a keyed hash of the phone and `phone` becomes ciphertext,
-- without changing how rows are joined.

CREATE TABLE contacts (
    contact_key TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE conversations (
    contact_key TEXT PRIMARY KEY REFERENCES contacts (contact_key),
    -- the serialized conversation state (JSON, kept as the engine wrote it)
    state       TEXT NOT NULL,
    -- compare-and-swap counter: every commit names the version it read
    version     BIGINT NOT NULL CHECK (version > 0),
    -- the seq of the newest turn, so that turn numbers stay gapless
    last_seq    BIGINT NOT NULL CHECK (last_seq >= 0),
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE turns (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_key TEXT NOT NULL REFERENCES conversations (contact_key),
    seq         BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    -- the provider's message id; its uniqueness is what makes webhooks idempotent
    provider_id TEXT UNIQUE,
    text        TEXT NOT NULL,
    reply       TEXT NOT NULL,
    intent      TEXT NOT NULL,
    nlu         TEXT NOT NULL,
    understood  TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    elapsed_ms  BIGINT NOT NULL,
    UNIQUE (contact_key, seq)
);

-- No foreign key to contacts: a booking is written (an effect of the turn) before the turn
-- that made it is committed.
CREATE TABLE bookings (
    id          UUID PRIMARY KEY,
    contact_key TEXT NOT NULL,
    phone       TEXT NOT NULL,
    name        TEXT,
    email       TEXT,
    service     TEXT NOT NULL,
    start       TIMESTAMPTZ NOT NULL,
    "end"       TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'pending', 'cancelled')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CHECK (start < "end"),
    -- The database, not the application, forbids two confirmed bookings at once, so that
    -- several instances cannot double-book (SQLSTATE 23P01 on violation).
    CONSTRAINT bookings_no_overlap
        EXCLUDE USING gist (tstzrange(start, "end") WITH &&) WHERE (status = 'confirmed')
);

CREATE INDEX bookings_start ON bookings (start);
CREATE INDEX bookings_contact ON bookings (contact_key);
