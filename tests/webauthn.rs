//! WebAuthn tests (in progress).
