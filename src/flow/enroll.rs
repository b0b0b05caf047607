//! Enrollment (setup → confirm), authenticators, disable, backup-code regeneration.

use std::time::Duration;

use zeroize::Zeroizing;

use super::Service;
use super::login::{Factor, SecondFactor, check_name};
use crate::backup::{self, BackupCode};
use crate::events::Event;
use crate::provisioning::{OtpAuthUri, QrCode};
use crate::secret::{KeyedHash, Secret};
use crate::store::{
    AuthenticatorId, AuthenticatorRecord, PendingEnrollment, RemoveOutcome, Store, UserId,
};
use crate::throttle;
use crate::totp::TotpKey;
use crate::{Error, Result};

/// A started enrollment: what the user's authenticator app needs. Show it once
/// (QR and the secret as text for manual entry), then forget it: the server keeps
/// only the sealed secret.
///
/// `Debug` is redacted.
pub struct EnrollmentSetup {
    uri: OtpAuthUri,
    expires_in: Duration,
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

/// One authenticator, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatorInfo {
    /// Its id (for [`Service::remove_authenticator`]).
    pub id: AuthenticatorId,
    /// Its name.
    pub name: String,
    /// When it was confirmed (Unix seconds).
    pub created_at: u64,
}

/// An account's two-factor status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwoFactorStatus {
    /// The login name.
    pub username: String,
    /// Whether 2FA is on.
    pub enabled: bool,
    /// Unspent backup codes (0 while 2FA is off).
    pub backup_codes_remaining: u32,
    /// The authenticators, oldest first.
    pub authenticators: Vec<AuthenticatorInfo>,
}

const FIRST_AUTHENTICATOR_NAME: &str = "authenticator";

