//! The flows as a state machine: arbitrary sequences of registrations, logins,
//! second factors (right, wrong, replayed and malformed TOTP codes; fresh, spent
//! and revoked backup codes), enrollment, disabling, regeneration, trusted devices,
//! password changes and clock moves, on `Service<MemoryStore>` with a manual clock.
//!
//! A model of the accounts runs beside the service and checks, after every step:
//! - no (authenticator, time step) is ever accepted twice, and a TOTP code is
//!   accepted only when the model finds a fresh matching step (the model applies
//!   the documented rule: newest matching step first, strictly after the last one
//!   accepted for that authenticator);
//! - a backup code is accepted only when it is unspent and from the current set;
//! - `Authenticated` comes only from a live pending login of that user with a
//!   valid factor, from the right password with 2FA off, or from the right
//!   password on a device trusted at the current password;
//! - the password step, enrollment and the account actions give the outcomes the
//!   model predicts; and nothing panics.
//!
//! Input format (hand-writable seeds): a byte stream of operations, each an opcode
//! byte followed by its argument bytes; a missing byte reads as 0.
#![no_main]

use std::cmp::Reverse;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use secondfactor::backup;
use secondfactor::clock::{Clock, ManualClock};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AuthenticatorId, MemoryStore, UserId};
use secondfactor::totp::{TotpKey, TotpPolicy};
use secondfactor::{
    AuthMethod, Authenticated, Error, LoginOutcome, LoginRequest, SecondFactor, Service,
};

const START: u64 = 1_700_000_000;
const LOGIN_TTL: u64 = 300;
const DEVICE_TTL: u64 = 30 * 24 * 3600;
const ATTEMPTS_PER_LOGIN: u32 = 5;
const NAMES: [&str; 2] = ["alice", "bob"];

