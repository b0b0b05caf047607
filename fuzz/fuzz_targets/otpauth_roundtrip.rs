//! Build → `to_uri` → parse gives back what was built, for arbitrary issuers,
//! accounts, secrets and policies (whatever `OtpAuthUri::new` accepts).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secondfactor::provisioning::OtpAuthUri;
use secondfactor::secret::Secret;
use secondfactor::totp::{Algorithm, TotpPolicy};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    issuer: &'a str,
    account: &'a str,
    secret: &'a [u8],
    algorithm: u8,
    digits: u8,
    period: u16,
}

fuzz_target!(|input: Input<'_>| {
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(input.algorithm % 3)];
    // The URI carries no skew: a parsed policy has the default one.
    let skew = TotpPolicy::default().skew();
    let Ok(policy) = TotpPolicy::new(
        algorithm,
        u32::from(input.digits),
        u64::from(input.period),
        skew,
    ) else {
        return;
    };
    let Ok(secret) = Secret::from_bytes(input.secret) else {
        return;
    };
    let Ok(built) = OtpAuthUri::new(input.issuer, input.account, secret, policy) else {
        return;
    };
    let parsed = OtpAuthUri::parse(&built.to_uri()).expect("a built URI must parse");
    assert_eq!(parsed.issuer(), input.issuer);
    assert_eq!(parsed.account(), input.account);
    assert_eq!(parsed.secret().expose_bytes(), input.secret);
    assert_eq!(parsed.policy(), &policy);
});
