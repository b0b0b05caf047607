//! Importing accounts from another application: [`Service::import_account`].
use zeroize::Zeroizing;

use super::Service;
use crate::events::Event;
use crate::password::PasswordHash;
use crate::provisioning::OtpAuthUri;
use crate::secret::Secret;
use crate::security_log::{SecurityEvent, SecurityEventKind};
use crate::store::{AccountRecord, AuthenticatorId, AuthenticatorRecord, Store, UserId};
use crate::{Error, Result};

use super::password::normalize_username;

/// The password an imported account brings along.
#[derive(Clone, Copy)]
pub enum LegacyPassword<'a> {
    /// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`), as Flask-Bcrypt stores it.
    Bcrypt(&'a str),
    /// The password itself (apps that stored it in clear): hashed with argon2id at
    /// import, never stored.
    Clear(&'a str),
}

impl std::fmt::Debug for LegacyPassword<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegacyPassword::Bcrypt(_) => f.write_str("Bcrypt(<redacted>)"),
            LegacyPassword::Clear(_) => f.write_str("Clear(<redacted>)"),
        }
    }
}

/// The TOTP secret an imported account brings along.
#[derive(Clone, Copy)]
pub enum ImportedTotp<'a> {
    /// Base32, as `pyotp.random_base32()` makes it (case, spaces and `=` padding are
    /// ignored; 80 to 512 bits).
    Base32(&'a str),
    /// An `otpauth://totp/…` URI, read with [`OtpAuthUri::parse_lenient`]. Its
    /// algorithm, digits and period must be the service's.
    Uri(&'a str),
}

impl std::fmt::Debug for ImportedTotp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportedTotp::Base32(_) => f.write_str("Base32(<redacted>)"),
            ImportedTotp::Uri(_) => f.write_str("Uri(<redacted>)"),
        }
    }
}

/// One account to import with [`Service::import_account`].
#[derive(Clone, Copy, Debug)]
pub struct ImportedAccount<'a> {
    /// The login name, which must already follow the crate's rule.
    pub username: &'a str,
    /// The password.
    pub password: LegacyPassword<'a>,
    /// The TOTP secret, if the account has one.
    pub totp: Option<ImportedTotp<'a>>,
    /// Whether 2FA is on in the source (the secret is imported only then).
    pub two_factor_enabled: bool,
}

/// What [`Service::import_account`] made.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImportOutcome {
    /// The new account.
    pub user_id: UserId,
    /// Its authenticator, when it was imported with 2FA on.
    pub authenticator_id: Option<AuthenticatorId>,
    /// Whether that authenticator's secret is shorter than
    /// [`Secret::MIN_BITS`]: invite the user to enroll a new one.
    pub weak_secret: bool,
    /// Whether the password is a bcrypt hash waiting for its first login.
    pub legacy_password: bool,
    /// Whether an earlier import of this account had been cut short and this one
    /// completed it.
    pub resumed: bool,
}

