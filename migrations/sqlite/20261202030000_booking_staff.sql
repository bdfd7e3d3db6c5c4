-- A booking is with one staff member when the business configures [[business.staff]]
-- ('' = with the business itself, as before). Two confirmed bookings may share a time only
-- when they are with different staff members: the overlap check before each write compares
-- bookings of the same `staff`.
ALTER TABLE bookings ADD COLUMN staff TEXT NOT NULL DEFAULT '';
