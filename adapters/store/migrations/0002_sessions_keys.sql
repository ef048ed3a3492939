-- Sessions get their sid and subject in columns of their own (logout finds them by these)
-- and a last-used time for the idle timeout. Rows from before have their sid and subject
-- read from their JSON, and count as used now.
ALTER TABLE sessions ADD COLUMN sid TEXT;
ALTER TABLE sessions ADD COLUMN subject TEXT;
ALTER TABLE sessions ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET
    sid = json_extract(data, '$.sid'),
    subject = json_extract(data, '$.subject'),
    last_used = CAST(strftime('%s', 'now') AS INTEGER);
CREATE INDEX sessions_sid ON sessions (sid);
CREATE INDEX sessions_subject ON sessions (subject);

-- The clients that took part in a session (for back-channel logout).
CREATE TABLE session_clients (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (sid, client_id)
) WITHOUT ROWID;

-- Signing keys: the PEM is sealed with the data key (AES-256-GCM) in `sealed_pem`; the
-- store moves any clear `pem` of an older database there on open and blanks `pem`.
-- `rotated_at` NULL: the key signs; else it is only published in the JWKS.
ALTER TABLE signing_keys ADD COLUMN sealed_pem TEXT;
ALTER TABLE signing_keys ADD COLUMN rotated_at INTEGER;

-- Change counters, bumped by triggers, so a running server sees changes made by another
-- process (the command line) with one cheap read.
CREATE TABLE change_counters (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO change_counters (name, n) VALUES ('clients', 0), ('signing_keys', 0);
CREATE TRIGGER clients_inserted AFTER INSERT ON clients
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'clients'; END;
CREATE TRIGGER clients_updated AFTER UPDATE ON clients
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'clients'; END;
CREATE TRIGGER clients_deleted AFTER DELETE ON clients
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'clients'; END;
CREATE TRIGGER signing_keys_inserted AFTER INSERT ON signing_keys
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'signing_keys'; END;
CREATE TRIGGER signing_keys_updated AFTER UPDATE ON signing_keys
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'signing_keys'; END;
CREATE TRIGGER signing_keys_deleted AFTER DELETE ON signing_keys
    BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'signing_keys'; END;