impl<S: Store> Service<S> {
    /// Creates an account from another application's data.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> secondfactor::Result<()> {
    /// use secondfactor::password::PasswordHasher;
    /// use secondfactor::secret::{KeyRing, SealingKey};
    /// use secondfactor::store::MemoryStore;
    /// use secondfactor::{ImportedAccount, ImportedTotp, LegacyPassword, Service};
    ///
    /// let service = Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
    ///     .password_hasher(PasswordHasher::new(1024, 1, 1)?) // cheap, for the example only
    ///     .build()?;
    /// let outcome = service
    ///     .import_account(ImportedAccount {
    ///         username: "alice",
    ///         // Flask-Bcrypt's hash of "hunter2" (cost 4 here; the tutorial uses 12).
    ///         password: LegacyPassword::Bcrypt(
    ///             "$2b$04$r1eW7Dd9UDf6mG7HkXXxUOA0t0uZjeNSjSb1Bc8TKXeXQVf4ItLJ2",
    ///         ),
    ///         totp: Some(ImportedTotp::Base32("JBSWY3DPEHPK3PXP")), // 80 bits: weak
    ///         two_factor_enabled: true,
    ///     })
    ///     .await?;
    /// assert!(outcome.weak_secret);
    /// assert_eq!(
    ///     service.weak_authenticators(&outcome.user_id).await?,
    ///     outcome.authenticator_id.into_iter().collect::<Vec<_>>()
    /// );
    /// // A second import of the same name is refused: nobody is duplicated.
    /// let again = service
    ///     .import_account(ImportedAccount {
    ///         username: "Alice",
    ///         password: LegacyPassword::Clear("hunter2"),
    ///         totp: None,
    ///         two_factor_enabled: false,
    ///     })
    ///     .await;
    /// assert_eq!(again.unwrap_err().code(), "username_taken");
    /// # Ok(()) }
    /// ```
    ///
    /// What happens to each part:
    ///
    /// * **Login name**: it must follow the crate's rule (1–64 of `[A-Za-z0-9._@-]`,
    ///   stored lowercased); anything else is `invalid_input` on field `username`, never
    ///   changed silently. A name already taken is `username_taken` (an account
    ///   imported before, or registered since).
    /// * **Password**: a bcrypt hash is stored as is and verified with bcrypt at login
    ///   (see [`password`](crate::password#imported-bcrypt-hashes) for the 72-byte rule
    ///   and what its timing reveals); the first successful login replaces it with
    ///   argon2id. A clear password is hashed with argon2id here and never stored.
    /// * **TOTP secret**: opened from base32 or an `otpauth://` URI
    ///   ([`OtpAuthUri::parse_lenient`]), sealed for the new account like any other,
    ///   and 2FA is on when the source says so. A secret of 80 to 127 bits is accepted
    ///   and reported weak ([`ImportOutcome::weak_secret`],
    ///   [`Service::weak_authenticators`]): show those users a page that invites them to
    ///   enroll a new authenticator. With 2FA off the secret is not imported (it was
    ///   never confirmed). The account starts without backup codes: invite the user to
    ///   make a set. Replay protection starts with the first login.
    /// * **Security log**: an account imported with 2FA on gets a
    ///   `two_factor_enabled` entry whose detail says it was imported (and weak).
    ///
    /// An import with 2FA on is three writes (the account with a password no one can
    /// match, then its authenticator, then the real password hash), so an import cut
    /// short leaves an account that nobody can log in to, never one without its second
    /// factor; importing it again completes it.
    ///
    /// Errors: `invalid_input` (field `username`, `password_hash`, `password` or
    /// `totp`: the reason says what is wrong), `username_taken` (already imported or
    /// registered), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn import_account(&self, account: ImportedAccount<'_>) -> Result<ImportOutcome> {
        // Case is not a change: login names are compared lowercased at login too.
        let username = normalize_username(account.username)?;
        let secret = match (account.two_factor_enabled, account.totp) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::input("totp", "2FA is on but there is no secret"));
            }
            (true, Some(totp)) => Some(self.imported_secret(totp)?),
        };
        let password_hash = match account.password {
            LegacyPassword::Bcrypt(hash) => PasswordHash::from_bcrypt(hash)?,
            LegacyPassword::Clear(password) => {
                if password.is_empty() {
                    return Err(Error::input("password", "is empty"));
                }
                let hasher = self.inner.hasher.clone();
                let pw = Zeroizing::new(password.to_owned());
                self.blocking(move || hasher.hash(&pw)).await??
            }
        };
        let legacy_password = password_hash.is_bcrypt();
        let now = self.now();
        let store = &self.inner.store;

        let Some(secret) = secret else {
            let record = AccountRecord {
                id: UserId::random(),
                username,
                password_hash,
                password_epoch: 0,
                two_factor_enabled: false,
                backup_codes_key_id: None,
                created_at: now,
            };
            store.create_account(&record).await?;
            self.emit(Event::Registered {
                user_id: record.id.clone(),
            });
            return Ok(ImportOutcome {
                user_id: record.id,
                authenticator_id: None,
                weak_secret: false,
                legacy_password,
                resumed: false,
            });
        };

        // 2FA on: first an account nobody can log in to, so that an import cut short
        // never leaves the account protected by its password alone.
        let unusable = self.inner.hasher.unusable_hash();
        let record = AccountRecord {
            id: UserId::random(),
            username: username.clone(),
            password_hash: unusable.clone(),
            password_epoch: 0,
            two_factor_enabled: false,
            backup_codes_key_id: None,
            created_at: now,
        };
        let (user_id, resumed) = match store.create_account(&record).await {
            Ok(()) => (record.id, false),
            Err(Error::UsernameTaken) => {
                // An earlier import of this name stopped half way: finish it.
                match store.account_by_username(&username).await? {
                    Some(existing)
                        if existing.password_epoch == 0
                            && existing.password_hash.as_str() == unusable.as_str() =>
                    {
                        (existing.id, true)
                    }
                    _ => return Err(Error::UsernameTaken),
                }
            }
            Err(e) => return Err(e),
        };
        let weak_secret = secret.is_weak();
        let existing = store.authenticators(&user_id).await?;
        let authenticator_id = if let Some(first) = existing.first() {
            first.id.clone()
        } else {
            let authenticator = AuthenticatorRecord {
                id: AuthenticatorId::random(),
                user_id: user_id.clone(),
                name: "imported".to_owned(),
                sealed_secret: self.inner.keys.seal(user_id.as_str(), &secret)?,
                created_at: now,
            };
            match store
                .enable_two_factor(&authenticator, &[], self.inner.keys.active_id())
                .await
            {
                Ok(()) | Err(Error::TwoFactorAlreadyEnabled) => {}
                Err(e) => return Err(e),
            }
            authenticator.id
        };
        if !store.set_password(&user_id, &password_hash, 0, 0).await? {
            return Err(Error::UsernameTaken);
        }
        self.emit(Event::Registered {
            user_id: user_id.clone(),
        });
        self.emit(Event::TwoFactorEnabled {
            user_id: user_id.clone(),
            authenticator_id: authenticator_id.clone(),
        });
        let detail = if weak_secret {
            "imported from another application; weak secret: enroll a new authenticator"
        } else {
            "imported from another application"
        };
        let entry =
            SecurityEvent::new(now, SecurityEventKind::TwoFactorEnabled).with_detail(detail);
        if let Err(e) = store
            .append_security_event(
                &user_id,
                &entry,
                crate::security_log::MAX_ENTRIES,
                now.saturating_sub(crate::security_log::RETENTION_SECS),
            )
            .await
        {
            tracing::warn!(error = %e, "security log entry for an import could not be written");
        }
        Ok(ImportOutcome {
            user_id,
            authenticator_id: Some(authenticator_id),
            weak_secret,
            legacy_password,
            resumed,
        })
    }

    fn imported_secret(&self, totp: ImportedTotp<'_>) -> Result<Secret> {
        match totp {
            ImportedTotp::Base32(text) => Secret::from_imported_base32(text)
                .map_err(|_| Error::input("totp", "secret is not base32 of 80 to 512 bits")),
            ImportedTotp::Uri(uri) => {
                let uri = OtpAuthUri::parse_lenient(uri)?;
                let (theirs, ours) = (uri.policy(), &self.inner.totp);
                if theirs.algorithm() != ours.algorithm()
                    || theirs.digits() != ours.digits()
                    || theirs.period() != ours.period()
                {
                    return Err(Error::input(
                        "totp",
                        "the URI's algorithm, digits or period differ from the service's",
                    ));
                }
                Ok(uri.into_secret())
            }
        }
    }

    /// The account's authenticators whose secret is shorter than
    /// [`Secret::MIN_BITS`] (only imported ones can be), oldest first: the ones
    /// [`status`](Self::status) marks `weak`. Pages should invite their owner to
    /// enroll a new authenticator and remove the weak one.
    ///
    /// Errors: `not_found`, `unavailable`.
    pub async fn weak_authenticators(&self, user_id: &UserId) -> Result<Vec<AuthenticatorId>> {
        Ok(self
            .status(user_id)
            .await?
            .authenticators
            .into_iter()
            .filter(|a| a.weak)
            .map(|a| a.id)
            .collect())
    }
}
