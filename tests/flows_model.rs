//! The flows model of the `flows` fuzz target (`tests/model/`), run by `cargo test`:
//! every input of `fuzz/corpus/flows/` replayed as a regression test, and a
//! proptest of operation sequences.
//!
//! The proptest generates structured operations ([`model::ops::Op`]) and encodes
//! each to the bytes the model reads for one step, so a failure shrinks to a short,
//! readable list of operations (printed as the minimal failing input). By default
//! it runs `CASES` (512) sequences of up to `MAX_OPS` (48) operations after the
//! registrations: 3 to 8 s in a debug build on a loaded two-core machine. For a
//! longer hunt set `PROPTEST_CASES` (5 to 15 ms a sequence in a debug build):
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test -p secondfactor --test flows_model generated
//! ```
//!
//! A failing case is saved to `tests/flows_model.proptest-regressions` and replayed
//! first on the next run (commit the file to keep it).

use std::cell::RefCell;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestError, TestRunner};

mod model;
use model::Flows;
use model::ops::{Backup, Carry, Factor, Op, Style, Totp};

/// Sequences the proptest runs unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 512;
/// Operations per sequence at most (after the registrations).
const MAX_OPS: usize = 48;

/// The flows each committed seed must reach (beside the invariants the model checks
/// at every step): what its name says it is for.
const SEEDS: [(&str, &[&str]); 8] = [
    (
        "backup_replay_regenerate_disable",
        &[
            "second factor: backup code",
            "second factor: refused",
            "backup codes regenerated",
            "2fa disabled",
        ],
    ),
    // Expiries with a fresh proof, at the boundary (see `built_seeds`).
    (
        "enrollment_expiry",
        &[
            "setup",
            "reauthenticated",
            "confirm: setup expired",
            "2fa enabled",
        ],
    ),
    // Written before step-up, kept for what it shows now: its confirmation 608 s
    // after the setup meets a proof past the re-authentication window, refused
    // before the enrollment's expiry is looked at; its login has 2FA off, so no
    // pending login expires. `enrollment_expiry` and `pending_login_expiry` test
    // the expiries.
    ("expiry", &["setup", "proof: reauthentication required"]),
    (
        "happy_path",
        &[
            "2fa enabled",
            "second factor: totp",
            "login: trusted device",
        ],
    ),
    (
        "lockout",
        &[
            "second factor: refused",
            "totp: throttled",
            "second factor: pending login dead",
        ],
    ),
    (
        "password_change_and_devices",
        &[
            "device trusted",
            "password changed",
            "login: second factor required",
        ],
    ),
    (
        "pending_login_expiry",
        &[
            "2fa enabled",
            "login: second factor required",
            "second factor: pending login expired",
            "second factor: totp",
        ],
    ),
    (
        "second_authenticator",
        &[
            "add authenticator",
            "authenticator confirmed",
            "authenticator removed",
        ],
    ),
];

/// Replays every input of `fuzz/corpus/flows/`: the committed seeds, and whatever a
/// local `cargo fuzz run flows corpus/flows` added there. Each must keep every
/// invariant; each named seed must also reach its flows.
#[test]
fn every_seed_replays_and_reaches_its_flows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/flows");
    let mut reached = std::collections::HashMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Shown with the panic of a broken invariant.
        eprintln!("replaying {name}");
        let flows = model::run(&std::fs::read(&path).unwrap());
        reached.insert(name, flows);
    }
    for (name, wanted) in SEEDS {
        let flows = reached
            .get(name)
            .unwrap_or_else(|| panic!("seed {name} is gone"));
        for flow in wanted {
            assert!(
                flows.contains_key(flow),
                "seed {name} no longer reaches {flow:?}: {flows:?}"
            );
        }
    }
}

