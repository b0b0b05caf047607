//! The flows test harness: a service on the memory store with a manual clock, cheap
//! argon2, recorded events and a session per user for recent-authentication proofs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secondfactor::clock::{Clock, ManualClock};
use secondfactor::events::Event;
use secondfactor::flow::{Blocking, DeviceToken, EnrollmentConfirmed, EnrollmentSetup, Inline};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{MemoryStore, UserId};
use secondfactor::totp::TotpKey;
use secondfactor::{
    Authenticated, Error, LoginOutcome, LoginRequest, RecentAuth, SecondFactor, Service,
};

pub const T0: u64 = 1_700_000_010; // 10 s into a 30 s period
pub const PW: &str = "correct horse battery";

/// Counts the blocking (argon2) jobs a service runs.
#[derive(Clone, Default)]
pub struct CountingBlocking(pub Arc<AtomicUsize>);

impl Blocking for CountingBlocking {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Inline.run(job)
    }
}

pub struct Harness {
    pub service: Service<MemoryStore>,
    /// The service's store (a handle on the same data), for tests that look at
    /// what the store holds.
    pub store: MemoryStore,
    pub clock: ManualClock,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub blocking: CountingBlocking,
    /// A session per user, made by `proof` while 2FA was still off.
    pub sessions: Mutex<HashMap<UserId, String>>,
}

pub fn harness() -> Harness {
    let clock = ManualClock::new(T0);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let blocking = CountingBlocking::default();
    let store = MemoryStore::new();
    let service = Service::builder(store.clone(), KeyRing::new(1, SealingKey::generate()))
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .events(move |e: &Event| sink.lock().unwrap().push(e.clone()))
        .blocking(blocking.clone())
        .issuer("Test Co")
        .reauth_ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    Harness {
        service,
        store,
        clock,
        events,
        blocking,
        sessions: Mutex::new(HashMap::new()),
    }
}

impl Harness {
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The harness's session of `user`: made by a password-only login the first time
    /// it is asked for (so before 2FA is turned on), kept afterwards.
    pub async fn session_of(&self, user: &UserId) -> String {
        if let Some(t) = self.sessions.lock().unwrap().get(user).cloned() {
            return t;
        }
        let name = self.service.status(user).await.unwrap().username;
        let LoginOutcome::Authenticated(auth) = self
            .service
            .login(LoginRequest::new(&name, PW))
            .await
            .unwrap()
        else {
            panic!("proof() needs a session made while 2FA was off");
        };
        let token = self.service.issue_session(auth).await.unwrap();
        let token = token.expose().to_owned();
        self.sessions
            .lock()
            .unwrap()
            .insert(user.clone(), token.clone());
        token
    }

    /// A recent-authentication proof for `user`, from the harness's session (the
    /// harness's re-authentication window is an hour).
    pub async fn proof(&self, user: &UserId) -> RecentAuth {
        let token = self.session_of(user).await;
        self.service.recent_auth(&token).await.unwrap()
    }

    /// Changes the password with the harness's session and keeps the session the
    /// change hands back.
    pub async fn change_password(
        &self,
        user: &UserId,
        current: &str,
        new: &str,
    ) -> Result<(), Error> {
        let proof = self.proof(user).await;
        let token = self.service.change_password(&proof, current, new).await?;
        self.sessions
            .lock()
            .unwrap()
            .insert(user.clone(), token.expose().to_owned());
        Ok(())
    }

    /// Registers `name` and turns 2FA on; returns the user, the phone and the backup codes.
    pub async fn enrolled(&self, name: &str) -> (UserId, TotpKey, Vec<String>) {
        let user = self.service.register(name, PW).await.unwrap();
        let proof = self.proof(&user).await;
        let setup = self.service.setup_two_factor(&proof).await.unwrap();
        let phone = self.phone_of(&setup);
        let done = self
            .service
            .confirm_enrollment(&proof, &phone.generate(self.now()))
            .await
            .unwrap();
        let codes = done
            .backup_codes
            .unwrap()
            .iter()
            .map(|c| c.expose().to_owned())
            .collect();
        // Move to the next period so the confirmation code's step is in the past.
        self.advance(30);
        (user, phone, codes)
    }

    /// The authenticator app a setup provisions: its key, to make codes with.
    pub fn phone_of(&self, setup: &EnrollmentSetup) -> TotpKey {
        TotpKey::new(self.service.totp_policy(), setup.secret().expose_bytes())
    }

    /// Starts turning 2FA on for `user` (2FA off): the setup.
    pub async fn start_setup(&self, user: &UserId) -> EnrollmentSetup {
        let proof = self.proof(user).await;
        self.service.setup_two_factor(&proof).await.unwrap()
    }

