-- Personal data encrypted at rest: phones, names, emails, the conversation state, the turn's
-- text, reply and understanding are AES-256-GCM blobs (format byte ‖ nonce ‖ ciphertext ‖
-- tag), and `contact_key` is hex(HMAC-SHA256(index key, E.164 phone)) instead of the phone.
--
-- Rows written in clear by the first schema cannot be converted here: the key lives outside
-- the database, and their contact keys were the phones themselves. Sara had not been deployed
-- when this landed, so rather than drop such rows silently or leave them in clear, this
-- migration refuses to run on a database that holds any (the CHECK below fails and names
-- itself); start from a fresh database file.
CREATE TEMP TABLE pre_encryption_guard (
    rows_in_clear INTEGER NOT NULL
        CONSTRAINT database_holds_rows_written_in_clear_before_encryption_start_a_fresh_one
        CHECK (rows_in_clear = 0)
);
INSERT INTO pre_encryption_guard (rows_in_clear)
SELECT (SELECT COUNT(*) FROM contacts) + (SELECT COUNT(*) FROM turns)
     + (SELECT COUNT(*) FROM bookings);
DROP TABLE pre_encryption_guard;

-- SQLite cannot change a column's type in place; the tables are empty, so rebuild them.
DROP TABLE turns;
DROP TABLE conversations;
DROP TABLE contacts;
DROP TABLE bookings;

-- `typeof(...) = 'blob'` checks keep a value in clear text from ever being written here.
CREATE TABLE contacts (
    contact_key TEXT PRIMARY KEY NOT NULL,
    phone       BLOB NOT NULL CHECK (typeof(phone) = 'blob'),
    created_at  TEXT NOT NULL
);

CREATE TABLE conversations (
    contact_key TEXT PRIMARY KEY NOT NULL REFERENCES contacts (contact_key),
    -- the serialized conversation state (JSON), encrypted: it holds names and dates
    state       BLOB NOT NULL CHECK (typeof(state) = 'blob'),
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
    -- the provider's message id (not personal data, kept clear): its uniqueness is what
    -- makes webhooks idempotent
    provider_id TEXT UNIQUE,
    text        BLOB NOT NULL CHECK (typeof(text) = 'blob'),
    reply       BLOB NOT NULL CHECK (typeof(reply) = 'blob'),
    intent      TEXT NOT NULL,
    nlu         TEXT NOT NULL,
    understood  BLOB NOT NULL CHECK (typeof(understood) = 'blob'),
    at          TEXT NOT NULL,
    elapsed_ms  INTEGER NOT NULL,
    UNIQUE (contact_key, seq)
);

-- No foreign key to contacts: a booking is written (an effect of the turn) before the turn
-- that made it is committed.
CREATE TABLE bookings (
    id          TEXT PRIMARY KEY NOT NULL,
    contact_key TEXT NOT NULL,
    phone       BLOB NOT NULL CHECK (typeof(phone) = 'blob'),
    name        BLOB CHECK (name IS NULL OR typeof(name) = 'blob'),
    email       BLOB CHECK (email IS NULL OR typeof(email) = 'blob'),
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

-- A known value sealed with the key in use when the database was first opened: a start with
-- another key fails clearly instead of reading garbage later.
CREATE TABLE store_key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sealed      BLOB NOT NULL,
    created_at  TEXT NOT NULL
);