/// Runs a future that never waits: `MemoryStore` and the default `Inline` blocking
/// runner complete every operation at once.
fn run<F: Future>(f: F) -> F::Output {
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

struct World {
    service: Service<MemoryStore>,
    clock: ManualClock,
    policy: TotpPolicy,
    users: [User; 2],
    pendings: Vec<Pending>,
    devices: Vec<Device>,
    passwords_made: u32,
}

fn normalized_backup(code: &str) -> String {
    code.chars().filter(|c| *c != '-').collect()
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
        World {
            service,
            clock,
            policy,
            users: Default::default(),
            pendings: Vec::new(),
            devices: Vec::new(),
            passwords_made: 0,
        }
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
                let steps = if b.u8() % 2 == 0 { 0 } else { b.u8() as i8 };
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

    fn spend_backup(&mut self, u: usize, typed: &str) {
        let code = backup::normalize(typed)
            .map(|_| normalized_backup(&typed.replace(' ', "").to_uppercase()));
        let code = code.expect("an accepted backup code normalizes");
        let user = &mut self.users[u];
        let pos = user
            .codes
            .iter()
            .position(|c| *c == code)
            .expect("an accepted backup code is unspent");
        user.dead_codes.push(user.codes.swap_remove(pos));
    }

    fn backup_unspent(&self, u: usize, typed: &str) -> bool {
        backup::normalize(typed).is_ok()
            && self.users[u]
                .codes
                .contains(&normalized_backup(&typed.replace(' ', "").to_uppercase()))
    }

    fn device_trusted(&self, d: &Device, u: usize) -> bool {
        d.user == u
            && !d.revoked
            && d.epoch == self.users[u].epoch
            && self.now() < d.issued + DEVICE_TTL
    }

    fn revoke_devices(&mut self, u: usize) {
        for d in self.devices.iter_mut().filter(|d| d.user == u) {
            d.revoked = true;
        }
    }

    fn trust(&mut self, auth: &Authenticated, u: usize) {
        let token = run(self.service.trust_device(auth, "fuzz device"))
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
    }

    fn set_codes(&mut self, u: usize, codes: &[backup::BackupCode]) {
        assert_eq!(codes.len(), backup::DEFAULT_COUNT);
        let user = &mut self.users[u];
        let old: Vec<String> = user.codes.drain(..).collect();
        user.dead_codes.extend(old);
        user.codes = codes
            .iter()
            .map(|c| normalized_backup(c.expose()))
            .collect();
    }

    fn step(&mut self, b: &mut Bytes<'_>) {
        let op = b.u8() % 14;
        let u = usize::from(b.u8() % 2);
        let now = self.now();
        match op {
            0 => {
                let password = format!("password-{u}");
                let r = run(self.service.register(NAMES[u], &password));
                match (&self.users[u].id, r) {
                    (None, Ok(id)) => {
                        self.users[u].id = Some(id);
                        self.users[u].password = password;
                    }
                    (Some(_), Err(Error::UsernameTaken)) => {}
                    (had, r) => panic!("register: registered={} gave {r:?}", had.is_some()),
                }
            }
            1 => self.login(u, b),
            2 | 3 => self.second_factor(op == 2, b),
            4 => {
                let Some(id) = self.users[u].id.clone() else {
                    return;
                };
                let r = run(self.service.setup_two_factor(&id));
                match r {
                    Ok(setup) => {
                        assert!(!self.users[u].enabled);
                        self.users[u].enrollment =
                            Some((setup.secret().expose_bytes().to_vec(), false, now + 600));
                    }
                    Err(e) => assert!(self.users[u].enabled, "setup failed: {e:?}"),
                }
            }
            5 => {
                let Some(id) = self.users[u].id.clone() else {
                    return;
                };
                match run(self.service.add_authenticator(&id, "second phone")) {
                    Ok(setup) => {
                        assert!(self.users[u].enabled);
                        self.users[u].enrollment =
                            Some((setup.secret().expose_bytes().to_vec(), true, now + 600));
                    }
                    Err(e) => assert!(!self.users[u].enabled, "adding failed: {e:?}"),
                }
            }
            6 => self.confirm(u, b),
            7 => self.account_action(u, true, b),
            8 => self.account_action(u, false, b),
            9 => {
                let Some(id) = self.users[u].id.clone() else {
                    return;
                };
                let n = self.users[u].auths.len();
                let target = match n {
                    0 => AuthenticatorId::new("no-such-authenticator"),
                    _ => self.users[u].auths[usize::from(b.u8()) % n].id.clone(),
                };
                let r = run(self.service.remove_authenticator(&id, &target));
                assert_eq!(r.is_ok(), n > 1, "remove with {n} authenticators: {r:?}");
                if r.is_ok() {
                    self.users[u].auths.retain(|a| a.id != target);
                }
            }
            10 => {
                let Some(id) = self.users[u].id.clone() else {
                    return;
                };
                let right = b.u8() % 2 == 0;
                let current = if right {
                    self.users[u].password.clone()
                } else {
                    "not the password".to_owned()
                };
                self.passwords_made += 1;
                let new = format!("new-password-{}", self.passwords_made);
                let r = run(self.service.change_password(&id, &current, &new));
                match &r {
                    // Wrong current passwords are throttled: a lockout only ever
                    // follows more than the free failures.
                    Err(Error::TooManyAttempts { .. }) => {
                        assert!(
                            self.users[u].pw_change_failures > 5,
                            "change_password: {r:?}"
                        );
                        return;
                    }
                    Err(_) => self.users[u].pw_change_failures += 1,
                    Ok(_) => self.users[u].pw_change_failures = 0,
                }
                assert_eq!(r.is_ok(), right, "change_password: {r:?}");
                if let Ok(auth) = r {
                    assert_eq!(auth.method(), AuthMethod::Password);
                    assert!(run(self.service.trust_device(&auth, "x")).is_err());
                    let user = &mut self.users[u];
                    user.password = new;
                    user.epoch += 1;
                    self.revoke_devices(u);
                }
            }
            11 => self.clock.advance(Duration::from_secs(u64::from(b.u16()))),
            12 => self.clock.advance(Duration::from_secs(30)),
            _ => self.clock.advance(Duration::from_secs(u64::from(b.u8()))),
        }
    }

    fn login(&mut self, u: usize, b: &mut Bytes<'_>) {
        let right = b.u8() % 4 != 0;
        let password = if right {
            self.users[u].password.clone()
        } else {
            "wrong password".to_owned()
        };
        let device = match b.u8() % 3 {
            0 if !self.devices.is_empty() => Some(usize::from(b.u8()) % self.devices.len()),
            _ => None,
        };
        let mut request = LoginRequest::new(NAMES[u], &password);
        if let Some(d) = device {
            request = request.device_token(&self.devices[d].token);
        }
        let r = run(self.service.login(request));
        let user = &self.users[u];
        let registered = user.id.is_some();
        let trusted = device.is_some_and(|d| self.device_trusted(&self.devices[d], u));
        match r {
            Err(Error::InvalidCredentials) => assert!(!registered || !right),
            Ok(LoginOutcome::Authenticated(auth)) => {
                assert!(registered && right, "authenticated with a wrong password");
                assert_eq!(Some(auth.user_id()), user.id.as_ref());
                if user.enabled {
                    assert!(trusted, "2FA skipped without a trusted device");
                    assert_eq!(auth.method(), AuthMethod::TrustedDevice);
                } else {
                    assert_eq!(auth.method(), AuthMethod::Password);
                }
                assert!(run(self.service.trust_device(&auth, "x")).is_err());
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
            }
            Err(e) => panic!("login: {e:?}"),
        }
    }

    fn second_factor(&mut self, totp: bool, b: &mut Bytes<'_>) {
        if self.pendings.is_empty() {
            let r = run(self
                .service
                .second_factor("not-a-token", SecondFactor::Totp("123456")));
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
        let trust = b.u8() % 2 == 0;
        let (well_formed, predicted) = if totp {
            let (_, fresh) = self.predict_totp(u, &typed);
            (self.policy.normalize_code(&typed).is_ok(), fresh.is_some())
        } else {
            (
                backup::normalize(&typed).is_ok(),
                self.backup_unspent(u, &typed),
            )
        };
        let (_, fresh) = if totp {
            self.predict_totp(u, &typed)
        } else {
            (false, None)
        };
        let pending = &self.pendings[p];
        let live = !pending.done
            && pending.attempts < ATTEMPTS_PER_LOGIN
            && self.now() < pending.issued + LOGIN_TTL
            && pending.epoch == self.users[u].epoch
            && self.users[u].enabled;
        let factor = if totp {
            SecondFactor::Totp(&typed)
        } else {
            SecondFactor::BackupCode(&typed)
        };
        let r = run(self.service.second_factor(&pending.token, factor));
        if well_formed && !self.pendings[p].done {
            self.pendings[p].attempts += 1;
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
                } else {
                    assert_eq!(auth.method(), AuthMethod::BackupCode);
                    self.spend_backup(u, &typed);
                }
                if trust {
                    self.trust(&auth, u);
                }
            }
            Err(e) => {
                if live && predicted {
                    assert!(
                        !matches!(e, Error::InvalidCode { .. } | Error::CodeAlreadyUsed),
                        "a valid factor was refused: {e:?}"
                    );
                }
            }
        }
    }

    fn confirm(&mut self, u: usize, b: &mut Bytes<'_>) {
        let Some(id) = self.users[u].id.clone() else {
            return;
        };
        let typed = self.totp_choice(u, b);
        let now = self.now();
        let step = match (
            &self.users[u].enrollment,
            self.policy.normalize_code(&typed),
        ) {
            (Some((secret, adding, expires)), Ok(code))
                if now < *expires && *adding == self.users[u].enabled =>
            {
                TotpKey::new(&self.policy, secret).verify(&code, now)
            }
            _ => None,
        };
        let r = run(self.service.confirm_enrollment(&id, &typed));
        assert_eq!(r.is_ok(), step.is_some(), "confirm: {r:?}");
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
            }
            None => assert!(adding),
        }
    }

    /// Disable (`disable == true`, TOTP or backup code) or regenerate backup codes.
    fn account_action(&mut self, u: usize, disable: bool, b: &mut Bytes<'_>) {
        let Some(id) = self.users[u].id.clone() else {
            return;
        };
        let totp = !disable || b.u8() % 2 == 0;
        let typed = if totp {
            self.totp_choice(u, b)
        } else {
            self.backup_choice(u, b)
        };
        let (fresh, predicted) = if totp {
            let (_, fresh) = self.predict_totp(u, &typed);
            (fresh, fresh.is_some())
        } else {
            (None, self.backup_unspent(u, &typed))
        };
        let enabled = self.users[u].enabled;
        let factor = if totp {
            SecondFactor::Totp(&typed)
        } else {
            SecondFactor::BackupCode(&typed)
        };
        let r = if disable {
            run(self.service.disable_two_factor(&id, factor)).map(|()| None)
        } else {
            run(self.service.regenerate_backup_codes(&id, &typed)).map(Some)
        };
        match r {
            Ok(codes) => {
                assert!(
                    enabled && predicted,
                    "account action with an invalid factor"
                );
                if totp {
                    self.accept_totp(u, &typed, fresh.expect("predicted"));
                } else {
                    self.spend_backup(u, &typed);
                }
                match codes {
                    Some(codes) => self.set_codes(u, &codes),
                    None => {
                        let user = &mut self.users[u];
                        user.enabled = false;
                        user.auths.clear();
                        let old: Vec<String> = user.codes.drain(..).collect();
                        user.dead_codes.extend(old);
                        self.revoke_devices(u);
                    }
                }
            }
            Err(e) => {
                if enabled && predicted {
                    assert!(
                        matches!(e, Error::TooManyAttempts { .. }),
                        "a valid factor was refused: {e:?}"
                    );
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = World::new();
    let mut bytes = Bytes(data);
    let mut steps = 0;
    while !bytes.done() && steps < 64 {
        world.step(&mut bytes);
        steps += 1;
    }
});
