-- A move or cancel voids its booking's pending reminders by key prefix. Written as a test of
-- each pending job's key, that was a scan of every pending job per void (0.39 ms a call in a
-- 30-second bench, three times a turn's INSERT, and growing with the jobs still to come).
-- The void is now a range of the unique index (from the prefix to the first key after it),
-- which needs the keys in byte order whatever the database's collation: under a linguistic
-- collation the range would not be the keys that start with the prefix.
ALTER TABLE jobs ALTER COLUMN unique_key TYPE TEXT COLLATE "C";
