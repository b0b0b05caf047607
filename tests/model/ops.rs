//! The model's operations as data: each [`Op`] encodes to the bytes the model
//! reads for that one step (`World::step` and the choices it makes), so a test
//! can generate, print and shrink readable operation sequences and still run them
//! through the byte-driven model ([`super::run_steps`]).
//!
//! Some bytes are read only in some states (an authenticator index only when the
//! user has one, a session index only when the user has a session...): where the
//! state lacks what an op names, the model falls back as it does for the fuzzer,
//! and the op's remaining bytes are ignored, never read by the next op.

/// A user of the model: 0 is `alice`, 1 is `bob`.
pub type User = u8;

/// How a fuzzer-typed backup code is written (`World::backup_choice`).
#[derive(Clone, Copy, Debug)]
pub enum Style {
    Lower,
    Hyphens,
    Spaces,
    AsIssued,
}

/// A TOTP code as the model chooses it (`World::totp_choice`).
#[derive(Clone, Debug)]
pub enum Totp {
    /// From the user's authenticator `index` (modulo their count), `steps` periods
    /// from now (clamped to ±3); with no authenticator, as `Enrollment`.
    Authenticator { index: u8, steps: i8 },
    /// The last code the service accepted for the user again (a replay).
    LastAccepted,
    /// Six digits that are almost surely wrong.
    Digits(u16),
    /// Any text, up to 79 bytes.
    Text(String),
    /// The code of the user's pending enrollment now, or `000000`.
    Enrollment,
}

/// A backup code as the model chooses it (`World::backup_choice`); with no code
/// in the list named, the model reads the next bytes as text.
#[derive(Clone, Debug)]
pub enum Backup {
    Unspent {
        index: u8,
        style: Style,
    },
    /// Spent, or from a replaced set.
    Dead {
        index: u8,
        style: Style,
    },
    Text(String),
}

/// A second factor, for the operations that take either kind.
#[derive(Clone, Debug)]
pub enum Factor {
    Totp(Totp),
    Backup(Backup),
}

/// What a login carries beside the password (`World::login`); an index is taken
/// modulo the devices or known browsers the model has issued so far.
#[derive(Clone, Copy, Debug)]
pub enum Carry {
    Nothing,
    Device(u8),
    KnownBrowser(u8),
    Both { device: u8, known: u8 },
}

/// One step of the model. `session` and `pending` pick among what the model tracks
/// (modulo its count); an op that needs a registered user, a session or a pending
/// login where there is none does nothing (or, for `SecondFactor`, tries a bogus
/// token).
#[derive(Clone, Debug)]
pub enum Op {
    Register(User),
    Login {
        user: User,
        right: bool,
        carry: Carry,
    },
    SecondFactor {
        pending: u8,
        factor: Factor,
        trust: bool,
    },
    SetupTwoFactor(User),
    AddAuthenticator(User),
    ConfirmEnrollment(User, Totp),
    DisableTwoFactor(User, Factor),
    RegenerateBackupCodes(User, Totp),
    RemoveAuthenticator {
        user: User,
        index: u8,
    },
    ChangePassword {
        user: User,
        right: bool,
    },
    Advance(u16),
    NextPeriod,
    AdvanceBriefly(u8),
    HoldProof {
        user: User,
        session: u8,
    },
    /// Past the re-authentication window, and `extra` seconds more.
    PastReauthWindow(u8),
    Reauthenticate {
        user: User,
        session: u8,
        right: bool,
        factor: Option<Factor>,
    },
    Logout {
        user: User,
        session: u8,
    },
    ListSessions {
        user: User,
        session: u8,
    },
}

fn text(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(79)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

impl Totp {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Totp::Authenticator { index, steps: 0 } => out.extend([0, *index, 0]),
            Totp::Authenticator { index, steps } => out.extend([0, *index, 1, *steps as u8]),
            Totp::LastAccepted => out.push(2),
            Totp::Digits(n) => {
                out.push(3);
                out.extend(n.to_le_bytes());
            }
            Totp::Text(s) => {
                out.push(4);
                text(out, s);
            }
            Totp::Enrollment => out.push(5),
        }
    }
}

impl Backup {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Backup::Unspent { index, style } => out.extend([0, *index, *style as u8]),
            Backup::Dead { index, style } => out.extend([1, *index, *style as u8]),
            Backup::Text(s) => {
                out.push(2);
                text(out, s);
            }
        }
    }
}

impl Factor {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Factor::Totp(t) => t.encode(out),
            Factor::Backup(b) => b.encode(out),
        }
    }
}

impl Op {
    /// The bytes of this one step: its opcode, its user, then its arguments.
    pub fn encode(&self) -> Vec<u8> {
        // A step reads the opcode and a user byte first, used or not.
        let step = |op: u8, user: User| vec![op, user];
        match self {
            Op::Register(u) => step(0, *u),
            Op::Login { user, right, carry } => {
                let mut out = step(1, *user);
                out.push(u8::from(*right));
                match carry {
                    Carry::Nothing => out.push(1),
                    Carry::Device(d) => out.extend([0, *d]),
                    Carry::KnownBrowser(k) => out.extend([3, *k]),
                    Carry::Both { device, known } => out.extend([4, *device, *known]),
                }
                out
            }
            Op::SecondFactor {
                pending,
                factor,
                trust,
            } => {
                let mut out = step(
                    if matches!(factor, Factor::Totp(_)) {
                        2
                    } else {
                        3
                    },
                    0,
                );
                out.push(*pending);
                factor.encode(&mut out);
                out.push(u8::from(!trust));
                out
            }
            Op::SetupTwoFactor(u) => step(4, *u),
            Op::AddAuthenticator(u) => step(5, *u),
            Op::ConfirmEnrollment(u, t) => {
                let mut out = step(6, *u);
                t.encode(&mut out);
                out
            }
            Op::DisableTwoFactor(u, f) => {
                let mut out = step(7, *u);
                out.push(u8::from(matches!(f, Factor::Backup(_))));
                f.encode(&mut out);
                out
            }
            Op::RegenerateBackupCodes(u, t) => {
                let mut out = step(8, *u);
                t.encode(&mut out);
                out
            }
            Op::RemoveAuthenticator { user, index } => vec![9, *user, *index],
            Op::ChangePassword { user, right } => vec![10, *user, u8::from(!right)],
            Op::Advance(secs) => {
                let mut out = step(11, 0);
                out.extend(secs.to_le_bytes());
                out
            }
            Op::NextPeriod => step(12, 0),
            Op::AdvanceBriefly(secs) => vec![13, 0, *secs],
            Op::HoldProof { user, session } => vec![14, *user, *session],
            Op::PastReauthWindow(extra) => vec![15, 0, *extra],
            Op::Reauthenticate {
                user,
                session,
                right,
                factor,
            } => {
                let mut out = vec![16, *user, *session, u8::from(*right)];
                match factor {
                    None => out.push(0),
                    Some(f @ Factor::Totp(_)) => {
                        out.push(1);
                        f.encode(&mut out);
                    }
                    Some(f @ Factor::Backup(_)) => {
                        out.push(2);
                        f.encode(&mut out);
                    }
                }
                out
            }
            Op::Logout { user, session } => vec![17, *user, *session, 0],
            Op::ListSessions { user, session } => vec![17, *user, *session, 1],
        }
    }
}
