-- The rest of a turn's reply beside its text (WhatsApp buttons, a voice hand-over or
-- hang-up, silence), sealed JSON like the text (AES-256-GCM, "turns.reply_extra"); NULL when
-- the reply is its text alone, as on every row written before this column. A re-delivered
-- message is answered with the whole reply again.
ALTER TABLE turns ADD COLUMN reply_extra BLOB;
