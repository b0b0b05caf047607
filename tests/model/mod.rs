//! The flows as a state machine: arbitrary sequences of registrations, logins,
//! second factors (right, wrong, replayed and malformed TOTP codes; fresh, spent
//! and revoked backup codes), enrollment, disabling, regeneration, trusted devices,
//! known browsers, sessions, step-up re-authentication, password changes and clock
//! moves, on `Service<MemoryStore>` with a manual clock.
//!
//! A model of the accounts runs beside the service and checks, after every step:
//! - no (authenticator, time step) is ever accepted twice, and a TOTP code is
//!   accepted only when the model finds a fresh matching step (the model applies
//!   the documented rule: newest matching step first, strictly after the last one
//!   accepted for that authenticator);
//! - a backup code is accepted only when it is unspent and from the current set,
//!   and an unspent one is never refused where it applies (backup codes are not
//!   throttled);
//! - `Authenticated` comes only from a live pending login of that user with a
//!   valid factor, from the right password with 2FA off, or from the right
//!   password on a device trusted at the current password;
//! - wrong passwords are limited per login name exactly as the throttle counts
//!   them, and never for a browser with the account's known-browser token;
//! - a right, fresh TOTP code is refused only with `too_many_attempts`, and only
//!   once the account has had enough failures for the short lockout or the 30-day
//!   budget (the model over-counts failures, so this is the documented bound, not
//!   an exact prediction);
//! - every credential change takes a `RecentAuth` from one of the model's sessions:
//!   one whose window has closed gives `reauthentication_required` and changes
//!   nothing; `recent_auth` and `reauthenticate` give the outcomes the model
//!   predicts; a factor change ends the account's other sessions and revokes its
//!   trusted devices; a password change ends every session and hands back the one
//!   that replaces the caller's;
//! - every session the model tracks is live in the service exactly when the model
//!   says so;
//! - the password step, enrollment and the account actions give the outcomes the
//!   model predicts; and nothing panics.
//!
//! Input format (hand-writable seeds): a byte stream of operations, each an opcode
//! byte followed by its argument bytes; a missing byte reads as 0. Opcodes 0–13
//! read the same bytes as before step-up: a credential change takes the proof the
//! model holds for the user or, without one, a fresh proof from the user's newest
//! live session (logging in with the password first when the user has none and
//! 2FA is off), so the committed seeds still reach the same flows.
//!
//! Shared by the `flows` fuzz target (`fuzz/fuzz_targets/flows.rs`, which includes
//! this file with `#[path]`) and by `tests/flows_model.rs` under `cargo test`
//! (the committed seeds, and a proptest of [`ops::Op`] sequences). [`run`] takes a
//! fuzzer's byte stream; every step it takes is recorded by name in the [`Flows`]
//! it returns, so a test can tell which flows an input reached.
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use secondfactor::backup;
use secondfactor::clock::{Clock, ManualClock};
use secondfactor::flow::KNOWN_BROWSER_TTL_SECS;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AuthenticatorId, MemoryStore, UserId};
use secondfactor::totp::{TotpKey, TotpPolicy};
use secondfactor::{
    AuthMethod, Authenticated, Error, LoginOutcome, LoginRequest, ReauthRequest, RecentAuth,
    SecondFactor, Service,
};

const START: u64 = 1_700_000_000;
const LOGIN_TTL: u64 = 300;
const DEVICE_TTL: u64 = 30 * 24 * 3600;
const ATTEMPTS_PER_LOGIN: u32 = 5;
/// The service's default cap on authenticators per account.
const MAX_AUTHENTICATORS: usize = 5;
/// Sessions the model tracks per user (older ones live on untracked).
const SESSIONS_PER_USER: usize = 3;
/// Known-browser tokens the model keeps.
const KNOWN_BROWSERS: usize = 6;
const NAMES: [&str; 2] = ["alice", "bob"];
/// Steps one input runs at most.
const MAX_STEPS: usize = 64;

#[cfg(test)]
pub mod ops;

/// The flows an input reached: how many times each named outcome happened.
pub type Flows = BTreeMap<&'static str, usize>;

/// Runs the operations of a fuzzer's byte stream (the format of the module docs,
/// at most 64 of them) on a fresh service beside the model; panics on the first
/// broken invariant. Returns the flows it reached.
pub fn run(bytes: &[u8]) -> Flows {
    let mut world = World::new();
    let mut bytes = Bytes(bytes);
    let mut steps = 0;
    while !bytes.done() && steps < MAX_STEPS {
        world.step(&mut bytes);
        world.check_sessions();
        steps += 1;
    }
    world.flows
}

/// Like [`run`], but each operation reads only its own bytes (a missing byte reads
/// as 0, a byte left over is ignored), so that one entry is exactly one step
/// whatever the state: what [`ops::Op::encode`] writes.
#[cfg(test)]
pub fn run_steps<'a>(steps: impl IntoIterator<Item = &'a [u8]>) -> Flows {
    let mut world = World::new();
    for step in steps.into_iter().take(MAX_STEPS) {
        world.step(&mut Bytes(step));
        world.check_sessions();
    }
    world.flows
}

/// Runs a future that never waits: `MemoryStore` and the default `Inline` blocking
/// runner complete every operation at once.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 80).min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
}

struct Auth {
    id: AuthenticatorId,
    secret: Vec<u8>,
    last: Option<u64>,
}

