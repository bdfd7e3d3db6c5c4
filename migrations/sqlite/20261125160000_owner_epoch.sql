-- The fencing token of the lease a conversation was last committed under (0 = never fenced).
-- A commit that carries a token requires `owner_epoch <= token`, so a writer whose lease was
-- taken over by a newer owner cannot commit after that owner has.
ALTER TABLE conversations ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0;
