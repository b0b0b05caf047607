//! Security keys and passkeys (WebAuthn): registration and login ceremonies.
//!
//! See [`crate::webauthn`] for the model. Every ceremony's state is sealed (bound to
//! the account) into the ephemeral store under a key that names what it is bound to,
//! and taken atomically by its finish: a state is used at most once, never after
//! its expiry, and never by another session (registration) or another pending login
//! (login).

use webauthn_rs::prelude::Uuid;
use webauthn_rs_proto::UserVerificationPolicy;

use super::password::check_name;
use super::{RecentAuth, Service};
use crate::backup::BackupCode;
use crate::events::Event;
use crate::secret::KeyedHash;
use crate::store::{
    AuthenticatorId, AuthenticatorRecord, CeremonyRecord, SessionId, Store, UserId,
};

use crate::webauthn::{
    CreationChallengeResponse, LoginState, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, RelyingParty, RequestChallengeResponse, StoredKey, UserVerification,
    from_json, parse_json, to_json,
};
use crate::{Error, Result};

/// How often a login retries the compare-and-set of its key's counter when other
/// logins with the same key write in between.
const COUNTER_RETRIES: usize = 4;

/// A key registered by [`Service::finish_webauthn_registration`].
#[derive(Debug)]
#[non_exhaustive]
pub struct WebAuthnRegistered {
    /// The new authenticator's id (for [`Service::remove_authenticator`]).
    pub authenticator_id: AuthenticatorId,
    /// Its name.
    pub name: String,
    /// The backup codes, when this key turned 2FA on: show them once.
    pub backup_codes: Option<Vec<BackupCode>>,
}

fn registration_key(proof: &RecentAuth) -> String {
    format!("reg:{}:{}", proof.user_id, proof.session_id)
}

fn login_key(pending: &KeyedHash) -> String {
    format!("login:{}", pending.to_hex())
}

/// The ceremony that confirms an action (re-authentication, disable) in a session.
fn confirm_key(session_id: &SessionId) -> String {
    format!("confirm:{session_id}")
}

