//! The second-factor step of a login: a pending login answered with a TOTP code,
//! a backup code or a security key, as one read and one commit of the store.

use super::{AuthMethod, Authenticated, Service};
use crate::backup::NormalizedBackupCode;
use crate::events::Event;
use crate::secret::KeyedHash;
use crate::store::{
    AccountRecord, FactorCommit, FactorCommitted, FactorStepView, OutcomeWrites, PendingLogin,
    StepMark, Store, ThrottleState, ThrottleWrite, UserId, factor_throttle_keys,
};
use crate::token::{DeviceToken, LoginToken, SessionToken};
use crate::totp::Code;
use crate::{Error, Result, backup, throttle, token};

/// A second factor as the user typed it.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum SecondFactor<'a> {
    /// A TOTP code (spaces allowed: `" 123 456 "`).
    Totp(&'a str),
    /// A backup code (any case, hyphens optional).
    BackupCode(&'a str),
    /// A security key's or passkey's assertion: the JSON of the browser's
    /// `PublicKeyCredential` (from `navigator.credentials.get` with the options of
    /// [`Service::start_webauthn_login`], binary fields base64url). It completes only
    /// the pending login whose ceremony it answers.
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    WebAuthn(&'a str),
}

impl std::fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecondFactor::Totp(_) => f.write_str("Totp(<redacted>)"),
            SecondFactor::BackupCode(_) => f.write_str("BackupCode(<redacted>)"),
            #[cfg(feature = "webauthn")]
            SecondFactor::WebAuthn(_) => f.write_str("WebAuthn(<redacted>)"),
        }
    }
}

/// What the unit-of-work TOTP step made: the proof, and the session and device
/// tokens when the sign-in asked for them.
pub(crate) struct StepDone {
    pub(crate) auth: Authenticated,
    pub(crate) session: Option<SessionToken>,
    pub(crate) device: Option<DeviceToken>,
}

/// A second factor after normalization.
pub(crate) enum Factor {
    Totp(Code),
    Backup(NormalizedBackupCode),
    #[cfg(feature = "webauthn")]
    WebAuthn(Box<crate::webauthn::PublicKeyCredential>),
}

impl<S: Store> Service<S> {
    pub(crate) fn normalize_factor(&self, factor: SecondFactor<'_>) -> Result<Factor> {
        Ok(match factor {
            SecondFactor::Totp(code) => Factor::Totp(self.inner.totp.normalize_code(code)?),
            SecondFactor::BackupCode(code) => Factor::Backup(backup::normalize(code)?),
            #[cfg(feature = "webauthn")]
            SecondFactor::WebAuthn(json) => {
                Factor::WebAuthn(Box::new(crate::webauthn::parse_json(json)?))
            }
        })
    }

