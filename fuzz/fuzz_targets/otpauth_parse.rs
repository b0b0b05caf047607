//! `OtpAuthUri::parse` on arbitrary text: never panics, and whatever it accepts
//! survives a trip through `to_uri` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secondfactor::provisioning::OtpAuthUri;

fuzz_target!(|text: &str| {
    let Ok(uri) = OtpAuthUri::parse(text) else {
        return;
    };
    let again = OtpAuthUri::parse(&uri.to_uri()).expect("a rebuilt URI must parse");
    assert_eq!(again.issuer(), uri.issuer());
    assert_eq!(again.account(), uri.account());
    assert!(again.secret() == uri.secret());
    assert_eq!(again.policy(), uri.policy());
});
