-- How many times a booking was changed (moved or cancelled) after it was made: the SEQUENCE
-- of its calendar invites, which must grow by one with every change (RFC 5545 3.8.7.4).
ALTER TABLE bookings ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