/// The user handle the key stores: derived from the user id (stable, and not the
/// user id itself).
fn user_handle(user_id: &UserId) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"secondfactor/webauthn-user-handle/v1")
        .chain_update(user_id.as_str().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

impl<S: Store> Service<S> {
    fn relying_party(&self) -> Result<&RelyingParty> {
        self.inner.webauthn.as_ref().ok_or(Error::InvalidConfig(
            "webauthn is not configured on this service",
        ))
    }

    /// The account's keys, opened, with their records. A key that does not open
    /// (its sealing key left the ring) is skipped and reported, like a TOTP
    /// authenticator.
    async fn keys_of(&self, user_id: &UserId) -> Result<Vec<(AuthenticatorRecord, StoredKey)>> {
        let auths = self.inner.store.authenticators(user_id).await?;
        let mut keys = Vec::new();
        for a in auths.into_iter().filter(|a| a.sealed_secret.is_record()) {
            let opened = self
                .inner
                .keys
                .open_record(user_id.as_str(), &a.sealed_secret)
                .and_then(|plain| from_json::<StoredKey>(&plain));
            match opened {
                Ok(key) => keys.push((a, key)),
                Err(e @ (Error::UnknownKey { .. } | Error::SealedSecretInvalid)) => {
                    tracing::warn!(error = %e, authenticator = %a.id, "security key skipped");
                    self.emit(Event::AuthenticatorUnreadable {
                        user_id: user_id.clone(),
                        authenticator_id: a.id.clone(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    /// Starts registering a security key or passkey named `name`: returns the
    /// creation options for the browser's `navigator.credentials.create` (serialize
    /// them to JSON as they are: `{"publicKey": …}`) and keeps the ceremony's state,
    /// bound to this session, until the service's ceremony lifetime ends. A new start
    /// replaces the session's earlier one.
    ///
    /// Needs a recent authentication; counts against
    /// [`max_authenticators`](super::ServiceBuilder::max_authenticators) like a phone.
    /// The account's keys are excluded (a key cannot be registered twice).
    ///
    /// Errors: `invalid_config` (no relying party configured),
    /// `reauthentication_required`, `too_many_authenticators`, `invalid_input`
    /// (name), `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn start_webauthn_registration(
        &self,
        proof: &RecentAuth,
        name: &str,
    ) -> Result<CreationChallengeResponse> {
        let rp = self.relying_party()?;
        self.check_recent(proof).await?;
        let name = check_name(name)?;
        let user_id = &proof.user_id;
        let now = self.now();
        let account = self.account_record(user_id).await?;
        let count = self.inner.store.authenticators(user_id).await?.len();
        if account.two_factor_enabled && count >= self.inner.config.max_authenticators as usize {
            return Err(Error::TooManyAuthenticators);
        }
        let exclude = self
            .keys_of(user_id)
            .await?
            .into_iter()
            .map(|(_, k)| k.cred_id().clone())
            .collect::<Vec<_>>();
        let (mut options, state) = rp
            .webauthn
            .start_securitykey_registration(
                user_handle(user_id),
                &account.username,
                &account.username,
                (!exclude.is_empty()).then_some(exclude),
                None,
                None,
            )
            .map_err(|_| Error::Internal("webauthn registration could not start"))?;
        match rp.policy {
            UserVerification::Required => {
                if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
                    selection.user_verification = UserVerificationPolicy::Required;
                }
            }
            _ => {
                // webauthn-rs asks for credProtect "userVerificationRequired" (not
                // enforced); Chromium refuses that combination with user verification
                // only preferred on a non-discoverable credential, so the request
                // drops it: the key's UV is this service's policy, checked here.
                if let Some(extensions) = options.public_key.extensions.as_mut() {
                    extensions.cred_protect = None;
                }
            }
        }
        let sealed = self.inner.keys.seal_record(
            user_id.as_str(),
            &to_json(&RegistrationState { name, state })?,
        )?;
        let ceremony = CeremonyRecord {
            user_id: user_id.clone(),
            login: None,
            state: sealed.into_bytes(),
            expires_at: now.saturating_add(rp.ceremony_ttl),
        };
        self.inner
            .store
            .put_ceremony(&registration_key(proof), &ceremony)
            .await?;
        self.emit(Event::EnrollmentStarted {
            user_id: user_id.clone(),
        });
        Ok(options)
    }

    /// Finishes a registration with the browser's credential JSON (from
    /// `navigator.credentials.create`, binary fields base64url). The ceremony's state
    /// is taken first (single use: a failed finish needs a new start). When the key
    /// is the account's first authenticator it turns 2FA on and the result carries
    /// the backup codes, shown this once.
    ///
    /// Like every factor change, it revokes the account's trusted devices and ends
    /// its other sessions.
    ///
    /// Errors: `invalid_config`, `reauthentication_required`, `invalid_input`
    /// (not a credential, or a key already registered), `setup_expired` (no
    /// ceremony for this session, used, or expired), `invalid_code` (the credential
    /// does not answer the ceremony: wrong challenge, origin or relying party),
    /// `too_many_authenticators`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn finish_webauthn_registration(
        &self,
        proof: &RecentAuth,
        credential_json: &str,
    ) -> Result<WebAuthnRegistered> {
        let rp = self.relying_party()?;
        self.check_recent(proof).await?;
        let credential: RegisterPublicKeyCredential = parse_json(credential_json)?;
        let user_id = &proof.user_id;
        let now = self.now();
        let store = &self.inner.store;
        let ceremony = store
            .take_ceremony(&registration_key(proof), now)
            .await?
            .filter(|c| &c.user_id == user_id && c.login.is_none())
            .ok_or(Error::SetupExpired)?;
        let sealed = crate::secret::SealedSecret::from_bytes(ceremony.state)?;
        let state: RegistrationState =
            from_json(&self.inner.keys.open_record(user_id.as_str(), &sealed)?)?;
        let key = rp
            .webauthn
            .finish_securitykey_registration(&credential, &state.state)
            .map_err(|e| {
                tracing::debug!(error = %e, "webauthn registration refused");
                Error::InvalidCode {
                    remaining_attempts: None,
                }
            })?;
        if self
            .keys_of(user_id)
            .await?
            .iter()
            .any(|(_, k)| k.cred_id() == key.cred_id())
        {
            return Err(Error::input("webauthn", "this key is already registered"));
        }
        let stored = StoredKey { counter: 0, key };
        let record = AuthenticatorRecord {
            id: AuthenticatorId::random(),
            user_id: user_id.clone(),
            name: state.name,
            sealed_secret: self
                .inner
                .keys
                .seal_record(user_id.as_str(), &to_json(&stored)?)?,
            created_at: now,
        };
        let account = self.account_record(user_id).await?;
        // The others go first, as for every factor change.
        self.end_others(proof).await?;
        if !account.two_factor_enabled {
            let codes = self.new_backup_codes()?;
            let hashes: Vec<KeyedHash> = codes
                .iter()
                .map(|c| crate::backup::hash(&self.inner.keys, &c.normalized()))
                .collect();
            match store
                .enable_two_factor(&record, &hashes, self.inner.keys.active_id())
                .await
            {
                Ok(()) => {
                    self.record(Event::TwoFactorEnabled {
                        user_id: user_id.clone(),
                        authenticator_id: record.id.clone(),
                    })
                    .await;
                    return Ok(WebAuthnRegistered {
                        authenticator_id: record.id,
                        name: record.name,
                        backup_codes: Some(codes),
                    });
                }
                // 2FA was turned on meanwhile (another tab): the key is added.
                Err(Error::TwoFactorAlreadyEnabled) => {}
                Err(e) => return Err(e),
            }
        }
        store
            .add_authenticator(&record, self.inner.config.max_authenticators)
            .await?;
        self.record(Event::AuthenticatorAdded {
            user_id: user_id.clone(),
            authenticator_id: record.id.clone(),
        })
        .await;
        Ok(WebAuthnRegistered {
            authenticator_id: record.id,
            name: record.name,
            backup_codes: None,
        })
    }

    /// The request options of an assertion by one of the account's keys, and the
    /// ceremony's state sealed to the account. `not_found` when it has no key.
    async fn start_assertion(
        &self,
        rp: &RelyingParty,
        user_id: &UserId,
    ) -> Result<(RequestChallengeResponse, crate::secret::SealedSecret)> {
        let keys: Vec<_> = self
            .keys_of(user_id)
            .await?
            .into_iter()
            .map(|(_, k)| k.key)
            .collect();
        if keys.is_empty() {
            return Err(Error::NotFound {
                what: "security key",
            });
        }
        let (mut options, state) = rp
            .webauthn
            .start_securitykey_authentication(&keys)
            .map_err(|_| Error::Internal("webauthn authentication could not start"))?;
        if rp.policy == UserVerification::Required {
            options.public_key.user_verification = UserVerificationPolicy::Required;
        }
        let sealed = self
            .inner
            .keys
            .seal_record(user_id.as_str(), &to_json(&LoginState { state })?)?;
        Ok((options, sealed))
    }

    /// Starts a ceremony that confirms an action in the session named by
    /// `session_token` with one of the account's keys: returns the request options for
    /// `navigator.credentials.get` and keeps the state bound to this session (a new
    /// start replaces the session's earlier one). Pass the browser's answer as
    /// [`SecondFactor::WebAuthn`](super::SecondFactor::WebAuthn) to
    /// [`reauthenticate`](Self::reauthenticate) or
    /// [`disable_two_factor`](Self::disable_two_factor): an account whose only factor is
    /// a key steps up with it, without spending backup codes. The assertion counts on
    /// the account's second-factor throttle like a code; an assertion made for a
    /// login or for another session's ceremony is refused.
    ///
    /// Errors: `invalid_config`, `unauthenticated`, `two_factor_not_enabled`,
    /// `not_found` (the account has no key), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn start_webauthn_confirmation(
        &self,
        session_token: &str,
    ) -> Result<RequestChallengeResponse> {
        let rp = self.relying_party()?;
        let now = self.now();
        let (_, session, account) = self.find_session(session_token).await?;
        if !account.two_factor_enabled {
            return Err(Error::TwoFactorNotEnabled);
        }
        let (options, sealed) = self.start_assertion(rp, &account.id).await?;
        let ceremony = CeremonyRecord {
            user_id: account.id.clone(),
            login: None,
            state: sealed.into_bytes(),
            expires_at: now.saturating_add(rp.ceremony_ttl),
        };
        self.inner
            .store
            .put_ceremony(&confirm_key(&session.id), &ceremony)
            .await?;
        Ok(options)
    }

    /// Starts the login's WebAuthn ceremony for the pending login named by
    /// `login_token`: returns the request options for the browser's
    /// `navigator.credentials.get` (`{"publicKey": …}`, listing the account's keys)
    /// and keeps the ceremony's state bound to this pending login. Finish with
    /// [`second_factor`](Self::second_factor) and [`SecondFactor::WebAuthn`](super::SecondFactor::WebAuthn).
    ///
    /// A start counts one attempt on the pending login (not on the account's
    /// throttle): a pending login cannot be used to mint challenges without bound.
    ///
    /// Errors: `invalid_config`, `login_expired`, `not_found` (the account has no
    /// key), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn start_webauthn_login(
        &self,
        login_token: &str,
    ) -> Result<RequestChallengeResponse> {
        let rp = self.relying_party()?;
        let now = self.now();
        let store = &self.inner.store;
        let (hash, pending, _account) = self.begin_pending_attempt(login_token, now).await?;
        let (options, sealed) = self.start_assertion(rp, &pending.user_id).await?;
        let ceremony = CeremonyRecord {
            user_id: pending.user_id.clone(),
            login: Some(hash),
            state: sealed.into_bytes(),
            expires_at: now.saturating_add(rp.ceremony_ttl).min(pending.expires_at),
        };
        store.put_ceremony(&login_key(&hash), &ceremony).await?;
        Ok(options)
    }

    /// Checks an assertion against the pending login's ceremony (taken: single use)
    /// and moves the key's counter forward with a compare-and-set. `Ok(false)` is a
    /// failed attempt: no ceremony (never started, used, expired, or another
    /// login's), an assertion that does not verify, user verification missing where
    /// required, or a counter that did not move forward (a cloned key).
    pub(crate) async fn verify_assertion(
        &self,
        user_id: &UserId,
        pending: &KeyedHash,
        credential: &PublicKeyCredential,
        now: u64,
    ) -> Result<bool> {
        self.verify_assertion_at(user_id, &login_key(pending), Some(pending), credential, now)
            .await
    }

    /// Checks an assertion against the confirmation ceremony of session
    /// `session_id` (started by [`start_webauthn_confirmation`](Self::start_webauthn_confirmation)),
    /// as [`verify_assertion`](Self::verify_assertion) does for a login's.
    pub(crate) async fn verify_confirmation(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        credential: &PublicKeyCredential,
        now: u64,
    ) -> Result<bool> {
        self.verify_assertion_at(user_id, &confirm_key(session_id), None, credential, now)
            .await
    }

    async fn verify_assertion_at(
        &self,
        user_id: &UserId,
        ceremony_key: &str,
        login: Option<&KeyedHash>,
        credential: &PublicKeyCredential,
        now: u64,
    ) -> Result<bool> {
        let rp = self.relying_party()?;
        let store = &self.inner.store;
        let Some(ceremony) = store.take_ceremony(ceremony_key, now).await? else {
            return Ok(false);
        };
        if &ceremony.user_id != user_id || ceremony.login.as_ref() != login {
            return Ok(false);
        }
        let sealed = crate::secret::SealedSecret::from_bytes(ceremony.state)?;
        let state: LoginState =
            from_json(&self.inner.keys.open_record(user_id.as_str(), &sealed)?)?;
        let result = match rp
            .webauthn
            .finish_securitykey_authentication(credential, &state.state)
        {
            Ok(result) => result,
            Err(e) => {
                tracing::debug!(error = %e, "webauthn assertion refused");
                return Ok(false);
            }
        };
        if rp.policy == UserVerification::Required && !result.user_verified() {
            return Ok(false);
        }
        for _ in 0..COUNTER_RETRIES {
            let keys = self.keys_of(user_id).await?;
            let Some((record, mut key)) = keys
                .into_iter()
                .find(|(_, k)| k.cred_id() == result.cred_id())
            else {
                // Removed since the ceremony started.
                return Ok(false);
            };
            match key.apply(&result) {
                Err(()) => {
                    self.record(Event::CodeReplayed {
                        user_id: user_id.clone(),
                        authenticator_id: record.id.clone(),
                    })
                    .await;
                    return Ok(false);
                }
                Ok(false) => return Ok(true),
                Ok(true) => {}
            }
            let new = self
                .inner
                .keys
                .seal_record(user_id.as_str(), &to_json(&key)?)?;
            if store
                .update_authenticator_secret(user_id, &record.id, &record.sealed_secret, &new)
                .await?
            {
                return Ok(true);
            }
        }
        Err(Error::unavailable(
            "webauthn counter update",
            std::io::Error::other("the key's record kept changing"),
        ))
    }
}
