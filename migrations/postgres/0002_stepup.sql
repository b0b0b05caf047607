-- secondfactor PostgreSQL schema, version 2: step-up authentication.
-- Backup-code key ids, the account's security log, and sessions listed by account.

-- The key-ring key whose keyed hashes the backup codes are; NULL without codes, or
-- for codes made before this version recorded it.
ALTER TABLE sf_accounts ADD COLUMN backup_codes_key_id BIGINT;

-- The account's security log: newest = highest id.
CREATE TABLE sf_security_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT   NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    method  TEXT,
    client  TEXT,
    detail  TEXT
);
CREATE INDEX sf_security_log_user ON sf_security_log (user_id, id);

-- Sessions now carry an id (for lists), the login method and the time of the last
-- authentication. Sessions made by 0.1 have no meaningful id or method, so they are
-- deleted: their owners simply log in again. The lock keeps a 0.1 instance from
-- inserting a session between the DELETE and the new NOT NULL columns.
LOCK TABLE sf_sessions IN ACCESS EXCLUSIVE MODE;
DELETE FROM sf_sessions;
ALTER TABLE sf_sessions
    ADD COLUMN seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN id               TEXT   NOT NULL,
    ADD COLUMN method           TEXT   NOT NULL,
    ADD COLUMN authenticated_at BIGINT NOT NULL,
    ADD CONSTRAINT sf_sessions_id_key UNIQUE (id);
CREATE INDEX sf_sessions_user ON sf_sessions (user_id, created_at, seq);