    /// The second-factor step: completes the pending login named by `login_token`.
    ///
    /// Each attempt is counted on the pending login (burnt after its last attempt)
    /// and on the account (locked with doubling backoff after the free failures)
    /// *before* the code is checked. A TOTP code is accepted only if its time step is
    /// newer than the authenticator's last accepted step, by an atomic
    /// compare-and-set in the store; a backup code is consumed atomically. The
    /// pending login is single use and void once the password changes.
    ///
    /// Errors: `invalid_input` (malformed code; no attempt is counted),
    /// `invalid_code` (with the attempts left), `code_already_used`,
    /// `login_expired`, `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn second_factor(
        &self,
        login_token: &str,
        factor: SecondFactor<'_>,
    ) -> Result<Authenticated> {
        self.second_factor_from(login_token, factor, None).await
    }

    /// [`second_factor`](Self::second_factor), recording `client_key` (the peer
    /// address) with the login in the account's security log.
    ///
    /// Errors: as [`second_factor`](Self::second_factor).
    #[tracing::instrument(skip_all)]
    pub async fn second_factor_from(
        &self,
        login_token: &str,
        factor: SecondFactor<'_>,
        client_key: Option<&str>,
    ) -> Result<Authenticated> {
        let factor = match self.normalize_factor(factor)? {
            Factor::Totp(code) => {
                return Ok(self
                    .totp_step(login_token, &code, client_key, None)
                    .await?
                    .auth);
            }
            other => other,
        };
        let now = self.now();
        let max = self.inner.throttle.attempts_per_login();
        let (hash, pending, account) = self.begin_pending_attempt(login_token, now).await?;
        let reservation = self.reserve_factor(&account.id, &factor, now).await?;

        let pending_left = max.saturating_sub(pending.attempts);
        let method = match &factor {
            // Routed to `totp_step` above.
            Factor::Totp(_) => return Err(Error::Internal("TOTP step took the backup path")),
            #[cfg(feature = "webauthn")]
            Factor::WebAuthn(credential) => {
                if self
                    .verify_assertion(&account.id, &hash, credential, now)
                    .await?
                {
                    self.take_pending(&hash, now).await?;
                    Some(AuthMethod::WebAuthn)
                } else {
                    None
                }
            }
            Factor::Backup(code) => {
                let taken = self.take_pending(&hash, now).await?;
                match self.spend_backup_code(&account.id, code).await {
                    Ok(true) => Some(AuthMethod::BackupCode),
                    Ok(false) => {
                        self.restore_pending(&hash, &taken, pending_left).await;
                        None
                    }
                    Err(e) => {
                        self.restore_pending(&hash, &taken, pending_left).await;
                        return Err(e);
                    }
                }
            }
        };
        match method {
            Some(method) => {
                self.factor_succeeded(&account.id, reservation).await;
                self.reseal_if_needed(&account.id, None).await;
                Ok(self.authenticated(&account, method, client_key).await)
            }
            None => {
                if pending_left == 0 {
                    self.inner.store.delete_pending_login(&hash).await?;
                }
                let failure = self.failure(&account.id, reservation, pending_left).await;
                Err(self.said_as_spent(&account.id, &factor, failure).await)
            }
        }
    }

    /// Counts one attempt on the pending login behind `login_token` and reads its
    /// account: the start of every second-factor step that is not the TOTP unit of
    /// work (backup codes, security keys, and starting a key's ceremony). A pending
    /// login whose account changed its password or turned 2FA off since is deleted.
    ///
    /// Errors: `login_expired` (unknown, expired, used up, or outdated), `unavailable`.
    pub(super) async fn begin_pending_attempt(
        &self,
        login_token: &str,
        now: u64,
    ) -> Result<(KeyedHash, PendingLogin, AccountRecord)> {
        let store = &self.inner.store;
        let Some(hashes) =
            token::lookup_hashes(&self.inner.keys, LoginToken::purpose(), login_token)
        else {
            return Err(Error::LoginExpired);
        };
        let max = self.inner.throttle.attempts_per_login();
        let mut found = None;
        for h in hashes {
            if let Some(p) = store.begin_login_attempt(&h, max, now).await? {
                found = Some((h, p));
                break;
            }
        }
        let (hash, pending) = found.ok_or(Error::LoginExpired)?;
        match store.account(&pending.user_id).await? {
            Some(a) if a.password_epoch == pending.password_epoch && a.two_factor_enabled => {
                Ok((hash, pending, a))
            }
            _ => {
                store.delete_pending_login(&hash).await?;
                Err(Error::LoginExpired)
            }
        }
    }

    /// The TOTP second-factor step in one read and one commit
    /// ([`Store::read_factor_step`], [`Store::commit_factor_step`]).
    ///
    /// The decisions are today's: the pending login's attempt is counted by the read
    /// (or, in a store whose read writes nothing, by the commit, which then refuses a
    /// login out of attempts);
    /// the budget and the lockout refuse before the code is checked; the commit counts
    /// the attempt on both throttles (or, when the code is spent, clears the lockout
    /// and leaves the budget as it was: spent and refunded) against the states the
    /// code was checked under, so a result is only revealed for a counted attempt. A
    /// throttle that moved meanwhile makes the commit write nothing; the throttles are
    /// read again and the step decided again. `finish` (the sign-in) adds the session
    /// and, with a label, the trusted device to the commit.
    pub(crate) async fn totp_step(
        &self,
        login_token: &str,
        code: &Code,
        client_key: Option<&str>,
        finish: Option<Option<&str>>,
    ) -> Result<StepDone> {
        let now = self.now();
        let store = &self.inner.store;
        let policy = &self.inner.throttle;
        let hashes = token::lookup_hashes(&self.inner.keys, LoginToken::purpose(), login_token)
            .ok_or(Error::LoginExpired)?;
        let max = policy.attempts_per_login();
        let FactorStepView {
            token: hash,
            pending,
            account,
            authenticators,
            throttles,
        } = store
            .read_factor_step(&hashes, max, now)
            .await?
            .ok_or(Error::LoginExpired)?;
        let account = match account {
            Some(a) if a.password_epoch == pending.password_epoch && a.two_factor_enabled => a,
            _ => {
                store.delete_pending_login(&hash).await?;
                return Err(Error::LoginExpired);
            }
        };
        let user_id = &account.id;
        let pending_left = max.saturating_sub(pending.attempts);
        let [lockout_key, budget_key] = factor_throttle_keys(user_id);

        // What a success writes besides the throttles, made once.
        let method = AuthMethod::Totp;
        let session = match finish {
            Some(_) => {
                Some(self.session_record(user_id.clone(), account.password_epoch, method)?)
            }
            None => None,
        };
        let device = match finish.flatten() {
            Some(label) => {
                Some(self.device_record(user_id.clone(), account.password_epoch, label, now)?)
            }
            None => None,
        };
        let succeeded = Event::LoginSucceeded {
            user_id: user_id.clone(),
            method,
        };
        let success_log: Vec<_> = succeeded
            .security_entry(now)
            .map(|(_, e)| e.with_client(client_key))
            .into_iter()
            .collect();

        let mut states = throttles;
        let mut marks: Option<Vec<StepMark>> = None;
        for _ in 0..throttle::CAS_ROUNDS {
            let [lockout, budget] = states;
            let budget_counted = throttle::budget_after(policy, budget, now)?;
            let (lockout_counted, lockout_keep) =
                throttle::lockout_after(policy.second_factor_lockout(), lockout, now)?;
            let marks = match &mut marks {
                Some(m) => &*m,
                None => {
                    let matches = self.match_totp(user_id, &authenticators, code, now)?;
                    marks.insert(
                        matches
                            .into_iter()
                            .map(|(authenticator, step)| StepMark {
                                authenticator,
                                step,
                                keep_until: self.replay_keep_until(step, now),
                            })
                            .collect(),
                    )
                }
            };
            let writes = [
                ThrottleWrite {
                    key: &lockout_key,
                    expected: lockout,
                    counted: (lockout_counted, lockout_keep),
                    on_success: (ThrottleState::default(), 0),
                },
                ThrottleWrite {
                    key: &budget_key,
                    expected: budget,
                    counted: (budget_counted, budget_counted.until),
                    on_success: (budget, budget.until),
                },
            ];
            let failure_events = match marks.first() {
                Some(m) => vec![Event::CodeReplayed {
                    user_id: user_id.clone(),
                    authenticator_id: m.authenticator.clone(),
                }],
                None => self.failure_events(user_id, lockout_counted, pending_left),
            };
            let failure_log: Vec<_> = failure_events
                .iter()
                .filter_map(|e| e.security_entry(now).map(|(_, e)| e))
                .collect();
            let commit = FactorCommit {
                token: &hash,
                max_attempts: max,
                user_id,
                spend: marks,
                throttles: &writes,
                on_success: OutcomeWrites {
                    take_pending: true,
                    session: session.as_ref().map(|(_, h, r)| (h, r)),
                    device: device.as_ref().map(|(_, h, r)| (h, r)),
                    log: &success_log,
                },
                on_failure: OutcomeWrites {
                    take_pending: pending_left == 0,
                    log: &failure_log,
                    ..OutcomeWrites::default()
                },
                log_max_entries: crate::security_log::MAX_ENTRIES,
                log_forget_before: now.saturating_sub(crate::security_log::RETENTION_SECS),
                now,
            };
            match store.commit_factor_step(&commit).await? {
                FactorCommitted::Spent => {
                    self.reseal_if_needed(user_id, Some(authenticators)).await;
                    self.emit(succeeded);
                    let device = device.map(|(token, _, record)| {
                        self.emit(Event::DeviceTrusted {
                            user_id: record.user_id,
                            device_id: record.id,
                        });
                        token
                    });
                    return Ok(StepDone {
                        auth: Authenticated {
                            user_id: account.id.clone(),
                            username: account.username.clone(),
                            method,
                            password_epoch: account.password_epoch,
                        },
                        session: session.map(|(token, _, _)| token),
                        device,
                    });
                }
                FactorCommitted::NotSpent => {
                    for e in &failure_events {
                        self.emit(e.clone());
                    }
                    if marks.is_empty() {
                        let remaining = policy
                            .account_attempts_left(lockout_counted.count)
                            .min(pending_left);
                        return Err(Error::InvalidCode {
                            remaining_attempts: (remaining != u32::MAX).then_some(remaining),
                        });
                    }
                    return Err(Error::CodeAlreadyUsed);
                }
                FactorCommitted::Expired => return Err(Error::LoginExpired),
                FactorCommitted::Conflict => {
                    states = [
                        store.throttle(&lockout_key, now).await?,
                        store.throttle(&budget_key, now).await?,
                    ];
                }
            }
        }
        Err(throttle::retry_after(now.saturating_add(1), now))
    }

    /// The audit events of a wrong TOTP code, as [`Self::failure`] records them.
    fn failure_events(
        &self,
        user_id: &UserId,
        counted: ThrottleState,
        pending_left: u32,
    ) -> Vec<Event> {
        let policy = &self.inner.throttle;
        let remaining = policy
            .account_attempts_left(counted.count)
            .min(pending_left);
        let mut events = vec![Event::SecondFactorRejected {
            user_id: user_id.clone(),
            remaining_attempts: remaining,
        }];
        let lockout = policy.lockout_after(counted.count);
        if !lockout.is_zero() {
            events.push(Event::LockedOut {
                user_id: user_id.clone(),
                retry_after: lockout,
            });
        }
        events
    }

    async fn take_pending(&self, hash: &KeyedHash, now: u64) -> Result<PendingLogin> {
        self.inner
            .store
            .take_pending_login(hash, now)
            .await?
            .ok_or(Error::LoginExpired)
    }

    /// Puts a taken pending login back after a code that could not be spent, unless
    /// its attempts are used up. Best effort: a store failure here leaves the user to
    /// start the login again, never with a spent code.
    async fn restore_pending(&self, hash: &KeyedHash, pending: &PendingLogin, pending_left: u32) {
        if pending_left == 0 {
            return;
        }
        if let Err(e) = self.inner.store.create_pending_login(hash, pending).await {
            tracing::warn!(error = %e, "pending login could not be restored");
        }
    }
}