#[derive(Default)]
struct User {
    id: Option<UserId>,
    password: String,
    epoch: u64,
    enabled: bool,
    auths: Vec<Auth>,
    /// (secret, adding, expires_at)
    enrollment: Option<(Vec<u8>, bool, u64)>,
    /// Unspent codes of the current set, normalized.
    codes: Vec<String>,
    /// Codes that must never be accepted again: spent, or from a replaced set.
    dead_codes: Vec<String>,
    /// The last TOTP code the service accepted for this user.
    last_accepted: Option<String>,
    /// Wrong current passwords given to a password change since the last success.
    pw_change_failures: u32,
    /// TOTP attempts that reached the account's throttle and did not pass, ever
    /// (at least the failures the 30-day budget holds: it only leaks them back).
    totp_failures: u32,
    /// The same since the last TOTP code the throttle let pass (at least the short
    /// lockout's count, which a success clears).
    totp_streak: u32,
    /// The login name's wrong-password throttle, as the service keeps it: the count,
    /// the end of the lockout, and when the store forgets both (`keep_until`).
    name_count: u32,
    name_until: u64,
    name_keep: u64,
}

struct Pending {
    token: String,
    user: usize,
    issued: u64,
    epoch: u64,
    done: bool,
    attempts: u32,
}

struct Device {
    token: String,
    user: usize,
    issued: u64,
    epoch: u64,
    revoked: bool,
}

/// A known-browser token (`Service::remember_browser`).
struct Known {
    token: String,
    user: usize,
    epoch: u64,
    issued: u64,
}

/// A session the model issued.
struct Sess {
    token: String,
    user: usize,
    /// Its login or last re-authentication.
    authenticated_at: u64,
    expires_at: u64,
    /// Ended by the service (logout, a credential change, or a re-authentication
    /// that gave up on it).
    ended: bool,
    /// Wrong passwords given to `reauthenticate` on it since its last right one.
    reauth_failures: u32,
}

/// A recent-authentication proof the model holds for a user, across steps.
struct Held {
    proof: RecentAuth,
    /// The token of the session it came from.
    session: String,
    until: u64,
}

struct World {
    service: Service<MemoryStore>,
    clock: ManualClock,
    policy: TotpPolicy,
    users: [User; 2],
    pendings: Vec<Pending>,
    devices: Vec<Device>,
    known: Vec<Known>,
    sessions: Vec<Sess>,
    held: [Option<Held>; 2],
    passwords_made: u32,
    reauth_ttl: u64,
    session_ttl: u64,
    /// Second-factor failures that start no lockout.
    free_failures: u32,
    /// Failures the 30-day second-factor budget holds.
    budget_failures: u32,
    flows: Flows,
}

