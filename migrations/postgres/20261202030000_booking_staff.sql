-- A booking is with one staff member when the business configures [[business.staff]]
-- ('' = with the business itself, as before). Two confirmed bookings may share a time only
-- when they are with different staff members, so the exclusion constraint that forbids
-- double booking now compares bookings of the same `staff` (text equality inside a GiST
-- index needs btree_gist, a trusted extension).
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings ADD COLUMN staff TEXT NOT NULL DEFAULT '';
ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (staff WITH =, tstzrange(start, "end") WITH &&)
    WHERE (status = 'confirmed');