impl<S: Store> Service<S> {
    /// The account's two-factor status.
    ///
    /// Errors: `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn status(&self, user_id: &UserId) -> Result<TwoFactorStatus> {
        let store = &self.inner.store;
        let account = store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })?;
        let (backup_codes_remaining, authenticators) = if account.two_factor_enabled {
            let auths = store.authenticators(user_id).await?;
            (
                store.backup_codes_remaining(user_id).await?,
                auths
                    .into_iter()
                    .map(|a| AuthenticatorInfo {
                        id: a.id,
                        name: a.name,
                        created_at: a.created_at,
                    })
                    .collect(),
            )
        } else {
            (0, Vec::new())
        };
        Ok(TwoFactorStatus {
            username: account.username,
            enabled: account.two_factor_enabled,
            backup_codes_remaining,
            authenticators,
        })
    }

    /// Starts turning 2FA on: makes a secret, stores it sealed as the account's
    /// pending enrollment (replacing any earlier one) and returns what the
    /// authenticator app needs. Nothing is enabled until
    /// [`confirm_enrollment`](Self::confirm_enrollment).
    ///
    /// Errors: `two_factor_already_enabled`, `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn setup_two_factor(&self, user_id: &UserId) -> Result<EnrollmentSetup> {
        self.begin_enrollment(user_id, FIRST_AUTHENTICATOR_NAME, false)
            .await
    }

    /// Starts adding another authenticator (a second phone) to an account with 2FA
    /// on; confirm it like the first with [`confirm_enrollment`](Self::confirm_enrollment).
    ///
    /// Errors: `two_factor_not_enabled`, `invalid_input` (name), `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn add_authenticator(&self, user_id: &UserId, name: &str) -> Result<EnrollmentSetup> {
        let name = check_name(name)?;
        self.begin_enrollment(user_id, &name, true).await
    }

    async fn begin_enrollment(
        &self,
        user_id: &UserId,
        name: &str,
        adding: bool,
    ) -> Result<EnrollmentSetup> {
        let now = self.now();
        let account = self
            .inner
            .store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })?;
        match (adding, account.two_factor_enabled) {
            (false, true) => return Err(Error::TwoFactorAlreadyEnabled),
            (true, false) => return Err(Error::TwoFactorNotEnabled),
            _ => {}
        }
        let secret = Secret::generate();
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
        })
    }

    /// The user's pending enrollment, as [`setup_two_factor`](Self::setup_two_factor)
    /// or [`add_authenticator`](Self::add_authenticator) returned it (with the time
    /// left), or `None` when there is none or it expired.
    ///
    /// A web page uses this to show the same QR code again (after a reload or a
    /// mistyped confirmation code) instead of replacing the secret the user may
    /// already have scanned. Show it only to the logged-in owner.
    ///
    /// Errors: `not_found`, `sealed_secret_invalid`, `unknown_key`, `unavailable`.
    pub async fn pending_enrollment(&self, user_id: &UserId) -> Result<Option<EnrollmentSetup>> {
        let now = self.now();
        let store = &self.inner.store;
        let Some(enrollment) = store.enrollment(user_id, now).await? else {
            return Ok(None);
        };
        let account = store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })?;
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
        Ok(Some(EnrollmentSetup {
            uri,
            expires_in: Duration::from_secs(enrollment.expires_at.saturating_sub(now)),
        }))
    }

    /// Confirms the pending enrollment with a code from the new authenticator. The
    /// code's time step is marked used. When this turns 2FA on, the result carries
    /// the backup codes, shown this once.
    ///
    /// Errors: `invalid_input`, `invalid_code`, `setup_expired`,
    /// `two_factor_already_enabled` (a first setup confirmed after 2FA was turned on
    /// elsewhere), `two_factor_not_enabled` (an added authenticator after 2FA was
    /// turned off), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_enrollment(
        &self,
        user_id: &UserId,
        code: &str,
    ) -> Result<EnrollmentConfirmed> {
        let now = self.now();
        let code = self.inner.totp.normalize_code(code)?;
        let store = &self.inner.store;
        let enrollment = store
            .enrollment(user_id, now)
            .await?
            .ok_or(Error::SetupExpired)?;
        let account = store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })?;
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
            id: AuthenticatorId::random(),
            user_id: user_id.clone(),
            name: enrollment.name,
            sealed_secret: enrollment.sealed_secret,
            created_at: now,
        };
        store
            .advance_last_step(&authenticator.id, step, self.replay_keep_until(step, now))
            .await?;
        if enrollment.adding {
            store
                .add_authenticator(&authenticator, self.inner.config.max_authenticators)
                .await?;
            self.emit(Event::AuthenticatorAdded {
                user_id: user_id.clone(),
                authenticator_id: authenticator.id.clone(),
            });
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
        self.emit(Event::TwoFactorEnabled {
            user_id: user_id.clone(),
            authenticator_id: authenticator.id.clone(),
        });
        Ok(EnrollmentConfirmed {
            authenticator_id: authenticator.id,
            backup_codes: Some(codes),
        })
    }

    fn hash_backup_codes(&self, codes: &[BackupCode]) -> Vec<KeyedHash> {
        codes
            .iter()
            .map(|c| backup::hash(&self.inner.keys, &c.normalized()))
            .collect()
    }

    /// Removes one authenticator. The last one cannot be removed: disable 2FA instead.
    ///
    /// Errors: `not_found`, `invalid_input` (the last authenticator), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn remove_authenticator(&self, user_id: &UserId, id: &AuthenticatorId) -> Result<()> {
        match self.inner.store.remove_authenticator(user_id, id).await? {
            RemoveOutcome::Removed => {
                self.emit(Event::AuthenticatorRemoved {
                    user_id: user_id.clone(),
                    authenticator_id: id.clone(),
                });
                Ok(())
            }
            RemoveOutcome::NotFound => Err(Error::NotFound {
                what: "authenticator",
            }),
            RemoveOutcome::LastOne => Err(Error::input(
                "authenticator",
                "the last authenticator cannot be removed; disable two-factor authentication instead",
            )),
        }
    }

    /// Checks a second factor for an account-level action (disable, regenerate),
    /// counting the attempt on the account's throttle and spending the code.
    async fn verify_for_action(&self, user_id: &UserId, factor: Factor) -> Result<()> {
        let now = self.now();
        let store = &self.inner.store;
        let account = store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })?;
        if !account.two_factor_enabled {
            return Err(Error::TwoFactorNotEnabled);
        }
        let key = throttle::account_key(user_id);
        let reservation = self.reserve(&key, now).await?;
        let passed = match &factor {
            Factor::Totp(code) => {
                let auths = store.authenticators(user_id).await?;
                let matches = self.match_totp(user_id, &auths, code, now)?;
                if !matches.is_empty() && !self.spend_totp(user_id, &matches, now).await? {
                    return Err(Error::CodeAlreadyUsed);
                }
                !matches.is_empty()
            }
            Factor::Backup(code) => self.spend_backup_code(user_id, code).await?,
        };
        if !passed {
            return Err(self.failure(user_id, reservation, u32::MAX));
        }
        self.forget_failures(&key, reservation).await;
        Ok(())
    }

    /// Turns 2FA off after a valid TOTP or backup code: removes the authenticators and
    /// backup codes and revokes every trusted device.
    ///
    /// Errors: `invalid_input`, `invalid_code`, `code_already_used`,
    /// `two_factor_not_enabled`, `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn disable_two_factor(
        &self,
        user_id: &UserId,
        factor: SecondFactor<'_>,
    ) -> Result<()> {
        let factor = self.normalize_factor(factor)?;
        self.verify_for_action(user_id, factor).await?;
        self.inner.store.disable_two_factor(user_id).await?;
        self.revoke_all_devices(user_id).await?;
        self.emit(Event::TwoFactorDisabled {
            user_id: user_id.clone(),
        });
        Ok(())
    }

    /// Replaces the backup codes with a new set after a valid TOTP code; the old set
    /// stops working. Show the new codes once.
    ///
    /// Errors: `invalid_input`, `invalid_code`, `code_already_used`,
    /// `two_factor_not_enabled`, `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn regenerate_backup_codes(
        &self,
        user_id: &UserId,
        totp_code: &str,
    ) -> Result<Vec<BackupCode>> {
        let factor = self.normalize_factor(SecondFactor::Totp(totp_code))?;
        self.verify_for_action(user_id, factor).await?;
        let codes = self.new_backup_codes()?;
        let hashes = self.hash_backup_codes(&codes);
        self.inner
            .store
            .replace_backup_codes(user_id, &hashes, self.inner.keys.active_id())
            .await?;
        self.emit(Event::BackupCodesRegenerated {
            user_id: user_id.clone(),
        });
        Ok(codes)
    }
}
