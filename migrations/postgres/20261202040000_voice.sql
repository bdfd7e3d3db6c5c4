-- What a voice caller actually heard of a turn's reply before interrupting it
-- (ConversationRelay's utteranceUntilInterrupt), sealed like the reply ("turns.heard"); NULL
-- when the reply was heard whole or was not spoken.
ALTER TABLE turns ADD COLUMN heard BYTEA;

-- Voicemails left after an unanswered hand-over: where Twilio keeps the recording and its
-- transcription once Twilio sends one, both sealed ("voicemails.recording_url",
-- "voicemails.transcription"). One row per recording; Twilio's three callbacks (the
-- <Record> action, the recording status, the transcription) fill it in any order.
CREATE TABLE voicemails (
    recording_sid TEXT PRIMARY KEY NOT NULL,
    call_sid      TEXT NOT NULL,
    -- the caller's conversation (contacts.contact_key), when the caller's number is known
    contact_key   TEXT,
    recording_url BYTEA,
    duration_s    BIGINT,
    transcription BYTEA,
    -- whether the staff alert for it has been written to the outbox
    alerted       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX voicemails_by_call ON voicemails (call_sid);
CREATE INDEX voicemails_by_contact ON voicemails (contact_key);