    /// Starts adding authenticator `name` to `user` (2FA on): the setup and its app.
    pub async fn start_adding(&self, user: &UserId, name: &str) -> (EnrollmentSetup, TotpKey) {
        let proof = self.proof(user).await;
        let setup = self.service.add_authenticator(&proof, name).await.unwrap();
        let phone = self.phone_of(&setup);
        (setup, phone)
    }

    /// Confirms the pending enrollment of `user` with `phone`'s code for now.
    pub async fn confirm(
        &self,
        user: &UserId,
        phone: &TotpKey,
    ) -> Result<EnrollmentConfirmed, Error> {
        let proof = self.proof(user).await;
        self.service
            .confirm_enrollment(&proof, &phone.generate(self.now()))
            .await
    }

    /// A pending login of `name` (2FA on): the password step's token.
    pub async fn pending(&self, name: &str) -> String {
        pending_on(&self.service, name).await
    }

    /// TOTP `code` as the second factor of pending login `token`.
    pub async fn code(&self, token: &str, code: &str) -> Result<Authenticated, Error> {
        self.service
            .second_factor(token, SecondFactor::Totp(code))
            .await
    }

    /// Backup code `code` as the second factor of pending login `token`.
    pub async fn backup(&self, token: &str, code: &str) -> Result<Authenticated, Error> {
        self.service
            .second_factor(token, SecondFactor::BackupCode(code))
            .await
    }

    /// `phone`'s code for now, as the second factor of pending login `token`.
    pub async fn totp(&self, token: &str, phone: &TotpKey) -> Result<Authenticated, Error> {
        self.code(token, &phone.generate(self.now())).await
    }

    /// Logs `name` in with the password and `phone`'s code for now.
    pub async fn login_with(&self, name: &str, phone: &TotpKey) -> Authenticated {
        let token = self.pending(name).await;
        self.totp(&token, phone).await.unwrap()
    }

    /// Logs `name` in with the password and `phone`'s code for now and trusts the
    /// device as `label`: the login and the device token.
    pub async fn login_trusting(
        &self,
        name: &str,
        phone: &TotpKey,
        label: &str,
    ) -> (Authenticated, DeviceToken) {
        let auth = self.login_with(name, phone).await;
        let device = self.service.trust_device(&auth, label).await.unwrap();
        (auth, device)
    }

    /// Logs `name` in with the password and a fresh code from `phone` (advancing the
    /// clock a period first so the code is unused); returns the session token.
    pub async fn login_2fa(&self, name: &str, phone: &TotpKey) -> String {
        self.advance(30);
        let auth = self.login_with(name, phone).await;
        self.service
            .issue_session(auth)
            .await
            .unwrap()
            .expose()
            .to_owned()
    }

    /// Races second factors: each `(pending-login token, code)` is sent by its own
    /// task, all released at once by a barrier; the results in the same order.
    /// `backup`: the codes are backup codes, else TOTP codes.
    pub async fn race(
        &self,
        attempts: Vec<(String, String)>,
        backup: bool,
    ) -> Vec<Result<Authenticated, Error>> {
        let barrier = Arc::new(tokio::sync::Barrier::new(attempts.len()));
        let tasks: Vec<_> = attempts
            .into_iter()
            .map(|(token, code)| {
                let s = self.service.clone();
                let b = barrier.clone();
                tokio::spawn(async move {
                    b.wait().await;
                    let factor = if backup {
                        SecondFactor::BackupCode(&code)
                    } else {
                        SecondFactor::Totp(&code)
                    };
                    s.second_factor(&token, factor).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    }

    /// A 6-digit code that is not valid for `phone` anywhere in the ±1 window now.
    pub fn wrong_code(&self, phone: &TotpKey) -> String {
        let now = self.now();
        let valid: Vec<String> = [now - 30, now, now + 30]
            .iter()
            .map(|t| phone.generate(*t))
            .collect();
        (0..1_000_000u32)
            .map(|n| format!("{n:06}"))
            .find(|c| !valid.contains(c))
            .unwrap()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

/// A pending login of `name` on `service` (2FA on): the password step's token.
pub async fn pending_on(service: &Service<MemoryStore>, name: &str) -> String {
    match service.login(LoginRequest::new(name, PW)).await.unwrap() {
        LoginOutcome::SecondFactorRequired(t) => t.token.expose().to_owned(),
        LoginOutcome::Authenticated(_) => panic!("expected a second factor: 2FA is on"),
        _ => panic!("expected a second factor"),
    }
}

pub fn code_of(e: &Error) -> &'static str {
    e.code()
}
