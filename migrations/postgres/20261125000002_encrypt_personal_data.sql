-- Personal data encrypted at rest: phones, names, emails, the conversation state, the turn's
-- text, reply and understanding are AES-256-GCM values (format byte ‖ nonce ‖ ciphertext ‖
-- tag), and `contact_key` is hex(HMAC-SHA256(index key, E.164 phone)) instead of the phone.
--
-- Rows written in clear by the first schema cannot be converted here: the key lives outside
-- the database, and their contact keys were the phones themselves. Sara had not been deployed
-- when this landed, so rather than drop such rows silently or leave them in clear, this
-- migration refuses to run on a database that holds any; start from a fresh database.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM contacts) OR EXISTS (SELECT 1 FROM turns)
        OR EXISTS (SELECT 1 FROM bookings) THEN
        RAISE EXCEPTION 'this database holds rows written in clear before encryption at rest; '
            'start from a fresh database';
    END IF;
END
$$;

-- The tables are empty (checked above), so the USING clauses never run on real data.
ALTER TABLE contacts ALTER COLUMN phone TYPE BYTEA USING convert_to(phone, 'UTF8');
ALTER TABLE conversations ALTER COLUMN state TYPE BYTEA USING convert_to(state, 'UTF8');
ALTER TABLE turns
    ALTER COLUMN text TYPE BYTEA USING convert_to(text, 'UTF8'),
    ALTER COLUMN reply TYPE BYTEA USING convert_to(reply, 'UTF8'),
    ALTER COLUMN understood TYPE BYTEA USING convert_to(understood, 'UTF8');
ALTER TABLE bookings
    ALTER COLUMN phone TYPE BYTEA USING convert_to(phone, 'UTF8'),
    ALTER COLUMN name TYPE BYTEA USING convert_to(name, 'UTF8'),
    ALTER COLUMN email TYPE BYTEA USING convert_to(email, 'UTF8');

-- A known value sealed with the key in use when the database was first opened: a start with
-- another key fails clearly instead of reading garbage later.
CREATE TABLE store_key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sealed      BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
