-- secondfactor SQLite schema, version 2: step-up authentication.
-- Backup-code key ids, the account's security log, and sessions listed by account.

-- The key-ring key whose keyed hashes the backup codes are; NULL without codes, or
-- for codes made before this version recorded it.
ALTER TABLE sf_accounts ADD COLUMN backup_codes_key_id INTEGER;

-- The account's security log: newest = highest id (AUTOINCREMENT: never reused, so
-- the order holds after trimming).
CREATE TABLE sf_security_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT    NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    method  TEXT,
    client  TEXT,
    detail  TEXT
);
CREATE INDEX sf_security_log_user ON sf_security_log (user_id, id);

-- Sessions now carry an id (for lists), the login method and the time of the last
-- authentication. Sessions made by 0.1 have no meaningful id or method, so they are
-- deleted: their owners simply log in again.
DROP TABLE sf_sessions;
CREATE TABLE sf_sessions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash       BLOB    NOT NULL UNIQUE,
    id               TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    password_epoch   INTEGER NOT NULL,
    method           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    authenticated_at INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX sf_sessions_user ON sf_sessions (user_id, created_at, seq);
CREATE INDEX sf_sessions_expiry ON sf_sessions (expires_at);