/// The documented normalisation of a typed backup code, written out here as an
/// independent oracle (the model does not call the library's own): input over 64
/// bytes is refused; ASCII spaces and hyphens are ignored wherever they stand; case
/// does not matter; what is left must be exactly 15 characters of the alphabet
/// `23456789ACDEFGHJKMNPQRTVWXY`. `None` is what the service refuses as
/// `invalid_input`.
fn normalize_backup(typed: &str) -> Option<String> {
    const ALPHABET: &str = "23456789ACDEFGHJKMNPQRTVWXY";
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.chars().count() == 15 && code.chars().all(|c| ALPHABET.contains(c))).then_some(code)
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::new(START);
        let service = Service::builder(
            MemoryStore::new(),
            KeyRing::new(1, SealingKey::from_bytes([9; 32])),
        )
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(8, 1, 1).unwrap())
        .build()
        .unwrap();
        let policy = *service.totp_policy();
        let throttle = service.throttle_policy();
        let free_failures = throttle.free_failures();
        let budget_failures = throttle.budget().0;
        let reauth_ttl = service.reauth_ttl().as_secs();
        let session_ttl = service.session_ttl().as_secs();
        World {
            service,
            clock,
            policy,
            users: Default::default(),
            pendings: Vec::new(),
            devices: Vec::new(),
            known: Vec::new(),
            sessions: Vec::new(),
            held: [None, None],
            passwords_made: 0,
            reauth_ttl,
            session_ttl,
            free_failures,
            budget_failures,
            flows: Flows::new(),
        }
    }

    /// Records that a step reached `flow`.
    fn saw(&mut self, flow: &'static str) {
        *self.flows.entry(flow).or_default() += 1;
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn code_of(&self, secret: &[u8], steps: i8) -> String {
        let t = self.now() as i64 + i64::from(steps.clamp(-3, 3)) * 30;
        TotpKey::new(&self.policy, secret).generate(t as u64)
    }

    /// A TOTP code as the fuzzer chooses it: from one of the user's authenticators
    /// at a step near now, the last accepted one again, a wrong one, or any text.
    fn totp_choice(&self, u: usize, b: &mut Bytes<'_>) -> String {
        let user = &self.users[u];
        match b.u8() % 6 {
            0 | 1 if !user.auths.is_empty() => {
                let a = &user.auths[usize::from(b.u8()) % user.auths.len()];
                let steps = if b.u8().is_multiple_of(2) {
                    0
                } else {
                    b.u8() as i8
                };
                self.code_of(&a.secret, steps)
            }
            2 if user.last_accepted.is_some() => user.last_accepted.clone().unwrap_or_default(),
            3 => format!("{:06}", u32::from(b.u16()) * 16 % 1_000_000),
            4 => b.text(),
            _ => match &user.enrollment {
                Some((secret, _, _)) => self.code_of(secret, 0),
                None => "000000".to_owned(),
            },
        }
    }

    /// A backup code as the fuzzer chooses it: unspent, dead, or any text, typed
    /// in one of the accepted styles.
    fn backup_choice(&self, u: usize, b: &mut Bytes<'_>) -> String {
        let user = &self.users[u];
        let pick =
            |list: &Vec<String>, i: u8| list.get(usize::from(i) % list.len().max(1)).cloned();
        let code = match b.u8() % 3 {
            0 => pick(&user.codes, b.u8()),
            1 => pick(&user.dead_codes, b.u8()),
            _ => return b.text(),
        };
        let Some(code) = code else {
            return b.text();
        };
        match b.u8() % 4 {
            0 => code.to_lowercase(),
            1 => format!("{}-{}-{}", &code[..5], &code[5..10], &code[10..]),
            2 => format!(" {} {} ", &code[..7], &code[7..]),
            _ => code,
        }
    }

    /// The model's TOTP rule: the matches of every authenticator (newest step in the
    /// window each), newest first, the first one strictly after its authenticator's
    /// last accepted step. Returns (any match, the step that will be accepted).
    fn predict_totp(&self, u: usize, typed: &str) -> (bool, Option<(usize, u64)>) {
        let Ok(code) = self.policy.normalize_code(typed) else {
            return (false, None);
        };
        let now = self.now();
        let mut matches: Vec<(usize, u64)> = self.users[u]
            .auths
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                TotpKey::new(&self.policy, &a.secret)
                    .verify(&code, now)
                    .map(|s| (i, s))
            })
            .collect();
        matches.sort_by_key(|m| Reverse(m.1));
        let fresh = matches
            .iter()
            .copied()
            .find(|(i, s)| self.users[u].auths[*i].last.is_none_or(|l| *s > l));
        (!matches.is_empty(), fresh)
    }

    fn accept_totp(&mut self, u: usize, typed: &str, (i, step): (usize, u64)) {
        let a = &mut self.users[u].auths[i];
        assert!(
            a.last.is_none_or(|l| step > l),
            "step {step} accepted twice"
        );
        a.last = Some(step);
        self.users[u].last_accepted = Some(typed.to_owned());
    }

    /// Whether the account's TOTP throttle may refuse a code: the short lockout
    /// after more than the free failures in a row, or the 30-day budget once it
    /// holds its failures. Successes clear the former and do not refill the latter.
    fn totp_may_throttle(&self, u: usize) -> bool {
        let user = &self.users[u];
        user.totp_streak > self.free_failures || user.totp_failures >= self.budget_failures
    }

    /// Counts a TOTP attempt that reached the account's throttle.
    fn totp_attempted(&mut self, u: usize, passed: bool) {
        let user = &mut self.users[u];
        if passed {
            user.totp_streak = 0;
        } else {
            user.totp_failures += 1;
            user.totp_streak += 1;
        }
    }

    /// Checks a TOTP attempt that reached the account's throttle (2FA on, the
    /// attempt counted) against the model and counts it. `predicted`: the model
    /// finds a fresh matching step.
    fn check_throttled_totp<T>(
        &mut self,
        u: usize,
        predicted: bool,
        r: &Result<T, Error>,
        what: &str,
    ) {
        let may_throttle = self.totp_may_throttle(u);
        match r {
            Ok(_) => assert!(predicted, "{what}: accepted a TOTP code the model rejects"),
            Err(Error::TooManyAttempts { .. }) => {
                assert!(
                    may_throttle,
                    "{what}: TOTP refused before the lockout or the budget could start"
                );
                self.saw("totp: throttled");
            }
            Err(e) => assert!(!predicted, "{what}: a valid TOTP code was refused: {e:?}"),
        }
        if predicted && !may_throttle {
            assert!(r.is_ok(), "{what}: a valid TOTP code was refused");
        }
        self.totp_attempted(u, r.is_ok());
    }

    fn spend_backup(&mut self, u: usize, typed: &str) {
        let code = normalize_backup(typed).expect("an accepted backup code normalizes");
        let user = &mut self.users[u];
        let pos = user
            .codes
            .iter()
            .position(|c| *c == code)
            .expect("an accepted backup code is unspent");
        user.dead_codes.push(user.codes.swap_remove(pos));
    }

    fn backup_unspent(&self, u: usize, typed: &str) -> bool {
        normalize_backup(typed).is_some_and(|code| self.users[u].codes.contains(&code))
    }

    fn device_trusted(&self, d: &Device, u: usize) -> bool {
        d.user == u
            && !d.revoked
            && d.epoch == self.users[u].epoch
            && self.now() < d.issued + DEVICE_TTL
    }

    fn known_valid(&self, k: &Known, u: usize) -> bool {
        let now = self.now();
        k.user == u
            && self.users[u].id.is_some()
            && k.epoch == self.users[u].epoch
            && k.issued <= now
            && now - k.issued <= KNOWN_BROWSER_TTL_SECS
    }

    fn revoke_devices(&mut self, u: usize) {
        for d in self.devices.iter_mut().filter(|d| d.user == u) {
            d.revoked = true;
        }
    }

    fn trust(&mut self, auth: &Authenticated, u: usize) {
        let token = block_on(self.service.trust_device(auth, "fuzz device"))
            .expect("trusting after a second factor");
        let epoch = self.users[u].epoch;
        let issued = self.now();
        self.devices.push(Device {
            token: token.expose().to_owned(),
            user: u,
            issued,
            epoch,
            revoked: false,
        });
        self.saw("device trusted");
    }

    /// After a completed login: remembers the browser and opens a session.
    fn logged_in(&mut self, u: usize, auth: Authenticated) {
        let known = self.service.remember_browser(&auth);
        let now = self.now();
        if self.known.len() >= KNOWN_BROWSERS {
            self.known.remove(0);
        }
        self.known.push(Known {
            token: known.expose().to_owned(),
            user: u,
            epoch: self.users[u].epoch,
            issued: now,
        });
        let token = block_on(self.service.issue_session(auth)).expect("issuing a session");
        self.track_session(u, token.expose().to_owned());
    }

    fn track_session(&mut self, u: usize, token: String) {
        let now = self.now();
        if self.sessions.iter().filter(|s| s.user == u).count() >= SESSIONS_PER_USER {
            let oldest = self.sessions.iter().position(|s| s.user == u);
            self.sessions.remove(oldest.expect("counted"));
        }
        self.sessions.push(Sess {
            token,
            user: u,
            authenticated_at: now,
            expires_at: now + self.session_ttl,
            ended: false,
            reauth_failures: 0,
        });
    }

    fn session_alive(&self, s: &Sess) -> bool {
        !s.ended && self.now() < s.expires_at
    }

    /// The index of a tracked session of user `u` the fuzzer picks.
    fn pick_session(&self, u: usize, b: &mut Bytes<'_>) -> Option<usize> {
        let mine: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].user == u)
            .collect();
        if mine.is_empty() {
            return None;
        }
        Some(mine[usize::from(b.u8()) % mine.len()])
    }

    /// `recent_auth` on tracked session `i`, checked against the model.
    fn prove(&mut self, i: usize) -> Option<Held> {
        let s = &self.sessions[i];
        let u = s.user;
        let alive = self.session_alive(s);
        let until = s.authenticated_at + self.reauth_ttl;
        let token = s.token.clone();
        let r = block_on(self.service.recent_auth(&token));
        match r {
            Ok(proof) => {
                assert!(alive, "a proof from an ended session");
                assert!(self.now() < until, "a proof outside the window");
                assert_eq!(proof.until(), until);
                assert_eq!(Some(proof.user_id()), self.users[u].id.as_ref());
                Some(Held {
                    proof,
                    session: token,
                    until,
                })
            }
            Err(Error::Unauthenticated) => {
                assert!(!alive, "recent_auth: a live session is unauthenticated");
                None
            }
            Err(Error::ReauthenticationRequired) => {
                assert!(
                    alive,
                    "recent_auth: an ended session needs reauthentication"
                );
                assert!(until <= self.now(), "recent_auth: the window is open");
                None
            }
            Err(e) => panic!("recent_auth: {e:?}"),
        }
    }

    /// The proof a credential change of user `u` uses: the one the model holds, or a
    /// fresh one from the user's newest live session (after a password login when
    /// the user has none and 2FA is off). Reads no input bytes.
    fn acquire(&mut self, u: usize) -> Option<Held> {
        self.users[u].id.as_ref()?;
        if let Some(held) = self.held[u].take() {
            return Some(held);
        }
        let live = |w: &World| {
            w.sessions
                .iter()
                .rposition(|s| s.user == u && w.session_alive(s))
        };
        if live(self).is_none() && !self.users[u].enabled {
            self.login_as(u, true, None, None);
        }
        let i = live(self).or_else(|| self.sessions.iter().rposition(|s| s.user == u))?;
        self.prove(i)
    }

    /// Checks the proof rule after a credential change with `held`: a closed window
    /// is `reauthentication_required`, a proof whose session has ended (logout, ended
    /// from elsewhere, password change) is `unauthenticated` — either way the change
    /// did nothing and the proof is dropped, as a client would; a live proof is never
    /// refused for either reason (and is kept). Returns whether it was refused.
    fn settle<T>(&mut self, u: usize, held: Held, r: &Result<T, Error>, what: &str) -> bool {
        let stale = held.until <= self.now();
        let refused_stale = matches!(r, Err(Error::ReauthenticationRequired));
        let refused_dead = matches!(r, Err(Error::Unauthenticated));
        // The model tracks a few sessions per user; for one it no longer tracks it
        // cannot tell, and takes the service's word.
        let dead = match self.sessions.iter().find(|s| s.token == held.session) {
            Some(s) => !self.session_alive(s),
            None => refused_dead,
        };
        assert_eq!(
            refused_stale,
            stale,
            "{what} with a proof until {} at {}: {:?}",
            held.until,
            self.now(),
            r.as_ref().err()
        );
        assert_eq!(
            refused_dead,
            !stale && dead,
            "{what} with a proof of a session that is {}: {:?}",
            if dead { "gone" } else { "live" },
            r.as_ref().err()
        );
        if stale {
            self.saw("proof: reauthentication required");
        } else if dead {
            self.saw("proof: session ended");
        } else {
            self.held[u] = Some(held);
        }
        stale || dead
    }

    /// After a factor change made with the proof of session `current`: the account's
    /// trusted devices are revoked and its other sessions end.
    fn factor_changed(&mut self, u: usize, current: &str) {
        self.revoke_devices(u);
        for s in self
            .sessions
            .iter_mut()
            .filter(|s| s.user == u && s.token != current)
        {
            s.ended = true;
        }
    }

    fn set_codes(&mut self, u: usize, codes: &[backup::BackupCode]) {
        assert_eq!(codes.len(), backup::DEFAULT_COUNT);
        let user = &mut self.users[u];
        let old: Vec<String> = user.codes.drain(..).collect();
        user.dead_codes.extend(old);
        user.codes = codes
            .iter()
            .map(|c| normalize_backup(c.expose()).expect("a generated code normalizes"))
            .collect();
    }

    /// Every tracked session is live in the service exactly when the model says so.
    fn check_sessions(&self) {
        for s in &self.sessions {
            let r = block_on(self.service.session(&s.token));
            let alive = self.session_alive(s);
            match r {
                Ok(session) => {
                    assert!(alive, "an ended session is live");
                    assert_eq!(Some(session.user_id()), self.users[s.user].id.as_ref());
                    assert_eq!(
                        session.reauthenticated_until(),
                        s.authenticated_at + self.reauth_ttl
                    );
                    assert_eq!(session.expires_at(), s.expires_at);
                }
                Err(Error::Unauthenticated) => assert!(!alive, "a live session ended"),
                Err(e) => panic!("session: {e:?}"),
            }
        }
    }

    fn step(&mut self, b: &mut Bytes<'_>) {
        let op = b.u8() % 18;
        let u = usize::from(b.u8() % 2);
        let now = self.now();
        match op {
            0 => {
                let password = format!("password-{u}");
                let r = block_on(self.service.register(NAMES[u], &password));
                match (&self.users[u].id, r) {
                    (None, Ok(id)) => {
                        self.users[u].id = Some(id);
                        self.users[u].password = password;
                        self.saw("registered");
                    }
                    (Some(_), Err(Error::UsernameTaken)) => {}
                    (had, r) => panic!("register: registered={} gave {r:?}", had.is_some()),
                }
            }
            1 => self.login(u, b),
            2 | 3 => self.second_factor(op == 2, b),
            4 => {
                let Some(held) = self.acquire(u) else {
                    return;
                };
                let r = block_on(self.service.setup_two_factor(&held.proof));
                if self.settle(u, held, &r, "setup") {
                    return;
                }
                match r {
                    Ok(setup) => {
                        assert!(!self.users[u].enabled);
                        self.users[u].enrollment =
                            Some((setup.secret().expose_bytes().to_vec(), false, now + 600));
                        self.saw("setup");
                    }
                    Err(Error::TwoFactorAlreadyEnabled) => assert!(self.users[u].enabled),
                    Err(e) => panic!("setup failed: {e:?}"),
                }
            }
            5 => {
                let Some(held) = self.acquire(u) else {
                    return;
                };
                let r = block_on(self.service.add_authenticator(&held.proof, "second phone"));
                if self.settle(u, held, &r, "add_authenticator") {
                    return;
                }
                let user = &self.users[u];
                match r {
                    Ok(setup) => {
                        assert!(user.enabled && user.auths.len() < MAX_AUTHENTICATORS);
                        self.users[u].enrollment =
                            Some((setup.secret().expose_bytes().to_vec(), true, now + 600));
                        self.saw("add authenticator");
                    }
                    Err(Error::TwoFactorNotEnabled) => assert!(!user.enabled),
                    Err(Error::TooManyAuthenticators) => {
                        assert!(user.enabled && user.auths.len() >= MAX_AUTHENTICATORS)
                    }
                    Err(e) => panic!("adding failed: {e:?}"),
                }
            }
            6 => self.confirm(u, b),
            7 => self.account_action(u, true, b),
            8 => self.account_action(u, false, b),
            9 => {
                let Some(held) = self.acquire(u) else {
                    return;
                };
                let n = self.users[u].auths.len();
                let target = match n {
                    0 => AuthenticatorId::new("no-such-authenticator"),
                    _ => self.users[u].auths[usize::from(b.u8()) % n].id.clone(),
                };
                let r = block_on(self.service.remove_authenticator(&held.proof, &target));
                let current = held.session.clone();
                if self.settle(u, held, &r, "remove_authenticator") {
                    return;
                }
                match (n, &r) {
                    (0, Err(Error::NotFound { .. })) => {}
                    (1, Err(Error::LastAuthenticator)) => {}
                    (2.., Ok(())) => {
                        self.users[u].auths.retain(|a| a.id != target);
                        self.factor_changed(u, &current);
                        self.saw("authenticator removed");
                    }
                    _ => panic!("remove with {n} authenticators: {r:?}"),
                }
            }
            10 => self.change_password(u, b),
            11 => self.clock.advance(Duration::from_secs(u64::from(b.u16()))),
            12 => self.clock.advance(Duration::from_secs(30)),
            13 => self.clock.advance(Duration::from_secs(u64::from(b.u8()))),
            14 => {
                // Take a proof from a session of the fuzzer's choice and hold it.
                let Some(i) = self.pick_session(u, b) else {
                    return;
                };
                if let Some(held) = self.prove(i) {
                    self.held[u] = Some(held);
                }
            }
            // Past the re-authentication window of everything authenticated so far.
            15 => self
                .clock
                .advance(Duration::from_secs(self.reauth_ttl + u64::from(b.u8()))),
            16 => self.reauthenticate(u, b),
            _ => self.session_action(u, b),
        }
    }

    fn login(&mut self, u: usize, b: &mut Bytes<'_>) {
        let right = !b.u8().is_multiple_of(4);
        let (mut device, mut known) = (None, None);
        let choice = b.u8() % 6;
        if matches!(choice, 0 | 4) && !self.devices.is_empty() {
            device = Some(usize::from(b.u8()) % self.devices.len());
        }
        if matches!(choice, 3 | 4) && !self.known.is_empty() {
            known = Some(usize::from(b.u8()) % self.known.len());
        }
        self.login_as(u, right, device, known);
    }

    fn login_as(&mut self, u: usize, right: bool, device: Option<usize>, known: Option<usize>) {
        let password = if right {
            self.users[u].password.clone()
        } else {
            "wrong password".to_owned()
        };
        let mut request = LoginRequest::new(NAMES[u], &password);
        if let Some(d) = device {
            request = request.device_token(&self.devices[d].token);
        }
        if let Some(k) = known {
            request = request.known_browser(&self.known[k].token);
        }
        let r = block_on(self.service.login(request));
        let now = self.now();
        let user = &self.users[u];
        let registered = user.id.is_some();
        let trusted = device.is_some_and(|d| self.device_trusted(&self.devices[d], u));
        let known_ok = known.is_some_and(|k| self.known_valid(&self.known[k], u));
        if !known_ok {
            // The login name's throttle, as `reserve_password` and `undo` keep it: a
            // right password's own reservation is undone (count and lockout), so it
            // never starts a lockout.
            // The password window (default policy): the count is forgotten one window
            // after its lockout ends.
            const WINDOW: u64 = 15 * 60;
            let limits = self.service.throttle_policy();
            let user = &mut self.users[u];
            if now >= user.name_keep {
                user.name_count = 0;
                user.name_until = 0;
            }
            if now < user.name_until {
                assert!(
                    matches!(r, Err(Error::TooManyAttempts { .. })),
                    "login while the name is locked: {r:?}"
                );
                self.saw("login: name locked");
                return;
            }
            if registered && right {
                // `undo` puts the state back and keeps it at least one window.
                user.name_keep = (now + WINDOW).max(user.name_until);
            } else {
                user.name_count += 1;
                user.name_until = now + limits.password_lockout_after(user.name_count).as_secs();
                user.name_keep = user.name_until + WINDOW;
            }
        }
        let user = &self.users[u];
        match r {
            Err(Error::InvalidCredentials) => {
                assert!(!registered || !right);
                self.saw("login: invalid credentials");
            }
            Ok(LoginOutcome::Authenticated(auth)) => {
                assert!(registered && right, "authenticated with a wrong password");
                assert_eq!(Some(auth.user_id()), user.id.as_ref());
                if user.enabled {
                    assert!(trusted, "2FA skipped without a trusted device");
                    assert_eq!(auth.method(), AuthMethod::TrustedDevice);
                    self.saw("login: trusted device");
                } else {
                    assert_eq!(auth.method(), AuthMethod::Password);
                    self.saw("login: password");
                }
                assert!(block_on(self.service.trust_device(&auth, "x")).is_err());
                self.logged_in(u, auth);
            }
            Ok(LoginOutcome::SecondFactorRequired(ticket)) => {
                assert!(registered && right && user.enabled && !trusted);
                let epoch = user.epoch;
                self.pendings.push(Pending {
                    token: ticket.token.expose().to_owned(),
                    user: u,
                    issued: self.now(),
                    epoch,
                    done: false,
                    attempts: 0,
                });
                self.saw("login: second factor required");
            }
            Err(e) => panic!("login (known browser {known_ok}): {e:?}"),
            Ok(_) => panic!("login: an outcome the model does not know"),
        }
    }

    fn second_factor(&mut self, totp: bool, b: &mut Bytes<'_>) {
        if self.pendings.is_empty() {
            let r = block_on(
                self.service
                    .second_factor("not-a-token", SecondFactor::Totp("123456")),
            );
            assert!(r.is_err());
            return;
        }
        let p = usize::from(b.u8()) % self.pendings.len();
        let u = self.pendings[p].user;
        let typed = if totp {
            self.totp_choice(u, b)
        } else {
            self.backup_choice(u, b)
        };
        let trust = b.u8().is_multiple_of(2);
        let (well_formed, predicted) = if totp {
            let (_, fresh) = self.predict_totp(u, &typed);
            (self.policy.normalize_code(&typed).is_ok(), fresh.is_some())
        } else {
            (
                normalize_backup(&typed).is_some(),
                self.backup_unspent(u, &typed),
            )
        };
        let (_, fresh) = if totp {
            self.predict_totp(u, &typed)
        } else {
            (false, None)
        };
        let pending = &self.pendings[p];
        let in_time = self.now() < pending.issued + LOGIN_TTL;
        // Live but for its time: what only the pending login's expiry refuses.
        let live_untimed = !pending.done
            && pending.attempts < ATTEMPTS_PER_LOGIN
            && pending.epoch == self.users[u].epoch
            && self.users[u].enabled;
        let live = live_untimed && in_time;
        let factor = if totp {
            SecondFactor::Totp(&typed)
        } else {
            SecondFactor::BackupCode(&typed)
        };
        let r = block_on(self.service.second_factor(&pending.token, factor));
        if well_formed && !self.pendings[p].done {
            self.pendings[p].attempts += 1;
        }
        if well_formed && !live {
            // Expired, burnt, or voided (the service deletes it when it looks).
            self.pendings[p].done = true;
            self.saw("second factor: pending login dead");
            if live_untimed && !in_time {
                self.saw("second factor: pending login expired");
            }
        }
        if let Err(e) = &r {
            if live && predicted && !totp {
                panic!("an unspent backup code was refused: {e:?}");
            }
            if matches!(e, Error::TooManyAttempts { .. }) {
                assert!(totp && live, "second factor throttled: {e:?}");
            }
        }
        if totp && live && well_formed {
            self.check_throttled_totp(u, predicted, &r, "second factor");
        }
        match r {
            Ok(auth) => {
                assert!(live, "a dead pending login completed");
                assert!(
                    predicted,
                    "accepted a factor the model rejects (totp={totp}, {typed:?})"
                );
                assert_eq!(Some(auth.user_id()), self.users[u].id.as_ref());
                self.pendings[p].done = true;
                if totp {
                    assert_eq!(auth.method(), AuthMethod::Totp);
                    self.accept_totp(u, &typed, fresh.expect("predicted"));
                    self.saw("second factor: totp");
                } else {
                    assert_eq!(auth.method(), AuthMethod::BackupCode);
                    self.spend_backup(u, &typed);
                    self.saw("second factor: backup code");
                }
                if trust {
                    self.trust(&auth, u);
                }
                self.logged_in(u, auth);
            }
            Err(e) => {
                if live && predicted {
                    assert!(
                        !matches!(
                            e,
                            Error::InvalidCode { .. }
                                | Error::BackupCodeUsed { .. }
                                | Error::CodeAlreadyUsed
                        ),
                        "a valid factor was refused: {e:?}"
                    );
                }
                self.saw("second factor: refused");
            }
        }
    }

    fn confirm(&mut self, u: usize, b: &mut Bytes<'_>) {
        let Some(held) = self.acquire(u) else {
            return;
        };
        let typed = self.totp_choice(u, b);
        let now = self.now();
        let user = &self.users[u];
        let expired = user
            .enrollment
            .as_ref()
            .is_some_and(|(_, _, expires)| now >= *expires);
        let step = match (&user.enrollment, self.policy.normalize_code(&typed)) {
            (Some((secret, adding, expires)), Ok(code))
                if now < *expires
                    && *adding == user.enabled
                    && !(*adding && user.auths.len() >= MAX_AUTHENTICATORS) =>
            {
                TotpKey::new(&self.policy, secret).verify(&code, now)
            }
            _ => None,
        };
        let r = block_on(self.service.confirm_enrollment(&held.proof, &typed));
        let current = held.session.clone();
        if self.settle(u, held, &r, "confirm") {
            return;
        }
        assert_eq!(r.is_ok(), step.is_some(), "confirm: {r:?}");
        if expired && matches!(r, Err(Error::SetupExpired)) {
            self.saw("confirm: setup expired");
        }
        let (Ok(confirmed), Some(step)) = (r, step) else {
            return;
        };
        let (secret, adding, _) = self.users[u].enrollment.take().expect("checked");
        self.users[u].auths.push(Auth {
            id: confirmed.authenticator_id,
            secret,
            last: Some(step),
        });
        self.users[u].last_accepted = Some(typed);
        match confirmed.backup_codes {
            Some(codes) => {
                assert!(!adding);
                self.users[u].enabled = true;
                self.set_codes(u, &codes);
                self.saw("2fa enabled");
            }
            None => {
                assert!(adding);
                self.saw("authenticator confirmed");
            }
        }
        self.factor_changed(u, &current);
    }

    /// Disable (`disable == true`, TOTP or backup code) or regenerate backup codes.
    fn account_action(&mut self, u: usize, disable: bool, b: &mut Bytes<'_>) {
        let Some(held) = self.acquire(u) else {
            return;
        };
        let totp = !disable || b.u8().is_multiple_of(2);
        let typed = if totp {
            self.totp_choice(u, b)
        } else {
            self.backup_choice(u, b)
        };
        let (fresh, predicted, well_formed) = if totp {
            let (_, fresh) = self.predict_totp(u, &typed);
            (
                fresh,
                fresh.is_some(),
                self.policy.normalize_code(&typed).is_ok(),
            )
        } else {
            (
                None,
                self.backup_unspent(u, &typed),
                normalize_backup(&typed).is_some(),
            )
        };
        let enabled = self.users[u].enabled;
        let factor = if totp {
            SecondFactor::Totp(&typed)
        } else {
            SecondFactor::BackupCode(&typed)
        };
        let r = if disable {
            block_on(self.service.disable_two_factor(&held.proof, factor)).map(|()| None)
        } else {
            block_on(self.service.regenerate_backup_codes(&held.proof, &typed)).map(Some)
        };
        let current = held.session.clone();
        let what = if disable { "disable" } else { "regenerate" };
        if self.settle(u, held, &r, what) {
            return;
        }
        if !well_formed {
            assert!(
                matches!(r, Err(Error::InvalidInput { .. })),
                "{what} with a malformed code: {:?}",
                r.as_ref().err()
            );
            return;
        }
        if !enabled {
            assert!(
                matches!(r, Err(Error::TwoFactorNotEnabled)),
                "{what} with 2FA off: {:?}",
                r.as_ref().err()
            );
            return;
        }
        if totp {
            self.check_throttled_totp(u, predicted, &r, what);
        } else {
            assert_eq!(
                r.is_ok(),
                predicted,
                "{what} with a backup code: {:?}",
                r.as_ref().err()
            );
        }
        let Ok(codes) = r else {
            return;
        };
        if totp {
            self.accept_totp(u, &typed, fresh.expect("predicted"));
        } else {
            self.spend_backup(u, &typed);
        }
        match codes {
            Some(codes) => {
                self.set_codes(u, &codes);
                self.saw("backup codes regenerated");
            }
            None => {
                let user = &mut self.users[u];
                user.enabled = false;
                user.auths.clear();
                let old: Vec<String> = user.codes.drain(..).collect();
                user.dead_codes.extend(old);
                self.saw("2fa disabled");
            }
        }
        self.factor_changed(u, &current);
    }

    fn change_password(&mut self, u: usize, b: &mut Bytes<'_>) {
        let Some(held) = self.acquire(u) else {
            return;
        };
        let right = b.u8().is_multiple_of(2);
        let current = if right {
            self.users[u].password.clone()
        } else {
            "not the password".to_owned()
        };
        self.passwords_made += 1;
        let new = format!("new-password-{}", self.passwords_made);
        let r = block_on(self.service.change_password(&held.proof, &current, &new));
        if self.settle(u, held, &r, "change_password") {
            return;
        }
        match &r {
            // Wrong current passwords are throttled: a lockout only ever
            // follows more than the free failures.
            Err(Error::TooManyAttempts { .. }) => {
                assert!(
                    self.users[u].pw_change_failures > 5,
                    "change_password: {:?}",
                    r.as_ref().err()
                );
                self.saw("password change: throttled");
                return;
            }
            Err(_) => self.users[u].pw_change_failures += 1,
            Ok(_) => self.users[u].pw_change_failures = 0,
        }
        assert_eq!(r.is_ok(), right, "change_password: {:?}", r.as_ref().err());
        let Ok(token) = r else {
            return;
        };
        let session = block_on(self.service.session(token.expose())).expect("the new session");
        assert_eq!(Some(session.user_id()), self.users[u].id.as_ref());
        assert_eq!(session.method(), AuthMethod::Password);
        let user = &mut self.users[u];
        user.password = new;
        user.epoch += 1;
        self.revoke_devices(u);
        // Every session of the account ends; the caller's is replaced, recently
        // authenticated. The held proof belonged to the old cookie: drop it.
        for s in self.sessions.iter_mut().filter(|s| s.user == u) {
            s.ended = true;
        }
        self.held[u] = None;
        self.track_session(u, token.expose().to_owned());
        self.saw("password changed");
    }

    fn reauthenticate(&mut self, u: usize, b: &mut Bytes<'_>) {
        let Some(i) = self.pick_session(u, b) else {
            return;
        };
        let right = !b.u8().is_multiple_of(4);
        let kind = b.u8() % 3;
        let typed = match kind {
            1 => self.totp_choice(u, b),
            2 => self.backup_choice(u, b),
            _ => String::new(),
        };
        let password = if right {
            self.users[u].password.clone()
        } else {
            "wrong password".to_owned()
        };
        let mut request = ReauthRequest::new(&password);
        request = match kind {
            1 => request.factor(SecondFactor::Totp(&typed)),
            2 => request.factor(SecondFactor::BackupCode(&typed)),
            _ => request,
        };
        let (fresh, predicted, well_formed) = match kind {
            1 => {
                let (_, fresh) = self.predict_totp(u, &typed);
                (
                    fresh,
                    fresh.is_some(),
                    self.policy.normalize_code(&typed).is_ok(),
                )
            }
            2 => (
                None,
                self.backup_unspent(u, &typed),
                normalize_backup(&typed).is_some(),
            ),
            _ => (None, false, true),
        };
        let token = self.sessions[i].token.clone();
        let r = block_on(self.service.reauthenticate(&token, request));
        let now = self.now();
        let err = r.as_ref().err();
        if !self.session_alive(&self.sessions[i]) {
            assert!(
                matches!(r, Err(Error::Unauthenticated)),
                "reauthenticate on an ended session: {err:?}"
            );
            return;
        }
        if !well_formed {
            assert!(
                matches!(r, Err(Error::InvalidInput { .. })),
                "reauthenticate with a malformed code: {err:?}"
            );
            return;
        }
        if !right {
            assert!(
                matches!(r, Err(Error::InvalidCredentials)),
                "reauthenticate with a wrong password: {err:?}"
            );
            let s = &mut self.sessions[i];
            s.reauth_failures += 1;
            if s.reauth_failures > self.free_failures {
                // Whoever holds the session does not know the password: it ends.
                s.ended = true;
            }
            self.saw("reauthenticate: wrong password");
            return;
        }
        self.sessions[i].reauth_failures = 0;
        if self.users[u].enabled {
            match kind {
                0 => {
                    assert!(
                        matches!(r, Err(Error::InvalidInput { .. })),
                        "reauthenticate without a code: {err:?}"
                    );
                    return;
                }
                1 => {
                    self.check_throttled_totp(u, predicted, &r, "reauthenticate");
                    if r.is_ok() {
                        self.accept_totp(u, &typed, fresh.expect("predicted"));
                    }
                }
                _ => {
                    assert_eq!(
                        r.is_ok(),
                        predicted,
                        "reauthenticate with a backup code: {err:?}"
                    );
                    if r.is_ok() {
                        self.spend_backup(u, &typed);
                    }
                }
            }
        } else {
            assert!(r.is_ok(), "reauthenticate with 2FA off: {err:?}");
        }
        if let Ok(until) = r {
            assert_eq!(until, now + self.reauth_ttl);
            self.sessions[i].authenticated_at = now;
            self.saw("reauthenticated");
        }
    }

    /// Logout, or the account's session list, from a session of the fuzzer's choice.
    fn session_action(&mut self, u: usize, b: &mut Bytes<'_>) {
        let Some(i) = self.pick_session(u, b) else {
            return;
        };
        let token = self.sessions[i].token.clone();
        if b.u8().is_multiple_of(2) {
            block_on(self.service.end_session(&token)).expect("logout");
            self.sessions[i].ended = true;
            self.saw("logout");
            return;
        }
        let r = block_on(self.service.sessions(&token));
        let alive = self.session_alive(&self.sessions[i]);
        let list = match r {
            Ok(list) => list,
            Err(Error::Unauthenticated) => {
                assert!(!alive, "sessions: a live session is unauthenticated");
                return;
            }
            Err(e) => panic!("sessions: {e:?}"),
        };
        assert!(alive, "sessions listed from an ended session");
        assert_eq!(list.iter().filter(|s| s.current).count(), 1);
        for s in self.sessions.iter().filter(|s| s.user == u) {
            if !self.session_alive(s) {
                continue;
            }
            let id = block_on(self.service.session(&s.token))
                .expect("a live session")
                .id()
                .clone();
            let info = list.iter().find(|l| l.id == id);
            let info = info.expect("a live session is listed");
            assert_eq!(info.current, s.token == token);
        }
        self.saw("sessions listed");
    }
}
