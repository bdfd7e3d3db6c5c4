-- Where the sync of a mirrored calendar (Google) last read up to: its nextSyncToken, so that a
-- restart continues incrementally. NULL (or no row) = the next read is a full one.
CREATE TABLE calendar_sync (
    calendar_id TEXT PRIMARY KEY,
    sync_token TEXT,
    updated_at TEXT NOT NULL
);
