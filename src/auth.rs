//! How an account proved who it is: the leaf type shared by the flows, the store
//! records and the audit events (so that none of them imports another for it).

/// How the last step of a login (or a re-authentication) was passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Password alone (the account has no second factor), or a password change.
    Password,
    /// Password, then a TOTP code.
    Totp,
    /// Password, then a backup code.
    BackupCode,
    /// Password, on a trusted device.
    TrustedDevice,
    /// Password, then a security key or passkey (WebAuthn).
    WebAuthn,
}

impl AuthMethod {
    /// A stable name: `password`, `totp`, `backup_code`, `trusted_device`, `webauthn`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Totp => "totp",
            AuthMethod::BackupCode => "backup_code",
            AuthMethod::TrustedDevice => "trusted_device",
            AuthMethod::WebAuthn => "webauthn",
        }
    }

    /// The method named by [`as_str`](Self::as_str); `None` for any other string.
    pub fn parse(name: &str) -> Option<AuthMethod> {
        Some(match name {
            "password" => AuthMethod::Password,
            "totp" => AuthMethod::Totp,
            "backup_code" => AuthMethod::BackupCode,
            "trusted_device" => AuthMethod::TrustedDevice,
            "webauthn" => AuthMethod::WebAuthn,
            _ => return None,
        })
    }

    /// Whether this method passed a second factor.
    pub fn is_second_factor(&self) -> bool {
        matches!(
            self,
            AuthMethod::Totp | AuthMethod::BackupCode | AuthMethod::WebAuthn
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in [
            AuthMethod::Password,
            AuthMethod::Totp,
            AuthMethod::BackupCode,
            AuthMethod::TrustedDevice,
            AuthMethod::WebAuthn,
        ] {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(AuthMethod::parse("sms"), None);
    }
}
