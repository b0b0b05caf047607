-- secondfactor SQLite schema, version 3: WebAuthn (security keys and passkeys).
-- A registered key is an authenticator like a TOTP phone (sf_authenticators; its
-- sealed_secret is a sealed record holding the credential). What is new is the
-- ceremony state kept between a ceremony's start and its finish: single use, with
-- an expiry, bound to its user (and, for a login, to the pending login).
CREATE TABLE sf_webauthn_ceremonies (
    ceremony_key TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    login_hash   BLOB,
    state        BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sf_webauthn_ceremonies_expiry ON sf_webauthn_ceremonies (expires_at);
