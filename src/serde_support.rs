//! `Serialize`/`Deserialize` for the data a service sends to its clients or writes to
//! its logs (feature `serde`).
//!
//! What implements them: the ids ([`UserId`](crate::store::UserId) and the others, as
//! plain strings), [`TwoFactorStatus`](crate::flow::TwoFactorStatus),
//! [`AuthenticatorInfo`](crate::flow::AuthenticatorInfo),
//! [`SessionInfo`](crate::flow::SessionInfo), [`TrustedDevice`](crate::flow::TrustedDevice),
//! [`SecurityEvent`](crate::security_log::SecurityEvent), [`ErrorBody`](crate::error::ErrorBody)
//! and the names in them ([`AuthMethod`](crate::AuthMethod),
//! [`SecurityEventKind`](crate::security_log::SecurityEventKind),
//! [`AuthenticatorKind`](crate::flow::AuthenticatorKind),
//! [`Limiter`](crate::error::Limiter): their stable snake_case names), and
//! [`Event`](crate::events::Event) (serialize only, for logs: `{"event": "login_succeeded", …}`,
//! durations in whole seconds).
//!
//! What never does: secrets, tokens, codes, proofs of login, ceremony states and store
//! records. The list is checked at compile time below: deriving `Serialize` on any of
//! them stops the build.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Serialize` as the stable name, `Deserialize` through the type's `parse`.
macro_rules! by_name {
    ($($ty:ty => $what:literal),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                <$ty>::parse(&name).ok_or_else(|| {
                    serde::de::Error::invalid_value(serde::de::Unexpected::Str(&name), &$what)
                })
            }
        }
    )*};
}

by_name! {
    crate::auth::AuthMethod => "an authentication method name",
    crate::security_log::SecurityEventKind => "a security event kind",
    crate::flow::AuthenticatorKind => "an authenticator kind",
    crate::error::Limiter => "a limiter name",
}

/// A duration as whole seconds (how the HTTP contract says `retry_after`).
pub(crate) fn duration_secs<S: Serializer>(
    d: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(d.as_secs())
}

/// Compile-time proof that no secret-bearing type implements `Serialize`: for each
/// listed type, `check` resolves only while the blanket impl below is the single
/// candidate; a `Serialize` impl on the type adds a second one and the build fails
/// ("type annotations needed").
mod never_serialized {
    trait AmbiguousIfSerialize<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
    #[allow(dead_code)]
    struct IsSerialize;
    impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<IsSerialize> for T {}

    macro_rules! never {
        ($($ty:ty),* $(,)?) => {
            const _: fn() = || {
                $(<$ty as AmbiguousIfSerialize<_>>::check();)*
            };
        };
    }

    never! {
        crate::secret::Secret,
        crate::secret::SealedSecret,
        crate::secret::SealingKey,
        crate::secret::KeyRing,
        crate::secret::KeyedHash,
        crate::password::PasswordHash,
        crate::password::PasswordHasher,
        crate::backup::BackupCode,
        crate::backup::NormalizedBackupCode,
        crate::totp::TotpKey,
        crate::totp::Code,
        crate::provisioning::OtpAuthUri,
        crate::provisioning::ImportedUri,
        crate::provisioning::QrCode,
        crate::token::LoginToken,
        crate::token::SessionToken,
        crate::token::DeviceToken,
        crate::token::KnownBrowserToken,
        crate::flow::Authenticated,
        crate::flow::RecentAuth,
        crate::flow::LoginOutcome,
        crate::flow::PendingLoginTicket,
        crate::flow::Session,
        crate::flow::EnrollmentSetup,
        crate::flow::EnrollmentConfirmed,
        crate::flow::SignIn,
        crate::flow::LoggedIn,
        crate::flow::ImportOutcome,
        crate::store::AccountRecord,
        crate::store::AuthenticatorRecord,
        crate::store::PendingLogin,
        crate::store::PendingEnrollment,
        crate::store::DeviceRecord,
        crate::store::SessionRecord,
        crate::store::CeremonyRecord,
        crate::store::ThrottleState,
        crate::Error,
    }

    #[cfg(feature = "webauthn")]
    never! {
        crate::flow::WebAuthnRegistered,
    }
}
