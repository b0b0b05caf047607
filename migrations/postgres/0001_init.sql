-- secondfactor PostgreSQL schema, version 1.
-- Ids are TEXT, keyed hashes 32-byte BYTEA, sealed secrets BYTEA, times Unix seconds
-- as BIGINT. Tables are created in the first schema of the connection's search_path.

CREATE TABLE sf_accounts (
    id                 TEXT    NOT NULL PRIMARY KEY,
    username           TEXT    NOT NULL,
    password_hash      TEXT    NOT NULL,
    password_epoch     BIGINT  NOT NULL,
    two_factor_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT  NOT NULL,
    CONSTRAINT sf_accounts_username_key UNIQUE (username)
);

CREATE TABLE sf_authenticators (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT   NOT NULL UNIQUE,
    user_id       TEXT   NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    name          TEXT   NOT NULL,
    sealed_secret BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX sf_authenticators_user ON sf_authenticators (user_id, created_at, seq);

CREATE TABLE sf_backup_codes (
    user_id   TEXT  NOT NULL REFERENCES sf_accounts (id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL CHECK (octet_length(code_hash) = 32),
    PRIMARY KEY (user_id, code_hash)
);

-- Ephemeral state: no foreign keys, so that it also works next to your own users
-- table (see `Combined`).

CREATE TABLE sf_pending_logins (
    token_hash     BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id        TEXT   NOT NULL,
    password_epoch BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sf_pending_logins_expiry ON sf_pending_logins (expires_at);

CREATE TABLE sf_enrollments (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    id            TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    sealed_secret BYTEA   NOT NULL,
    adding        BOOLEAN NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX sf_enrollments_expiry ON sf_enrollments (expires_at);

CREATE TABLE sf_authenticator_steps (
    authenticator_id TEXT   NOT NULL PRIMARY KEY,
    last_step        BIGINT NOT NULL,
    keep_until       BIGINT NOT NULL
);
CREATE INDEX sf_authenticator_steps_expiry ON sf_authenticator_steps (keep_until);

CREATE TABLE sf_throttles (
    key        TEXT   NOT NULL PRIMARY KEY,
    count      BIGINT NOT NULL,
    until      BIGINT NOT NULL,
    keep_until BIGINT NOT NULL
);
CREATE INDEX sf_throttles_expiry ON sf_throttles (keep_until);

CREATE TABLE sf_devices (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash     BYTEA  NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    id             TEXT   NOT NULL,
    user_id        TEXT   NOT NULL,
    label          TEXT   NOT NULL,
    password_epoch BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sf_devices_user ON sf_devices (user_id, created_at, seq);
CREATE INDEX sf_devices_expiry ON sf_devices (expires_at);

CREATE TABLE sf_sessions (
    token_hash     BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id        TEXT   NOT NULL,
    password_epoch BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sf_sessions_expiry ON sf_sessions (expires_at);
