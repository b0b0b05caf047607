//! Enrollment: the two-factor status, starting an enrollment (setup), adding an
//! authenticator, and confirming it with a first code.

use std::time::Duration;

use zeroize::Zeroizing;

use super::password::check_name;
use super::{RecentAuth, Service};
use crate::backup::BackupCode;
use crate::events::Event;
use crate::provisioning::{OtpAuthUri, QrCode};
use crate::secret::{KeyedHash, Secret};
use crate::store::{AuthenticatorId, AuthenticatorRecord, PendingEnrollment, Store, UserId};
use crate::totp::TotpKey;
use crate::{Error, Result, backup};

/// A started enrollment: what the user's authenticator app needs. Show it once
/// (QR and the secret as text for manual entry), then forget it: the server keeps
/// only the sealed secret.
///
/// `Debug` is redacted.
pub struct EnrollmentSetup {
    uri: OtpAuthUri,
    expires_in: Duration,
    authenticator_id: AuthenticatorId,
    name: String,
}

impl std::fmt::Debug for EnrollmentSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentSetup")
            .field("uri", &self.uri)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl EnrollmentSetup {
    /// The new secret (for manual entry: `secret().to_base32()`).
    pub fn secret(&self) -> &Secret {
        self.uri.secret()
    }

    /// The provisioning URI.
    pub fn otpauth(&self) -> &OtpAuthUri {
        &self.uri
    }

    /// The `otpauth://` URI as text.
    pub fn uri(&self) -> Zeroizing<String> {
        self.uri.to_uri()
    }

    /// A QR code of the URI, to render as PNG, SVG or terminal text.
    ///
    /// Errors: `internal` if the URI is too long for a QR code (it never is for
    /// issuers and login names within their limits).
    pub fn qr(&self) -> Result<QrCode> {
        QrCode::new(&self.uri.to_uri())
    }

    /// How long the setup can be confirmed.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The id the authenticator will have once confirmed.
    pub fn authenticator_id(&self) -> &AuthenticatorId {
        &self.authenticator_id
    }

    /// The name the authenticator will have once confirmed.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A confirmed enrollment.
#[derive(Debug)]
#[non_exhaustive]
pub struct EnrollmentConfirmed {
    /// The new authenticator.
    pub authenticator_id: AuthenticatorId,
    /// The backup codes, when this confirmation turned 2FA on: show them once.
    /// `None` when an authenticator was added to an account that already had 2FA.
    pub backup_codes: Option<Vec<BackupCode>>,
}

/// What kind of authenticator it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthenticatorKind {
    /// A TOTP app (a phone).
    Totp,
    /// A security key or passkey (WebAuthn).
    WebAuthn,
}

impl AuthenticatorKind {
    /// A stable name: `totp`, `webauthn`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthenticatorKind::Totp => "totp",
            AuthenticatorKind::WebAuthn => "webauthn",
        }
    }

    /// The kind named by [`as_str`](Self::as_str); `None` for any other string.
    pub fn parse(name: &str) -> Option<AuthenticatorKind> {
        match name {
            "totp" => Some(AuthenticatorKind::Totp),
            "webauthn" => Some(AuthenticatorKind::WebAuthn),
            _ => None,
        }
    }
}

/// One authenticator, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AuthenticatorInfo {
    /// Its id (for [`Service::remove_authenticator`]).
    pub id: AuthenticatorId,
    /// Its name.
    pub name: String,
    /// A phone app or a security key.
    pub kind: AuthenticatorKind,
    /// When it was confirmed (Unix seconds).
    pub created_at: u64,
    /// `false` when its secret cannot be opened with the service's key ring (its
    /// sealing key was removed, or the stored blob is damaged): codes from it are
    /// refused. Remove it and add the phone again.
    pub readable: bool,
    /// `true` when its secret is shorter than the 128 bits the crate makes (an
    /// imported secret, from 80 bits): it works, but invite the user to set the
    /// phone up again (add a new authenticator, then remove this one).
    pub weak: bool,
}

