-- The retention window for message text ([privacy] retention_days): a daily job redacts the
-- words of turns older than the window (text, reply, what was understood and heard become
-- sealed empty values) and stamps when; the turn itself, its time, channel and intent stay,
-- and so do bookings. NULL = not redacted. The partial index finds what a run has left to do.
ALTER TABLE turns ADD COLUMN redacted_at TIMESTAMPTZ;
CREATE INDEX turns_unredacted_by_time ON turns (at) WHERE redacted_at IS NULL;
