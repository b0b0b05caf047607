-- secondfactor SQLite schema, version 1.
-- Ids are TEXT, keyed hashes 32-byte BLOBs, sealed secrets BLOBs, times Unix seconds.

CREATE TABLE sf_accounts (
    id                 TEXT    NOT NULL PRIMARY KEY,
    username           TEXT    NOT NULL UNIQUE,
    password_hash      TEXT    NOT NULL,
    password_epoch     INTEGER NOT NULL,
    two_factor_enabled INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL
);

CREATE TABLE sf_authenticators (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    user_id       TEXT    NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX sf_authenticators_user ON sf_authenticators (user_id, created_at, seq);

CREATE TABLE sf_backup_codes (
    user_id   TEXT NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;

-- Ephemeral state: no foreign keys, so that it also works next to your own users
-- table (see `Combined`).

CREATE TABLE sf_pending_logins (
    token_hash     BLOB    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    password_epoch INTEGER NOT NULL,
    attempts       INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sf_pending_logins_expiry ON sf_pending_logins (expires_at);

CREATE TABLE sf_enrollments (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    id            TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    adding        INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sf_enrollments_expiry ON sf_enrollments (expires_at);

CREATE TABLE sf_authenticator_steps (
    authenticator_id TEXT    NOT NULL PRIMARY KEY,
    last_step        INTEGER NOT NULL,
    keep_until       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sf_authenticator_steps_expiry ON sf_authenticator_steps (keep_until);

CREATE TABLE sf_throttles (
    key        TEXT    NOT NULL PRIMARY KEY,
    count      INTEGER NOT NULL,
    until      INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sf_throttles_expiry ON sf_throttles (keep_until);

CREATE TABLE sf_devices (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash     BLOB    NOT NULL UNIQUE,
    id             TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    label          TEXT    NOT NULL,
    password_epoch INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX sf_devices_user ON sf_devices (user_id, created_at, seq);
CREATE INDEX sf_devices_expiry ON sf_devices (expires_at);

CREATE TABLE sf_sessions (
    token_hash     BLOB    NOT NULL PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    password_epoch INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sf_sessions_expiry ON sf_sessions (expires_at);
