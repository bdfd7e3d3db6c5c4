-- With calendar.provider = "google" the store stays the record: each booking row also names
-- the Google event that mirrors it (NULL for a booking of the local calendar).
ALTER TABLE bookings ADD COLUMN event_id TEXT;