/// An account's two-factor status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TwoFactorStatus {
    /// The login name.
    pub username: String,
    /// Whether 2FA is on.
    pub enabled: bool,
    /// Unspent backup codes (0 while 2FA is off).
    pub backup_codes_remaining: u32,
    /// The authenticators, oldest first.
    pub authenticators: Vec<AuthenticatorInfo>,
    /// `true` when the backup codes were made with a key that is no longer the key
    /// ring's active key (or before 0.2 recorded which key made them, on a ring with
    /// several keys): they work while that key stays in the ring, so ask the user to
    /// make new ones before the key is removed. See
    /// [`KeyRing`](crate::secret::KeyRing) on rotation.
    pub backup_codes_need_regeneration: bool,
}

const FIRST_AUTHENTICATOR_NAME: &str = "authenticator";

impl<S: Store> Service<S> {
    /// The account's two-factor status.
    ///
    /// Errors: `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn status(&self, user_id: &UserId) -> Result<TwoFactorStatus> {
        let store = &self.inner.store;
        let account = self.account_record(user_id).await?;
        let keys = &self.inner.keys;
        let (backup_codes_remaining, authenticators) = if account.two_factor_enabled {
            let auths = store.authenticators(user_id).await?;
            (
                store.backup_codes_remaining(user_id).await?,
                auths
                    .into_iter()
                    .map(|a| {
                        if a.sealed_secret.is_record() {
                            let readable = keys.open_record(user_id.as_str(), &a.sealed_secret);
                            return AuthenticatorInfo {
                                readable: readable.is_ok(),
                                weak: false,
                                kind: AuthenticatorKind::WebAuthn,
                                id: a.id,
                                name: a.name,
                                created_at: a.created_at,
                            };
                        }
                        let opened = keys.open(user_id.as_str(), &a.sealed_secret);
                        AuthenticatorInfo {
                            kind: AuthenticatorKind::Totp,
                            readable: opened.is_ok(),
                            weak: opened.is_ok_and(|s| s.is_weak()),
                            id: a.id,
                            name: a.name,
                            created_at: a.created_at,
                        }
                    })
                    .collect(),
            )
        } else {
            (0, Vec::new())
        };
        let backup_codes_need_regeneration = backup_codes_remaining > 0
            && match account.backup_codes_key_id {
                Some(id) => id != keys.active_id(),
                None => keys.key_ids().len() > 1,
            };
        Ok(TwoFactorStatus {
            username: account.username,
            enabled: account.two_factor_enabled,
            backup_codes_remaining,
            authenticators,
            backup_codes_need_regeneration,
        })
    }

    /// Starts turning 2FA on: makes a secret, stores it sealed as the account's
    /// pending enrollment (replacing any earlier one) and returns what the
    /// authenticator app needs. Nothing is enabled until
    /// [`confirm_enrollment`](Self::confirm_enrollment).
    ///
    /// Needs a recent authentication ([`RecentAuth`]): a stolen session alone must not
    /// turn 2FA on with the thief's phone.
    ///
    /// Errors: `reauthentication_required`, `two_factor_already_enabled`,
    /// `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn setup_two_factor(&self, proof: &RecentAuth) -> Result<EnrollmentSetup> {
        self.begin_enrollment(proof, FIRST_AUTHENTICATOR_NAME, false)
            .await
    }

    /// The pending setup if there is one, else a new one: what a setup page shows,
    /// so that a reload shows the QR code the user may already have scanned instead
    /// of replacing it. A pending *added* authenticator is not resumed here.
    ///
    /// Errors: as [`setup_two_factor`](Self::setup_two_factor), plus
    /// `sealed_secret_invalid` and `unknown_key`.
    #[tracing::instrument(skip_all)]
    pub async fn resume_or_setup_two_factor(&self, proof: &RecentAuth) -> Result<EnrollmentSetup> {
        self.check_recent(proof).await?;
        if let Some((setup, false)) = self.pending(proof).await? {
            return Ok(setup);
        }
        self.setup_two_factor(proof).await
    }

    /// Starts adding another authenticator (a second phone) to an account with 2FA
    /// on; confirm it like the first with [`confirm_enrollment`](Self::confirm_enrollment).
    ///
    /// Needs a recent authentication; at most
    /// [`max_authenticators`](super::ServiceBuilder::max_authenticators) per account.
    ///
    /// Errors: `reauthentication_required`, `two_factor_not_enabled`,
    /// `too_many_authenticators`, `invalid_input` (name), `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn add_authenticator(
        &self,
        proof: &RecentAuth,
        name: &str,
    ) -> Result<EnrollmentSetup> {
        let name = check_name(name)?;
        self.begin_enrollment(proof, &name, true).await
    }

    async fn begin_enrollment(
        &self,
        proof: &RecentAuth,
        name: &str,
        adding: bool,
    ) -> Result<EnrollmentSetup> {
        self.check_recent(proof).await?;
        let user_id = &proof.user_id;
        let now = self.now();
        let account = self.account_record(user_id).await?;
        match (adding, account.two_factor_enabled) {
            (false, true) => return Err(Error::TwoFactorAlreadyEnabled),
            (true, false) => return Err(Error::TwoFactorNotEnabled),
            _ => {}
        }
        if adding {
            let count = self.inner.store.authenticators(user_id).await?.len();
            if count >= self.inner.config.max_authenticators as usize {
                return Err(Error::TooManyAuthenticators);
            }
        }
        let secret = Secret::generate_bits(Secret::DEFAULT_BITS)?;
        let sealed = self.inner.keys.seal(user_id.as_str(), &secret)?;
        let ttl = self.inner.config.enrollment_ttl;
        let enrollment = PendingEnrollment {
            id: crate::token::random_hex_id(),
            name: name.to_owned(),
            sealed_secret: sealed,
            adding,
            expires_at: now.saturating_add(ttl),
        };
        let uri = OtpAuthUri::new(
            &self.inner.config.issuer,
            &account.username,
            secret,
            self.inner.totp,
        )?;
        self.inner
            .store
            .put_enrollment(user_id, &enrollment)
            .await?;
        self.emit(Event::EnrollmentStarted {
            user_id: user_id.clone(),
        });
        Ok(EnrollmentSetup {
            uri,
            expires_in: Duration::from_secs(ttl),
            authenticator_id: AuthenticatorId::new(enrollment.id),
            name: enrollment.name,
        })
    }

    /// The user's pending enrollment, as [`setup_two_factor`](Self::setup_two_factor)
    /// or [`add_authenticator`](Self::add_authenticator) returned it (with the time
    /// left), or `None` when there is none or it expired. It shows the secret: it
    /// needs a recent authentication like the setup itself.
    ///
    /// Errors: `reauthentication_required`, `not_found`, `sealed_secret_invalid`,
    /// `unknown_key`, `unavailable`.
    pub async fn pending_enrollment(&self, proof: &RecentAuth) -> Result<Option<EnrollmentSetup>> {
        self.check_recent(proof).await?;
        Ok(self.pending(proof).await?.map(|(setup, _)| setup))
    }

    /// The pending enrollment and whether it adds an authenticator.
    async fn pending(&self, proof: &RecentAuth) -> Result<Option<(EnrollmentSetup, bool)>> {
        let user_id = &proof.user_id;
        let now = self.now();
        let store = &self.inner.store;
        let Some(enrollment) = store.enrollment(user_id, now).await? else {
            return Ok(None);
        };
        let account = self.account_record(user_id).await?;
        let secret = self
            .inner
            .keys
            .open(user_id.as_str(), &enrollment.sealed_secret)?;
        let uri = OtpAuthUri::new(
            &self.inner.config.issuer,
            &account.username,
            secret,
            self.inner.totp,
        )?;
        let setup = EnrollmentSetup {
            uri,
            expires_in: Duration::from_secs(enrollment.expires_at.saturating_sub(now)),
            authenticator_id: AuthenticatorId::new(enrollment.id),
            name: enrollment.name,
        };
        Ok(Some((setup, enrollment.adding)))
    }

    /// Confirms the pending enrollment with a code from the new authenticator. The
    /// code's time step is marked used. When this turns 2FA on, the result carries
    /// the backup codes, shown this once.
    ///
    /// Like every factor change, a confirmation revokes the account's trusted devices
    /// and ends its other sessions.
    ///
    /// Errors: `reauthentication_required`, `invalid_input`, `invalid_code`,
    /// `setup_expired`, `two_factor_already_enabled` (a first setup confirmed after
    /// 2FA was turned on elsewhere), `two_factor_not_enabled` (an added
    /// authenticator after 2FA was turned off), `too_many_authenticators`,
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_enrollment(
        &self,
        proof: &RecentAuth,
        code: &str,
    ) -> Result<EnrollmentConfirmed> {
        self.check_recent(proof).await?;
        let user_id = &proof.user_id;
        let now = self.now();
        let code = self.inner.totp.normalize_code(code)?;
        let store = &self.inner.store;
        let enrollment = store
            .enrollment(user_id, now)
            .await?
            .ok_or(Error::SetupExpired)?;
        let account = self.account_record(user_id).await?;
        match (enrollment.adding, account.two_factor_enabled) {
            (false, true) => return Err(Error::TwoFactorAlreadyEnabled),
            (true, false) => return Err(Error::TwoFactorNotEnabled),
            _ => {}
        }
        let secret = self
            .inner
            .keys
            .open(user_id.as_str(), &enrollment.sealed_secret)?;
        let key = TotpKey::new(&self.inner.totp, secret.expose_bytes());
        let Some(step) = key.verify(&code, now) else {
            return Err(Error::InvalidCode {
                remaining_attempts: None,
            });
        };
        if !store.take_enrollment(user_id, &enrollment.id, now).await? {
            return Err(Error::SetupExpired);
        }
        let authenticator = AuthenticatorRecord {
            // The id the setup announced (128 random bits, like any other id).
            id: AuthenticatorId::new(enrollment.id.clone()),
            user_id: user_id.clone(),
            name: enrollment.name,
            sealed_secret: enrollment.sealed_secret,
            created_at: now,
        };
        store
            .advance_last_step(&authenticator.id, step, self.replay_keep_until(step, now))
            .await?;
        // The others go first: a factor change must never be in place while they
        // still stand, and a failure here must not swallow the backup codes below.
        self.end_others(proof).await?;
        if enrollment.adding {
            store
                .add_authenticator(&authenticator, self.inner.config.max_authenticators)
                .await?;
            self.record(Event::AuthenticatorAdded {
                user_id: user_id.clone(),
                authenticator_id: authenticator.id.clone(),
            })
            .await;
            return Ok(EnrollmentConfirmed {
                authenticator_id: authenticator.id,
                backup_codes: None,
            });
        }
        let codes = self.new_backup_codes()?;
        let hashes = self.hash_backup_codes(&codes);
        store
            .enable_two_factor(&authenticator, &hashes, self.inner.keys.active_id())
            .await?;
        self.record(Event::TwoFactorEnabled {
            user_id: user_id.clone(),
            authenticator_id: authenticator.id.clone(),
        })
        .await;
        Ok(EnrollmentConfirmed {
            authenticator_id: authenticator.id,
            backup_codes: Some(codes),
        })
    }

    pub(super) fn hash_backup_codes(&self, codes: &[BackupCode]) -> Vec<KeyedHash> {
        codes
            .iter()
            .map(|c| backup::hash(&self.inner.keys, &c.normalized()))
            .collect()
    }
}