/// The seeds built from operations: each committed file is exactly the encoding of
/// its operations, one step each (`FLOWS_WRITE_SEEDS=1` writes the files).
fn built_seeds() -> [(&'static str, Vec<Op>); 2] {
    let reauthenticate = Op::Reauthenticate {
        user: 0,
        session: 0,
        right: true,
        factor: None,
    };
    let hold = Op::HoldProof {
        user: 0,
        session: 0,
    };
    let login = Op::Login {
        user: 0,
        right: true,
        carry: Carry::Nothing,
    };
    let totp = |pending| Op::SecondFactor {
        pending,
        factor: Factor::Totp(Totp::Authenticator { index: 0, steps: 0 }),
        trust: false,
    };
    [
        // An enrollment (600 s) confirmed with its own code the second it expires,
        // under a proof re-taken just before (the setup's has closed by then): refused
        // as `setup_expired`. Then a second one confirmed a second before it expires.
        (
            "enrollment_expiry",
            vec![
                Op::Register(0),
                Op::SetupTwoFactor(0),
                Op::Advance(600),
                reauthenticate.clone(),
                hold.clone(),
                Op::ConfirmEnrollment(0, Totp::Enrollment),
                Op::SetupTwoFactor(0),
                Op::Advance(599),
                reauthenticate,
                hold,
                Op::ConfirmEnrollment(0, Totp::Enrollment),
            ],
        ),
        // Pending logins (300 s) given a right, fresh factor the second they expire:
        // a TOTP code, then an unspent backup code. Then one given a TOTP code a
        // second before it expires.
        (
            "pending_login_expiry",
            vec![
                Op::Register(0),
                Op::SetupTwoFactor(0),
                Op::ConfirmEnrollment(0, Totp::Enrollment),
                Op::NextPeriod,
                login.clone(),
                Op::Advance(300),
                totp(0),
                login.clone(),
                Op::Advance(300),
                Op::SecondFactor {
                    pending: 1,
                    factor: Factor::Backup(Backup::Unspent {
                        index: 0,
                        style: Style::AsIssued,
                    }),
                    trust: false,
                },
                login,
                Op::Advance(299),
                totp(2),
            ],
        ),
    ]
}

/// Each seed built from operations is committed as their encoding, and reads as
/// those operations when replayed as one byte stream (no step reads the next one's
/// bytes): the same flows either way.
#[test]
fn built_seeds_are_their_operations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/flows");
    let write = std::env::var_os("FLOWS_WRITE_SEEDS").is_some();
    for (name, ops) in built_seeds() {
        let bytes: Vec<u8> = ops.iter().flat_map(Op::encode).collect();
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(
            committed, bytes,
            "seed {name} is not the encoding of its operations (FLOWS_WRITE_SEEDS=1 rewrites it)"
        );
        assert_eq!(
            model::run(&bytes),
            run(&ops),
            "seed {name} as one byte stream"
        );
    }
}

/// Mostly alice, so that one account goes deep into the flows.
fn user() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 1 => Just(1u8)]
}

/// An index into what the model tracks (taken modulo its count).
fn index() -> impl Strategy<Value = u8> {
    0u8..4
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::AsIssued),
        Just(Style::Lower),
        Just(Style::Hyphens),
        Just(Style::Spaces),
    ]
}

fn totp() -> impl Strategy<Value = Totp> {
    let steps = prop_oneof![3 => Just(0i8), 1 => -4i8..=4];
    prop_oneof![
        6 => (index(), steps).prop_map(|(index, steps)| Totp::Authenticator { index, steps }),
        2 => Just(Totp::LastAccepted),
        1 => any::<u16>().prop_map(Totp::Digits),
        1 => "[0-9a-z -]{0,9}".prop_map(Totp::Text),
        2 => Just(Totp::Enrollment),
    ]
}

fn backup() -> impl Strategy<Value = Backup> {
    prop_oneof![
        4 => (index(), style()).prop_map(|(index, style)| Backup::Unspent { index, style }),
        2 => (index(), style()).prop_map(|(index, style)| Backup::Dead { index, style }),
        1 => "[2-9A-Za-z -]{0,18}".prop_map(Backup::Text),
    ]
}

fn factor() -> impl Strategy<Value = Factor> {
    prop_oneof![2 => totp().prop_map(Factor::Totp), 1 => backup().prop_map(Factor::Backup)]
}

