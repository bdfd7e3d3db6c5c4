-- Numbers that opted out of SMS (STOP, Twilio's OptOutType=STOP): Sara sends them no SMS
-- until they opt in again (START), when their row is deleted. Keyed by the contact key, so
-- the number itself is not stored here.
CREATE TABLE sms_opt_outs (
    contact_key TEXT PRIMARY KEY,
    opted_out_at TIMESTAMPTZ NOT NULL
);
