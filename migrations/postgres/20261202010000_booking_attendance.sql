-- Whether the customer confirmed, in answer to a reminder, that they will come: 'confirmed'
-- or NULL. Set in the transaction of the turn that answered; a move clears it (the customer
-- confirmed the old time, not the new one).
ALTER TABLE bookings ADD COLUMN attendance TEXT CHECK (attendance IN ('confirmed'));