fn carry() -> impl Strategy<Value = Carry> {
    prop_oneof![
        3 => Just(Carry::Nothing),
        1 => index().prop_map(Carry::Device),
        1 => index().prop_map(Carry::KnownBrowser),
        1 => (index(), index()).prop_map(|(device, known)| Carry::Both { device, known }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => user().prop_map(Op::Register).boxed(),
        6 => (user(), prop::bool::weighted(0.85), carry())
            .prop_map(|(user, right, carry)| Op::Login { user, right, carry })
            .boxed(),
        6 => (index(), factor(), any::<bool>())
            .prop_map(|(pending, factor, trust)| Op::SecondFactor { pending, factor, trust })
            .boxed(),
        3 => user().prop_map(Op::SetupTwoFactor).boxed(),
        1 => user().prop_map(Op::AddAuthenticator).boxed(),
        3 => (user(), prop_oneof![3 => Just(Totp::Enrollment), 1 => totp()])
            .prop_map(|(u, t)| Op::ConfirmEnrollment(u, t))
            .boxed(),
        1 => (user(), factor()).prop_map(|(u, f)| Op::DisableTwoFactor(u, f)).boxed(),
        1 => (user(), totp()).prop_map(|(u, t)| Op::RegenerateBackupCodes(u, t)).boxed(),
        1 => (user(), index())
            .prop_map(|(user, index)| Op::RemoveAuthenticator { user, index })
            .boxed(),
        1 => (user(), prop::bool::weighted(0.8))
            .prop_map(|(user, right)| Op::ChangePassword { user, right })
            .boxed(),
        1 => any::<u16>().prop_map(Op::Advance).boxed(),
        3 => Just(Op::NextPeriod).boxed(),
        1 => any::<u8>().prop_map(Op::AdvanceBriefly).boxed(),
        1 => (user(), index())
            .prop_map(|(user, session)| Op::HoldProof { user, session })
            .boxed(),
        1 => any::<u8>().prop_map(Op::PastReauthWindow).boxed(),
        2 => (user(), index(), prop::bool::weighted(0.8), prop::option::of(factor()))
            .prop_map(|(user, session, right, factor)| Op::Reauthenticate {
                user,
                session,
                right,
                factor
            })
            .boxed(),
        1 => (user(), index())
            .prop_map(|(user, session)| Op::Logout { user, session })
            .boxed(),
        1 => (user(), index())
            .prop_map(|(user, session)| Op::ListSessions { user, session })
            .boxed(),
    ]
}

/// A few operations that go together: any one operation, or the steps of turning
/// 2FA on, of a login with a second factor, of guessing a second factor or the
/// current password, of locking a login name, or of adding an authenticator and
/// removing one (each still shrinks on its own).
fn chunk() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        20 => op().prop_map(|op| vec![op]),
        4 => (user(), prop_oneof![3 => Just(Totp::Enrollment), 1 => totp()])
            .prop_map(|(u, t)| vec![Op::SetupTwoFactor(u), Op::ConfirmEnrollment(u, t)]),
        8 => (user(), carry(), any::<u8>(), factor(), any::<bool>()).prop_map(
            |(user, carry, pending, factor, trust)| {
                vec![
                    Op::NextPeriod,
                    Op::Login { user, right: true, carry },
                    Op::SecondFactor { pending, factor, trust },
                ]
            }
        ),
        4 => (user(), prop::collection::vec(any::<u16>(), 4..=8), factor()).prop_map(
            |(u, wrong, then)| {
                let guesses = wrong.into_iter().map(Totp::Digits).map(Factor::Totp);
                guesses.chain([then]).map(|f| Op::DisableTwoFactor(u, f)).collect()
            }
        ),
        4 => (user(), 5usize..=8).prop_map(|(user, n)| {
            let wrong = Op::ChangePassword { user, right: false };
            let right = Op::ChangePassword { user, right: true };
            std::iter::repeat_n(wrong, n).chain([right]).collect()
        }),
        // Wrong passwords on one name from an unknown browser until the default
        // policy locks it (the 10th starts the lockout), then one more login.
        1 => (user(), 10usize..=11, carry()).prop_map(|(user, n, carry)| {
            let wrong = Op::Login { user, right: false, carry: Carry::Nothing };
            let then = Op::Login { user, right: true, carry };
            std::iter::repeat_n(wrong, n).chain([then]).collect()
        }),
        // 2FA on, a second authenticator added, then one of them removed.
        2 => (user(), index()).prop_map(|(user, index)| {
            vec![
                Op::SetupTwoFactor(user),
                Op::ConfirmEnrollment(user, Totp::Enrollment),
                Op::AddAuthenticator(user),
                Op::ConfirmEnrollment(user, Totp::Enrollment),
                Op::RemoveAuthenticator { user, index },
            ]
        }),
    ]
}

/// A sequence: usually both users registered first (shrinking may drop either),
/// then chunks of operations, at most `MAX_OPS` operations after the registrations.
fn sequence() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        prop::collection::vec(chunk(), 1..=MAX_OPS / 2),
    )
        .prop_map(|(alice, bob, chunks)| {
            let registered = [
                alice.then_some(Op::Register(0)),
                bob.then_some(Op::Register(1)),
            ];
            let ops = chunks.into_iter().flatten().take(MAX_OPS);
            registered.into_iter().flatten().chain(ops).collect()
        })
}

fn run(ops: &[Op]) -> Flows {
    let steps: Vec<Vec<u8>> = ops.iter().map(Op::encode).collect();
    model::run_steps(steps.iter().map(Vec::as_slice))
}

#[test]
fn generated_operation_sequences_keep_every_invariant() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let reached = RefCell::new(Flows::new());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&sequence(), |ops| {
        for (flow, n) in run(&ops) {
            *reached.borrow_mut().entry(flow).or_default() += n;
        }
        Ok(())
    });
    let reached = reached.into_inner();
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!(
                "{why}\nminimal failing sequence ({} ops):\n{ops:#?}",
                ops.len()
            )
        }
        Err(e) => panic!("{e}"),
    }
    eprintln!("flows reached by {cases} sequences: {reached:#?}");
    // The generator reaches the deep flows, not only the password step (checked
    // from the default case count up: a smaller run may miss one).
    if cases < CASES {
        return;
    }
    for flow in [
        "login: second factor required",
        "2fa enabled",
        "second factor: totp",
        "second factor: backup code",
        "device trusted",
        "reauthenticated",
        "password changed",
        "totp: throttled",
        "password change: throttled",
        "login: name locked",
        "authenticator removed",
    ] {
        assert!(
            reached.contains_key(flow),
            "{cases} sequences never reached {flow:?}: {reached:?}"
        );
    }
}
