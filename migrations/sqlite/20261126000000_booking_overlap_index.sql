-- The overlap check before each booking write searches confirmed bookings by start within a
-- window bounded by the longest confirmed booking (see `overlaps_confirmed`): both are
-- index searches, so a write no longer visits every earlier booking.
CREATE INDEX bookings_confirmed_start ON bookings (start, "end") WHERE status = 'confirmed';
CREATE INDEX bookings_confirmed_length ON bookings ((julianday("end") - julianday(start)))
    WHERE status = 'confirmed';
