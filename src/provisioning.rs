//! Provisioning: `otpauth://` key URIs and the QR codes that carry them to a phone.
//!
//! Enrolling an authenticator app means handing it the shared secret together with
//! the issuer, the account name and the TOTP parameters. Apps read this as an
//! `otpauth://totp/…` URI in the [Google Authenticator Key URI format], usually
//! scanned from a QR code. [`OtpAuthUri`] builds and parses such URIs; [`QrCode`]
//! renders one as PNG bytes or a `data:` URI (feature `qr-png`, on by default),
//! as SVG, or as text for a terminal.
//!
//! ```
//! use secondfactor::provisioning::{OtpAuthUri, QrCode};
//! use secondfactor::secret::Secret;
//! use secondfactor::totp::TotpPolicy;
//!
//! # fn main() -> secondfactor::Result<()> {
//! let secret = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")?;
//! let uri = OtpAuthUri::new("Example Co", "alice@example.com", secret, TotpPolicy::default())?;
//! assert_eq!(
//!     uri.to_uri().as_str(),
//!     "otpauth://totp/Example%20Co:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
//!      &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30",
//! );
//!
//! let qr = QrCode::new(&uri.to_uri())?;
//! let svg = qr.svg();
//! assert!(svg.starts_with("<svg"));
//!
//! let back = OtpAuthUri::parse(&uri.to_uri())?;
//! assert_eq!(back.account(), "alice@example.com");
//! # Ok(())
//! # }
//! ```
//!
//! # Encoding rules
//!
//! [`OtpAuthUri::to_uri`] writes the label as `percent(issuer) ":" percent(account)`
//! and repeats the issuer in the `issuer` parameter. Everything except the
//! unreserved ASCII characters `A-Z a-z 0-9 - . _ ~` is percent-encoded as UTF-8,
//! in the label and in parameter values alike: a space becomes `%20` (never `+`),
//! `:` becomes `%3A`, `@` becomes `%40`, and so on. The separator between issuer and
//! account is always a literal `:`. All five parameters are always written.
//!
//! # Parsing rules
//!
//! [`OtpAuthUri::parse`] is strict where ambiguity could hurt and lenient where
//! real-world producers differ. Every rejection is an
//! [`Error::InvalidInput`] with field `"otpauth_uri"` and a reason safe to show.
//!
//! * URIs longer than [`MAX_URI_LEN`] bytes are rejected before any other work.
//! * The scheme must be `otpauth` and the type `totp` (both ASCII case-insensitive);
//!   `hotp` is rejected with its own reason. A `#fragment` is rejected.
//! * The label is split at the first literal `:`. When it has none, an encoded
//!   `%3A` separates issuer and account: if an `issuer` parameter is present, the
//!   first `%3A` whose decoded prefix equals it is the separator, otherwise the
//!   first `%3A`. Spaces after the separator are dropped (the format allows them).
//! * If both the label prefix and the `issuer` parameter are present they must
//!   agree; if only one is present it is the issuer; if neither is, the URI is
//!   rejected (an [`OtpAuthUri`] always has an issuer).
//! * Percent-escapes must be well formed and decode to UTF-8.
//! * In parameter values `+` decodes to a space, as in
//!   `application/x-www-form-urlencoded` query strings (some producers, such as Java's
//!   `URLEncoder`, write spaces that way). In the label `+` is a literal plus, since
//!   `alice+tag@example.com` is a common account name. When the label's issuer
//!   prefix equals the `issuer` parameter only after reading its `+` as spaces, the
//!   parameter's spelling wins. This crate itself never writes `+` for a space.
//! * `secret` is required; `algorithm`, `digits` and `period` default to `SHA1`,
//!   `6` and `30`. `algorithm` is matched case-insensitively. Parameter names are
//!   matched ASCII case-insensitively; a parameter given twice is rejected; unknown
//!   parameters (such as `image`) are ignored.
//! * The clock-skew tolerance of a [`TotpPolicy`] is not part of the URI; parsed
//!   policies use [`TotpPolicy::default`]'s skew.
//!
//! # Importing URIs from other producers
//!
//! [`OtpAuthUri::parse`] stays strict for URIs this crate made. URIs stored by
//! another application (pyotp's `provisioning_uri`, otplib's `keyuri`, exports of
//! Google Authenticator, Aegis or FreeOTP) are read with
//! [`OtpAuthUri::parse_lenient`] into an [`ImportedUri`]. It follows the rules above
//! except that:
//!
//! * the issuer is optional (pyotp's `provisioning_uri(name=…)` without
//!   `issuer_name` writes none), an empty one counts as none, and when the label's
//!   prefix and the `issuer` parameter disagree the parameter wins (as Google
//!   Authenticator does);
//! * the account name may be empty;
//! * the secret may be as short as [`Secret::IMPORT_MIN_BITS`] (80 bits) and its
//!   non-zero trailing bits are ignored ([`Secret::from_imported_base32`]); check
//!   [`Secret::is_weak`].
//!
//! Lower-case, space-separated or `=`-padded (also `%3D`-padded) base32 and `+` for
//! a space in query values are accepted by both parsers.
//!
//! [Google Authenticator Key URI format]: https://github.com/google/google-authenticator/wiki/Key-Uri-Format

use crate::secret::Secret;
use crate::totp::{Algorithm, TotpPolicy};
use crate::{Error, Result};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The longest `otpauth://` URI [`OtpAuthUri::parse`] accepts, in bytes.
pub const MAX_URI_LEN: usize = 4096;

/// The longest issuer or account name, in bytes of UTF-8.
pub const MAX_LABEL_PART_LEN: usize = 256;

/// The longest text [`QrCode::new`] accepts, in bytes. (A version 40 QR code at
/// error-correction level M holds at most 2331 bytes; longer text is rejected
/// before the encoder runs.)
pub const MAX_QR_DATA_LEN: usize = 2331;

/// The field name of every [`OtpAuthUri::parse`] error.
const URI_FIELD: &str = "otpauth_uri";

/// Everything but the RFC 3986 unreserved characters gets percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The defaults of the key URI format, which apply when a parameter is absent.
/// These are the format's defaults, not this crate's configurable ones.
const URI_DEFAULT_DIGITS: u32 = 6;
const URI_DEFAULT_PERIOD: u64 = 30;

/// The key URI of one TOTP authenticator: issuer, account name, secret and policy.
///
/// Build one with [`OtpAuthUri::new`] to enroll a user, or read one from an
/// existing `otpauth://` URI with [`OtpAuthUri::parse`]. `Debug` never shows the
/// secret.
pub struct OtpAuthUri {
    issuer: String,
    account: String,
    secret: Secret,
    policy: TotpPolicy,
}

impl fmt::Debug for OtpAuthUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpAuthUri")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret", &"[redacted]")
            .field("algorithm", &self.policy.algorithm().as_str())
            .field("digits", &self.policy.digits())
            .field("period", &self.policy.period())
            .finish()
    }
}

/// What is wrong with an issuer or account name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartProblem {
    Empty,
    TooLong,
    Control,
    Whitespace,
}

impl PartProblem {
    /// The reason for [`OtpAuthUri::new`], whose field already names the part.
    fn reason(self) -> &'static str {
        match self {
            PartProblem::Empty => "must not be empty",
            PartProblem::TooLong => "must be at most 256 bytes",
            PartProblem::Control => "must not contain control characters",
            PartProblem::Whitespace => "must not start or end with whitespace",
        }
    }

    /// The reason for [`OtpAuthUri::parse`], whose field is the whole URI.
    fn uri_reason(self, issuer: bool) -> &'static str {
        match (self, issuer) {
            (PartProblem::Empty, true) => "issuer is empty",
            (PartProblem::TooLong, true) => "issuer is longer than 256 bytes",
            (PartProblem::Control, true) => "issuer contains control characters",
            (PartProblem::Whitespace, true) => "issuer starts or ends with whitespace",
            (PartProblem::Empty, false) => "account name is empty",
            (PartProblem::TooLong, false) => "account name is longer than 256 bytes",
            (PartProblem::Control, false) => "account name contains control characters",
            (PartProblem::Whitespace, false) => "account name starts or ends with whitespace",
        }
    }
}

/// Checks an issuer or account name: 1..=256 bytes, no control characters, no
/// leading or trailing whitespace (which the key URI format cannot carry reliably:
/// spaces after the label's `:` are dropped by readers).
fn check_part(value: &str) -> std::result::Result<(), PartProblem> {
    if value.is_empty() {
        return Err(PartProblem::Empty);
    }
    if value.len() > MAX_LABEL_PART_LEN {
        return Err(PartProblem::TooLong);
    }
    if value.chars().any(char::is_control) {
        return Err(PartProblem::Control);
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(PartProblem::Whitespace);
    }
    Ok(())
}

impl OtpAuthUri {
    /// A key URI for `account` at `issuer`.
    ///
    /// `issuer` and `account` must each be 1 to 256 bytes of UTF-8 without control
    /// characters and without leading or trailing whitespace; otherwise this returns
    /// [`Error::InvalidInput`] with field `"issuer"` or `"account"`. Any other
    /// character, `:` included, is allowed and percent-encoded in the URI.
    pub fn new(issuer: &str, account: &str, secret: Secret, policy: TotpPolicy) -> Result<Self> {
        check_part(issuer).map_err(|p| Error::input("issuer", p.reason()))?;
        check_part(account).map_err(|p| Error::input("account", p.reason()))?;
        Ok(OtpAuthUri {
            issuer: issuer.to_owned(),
            account: account.to_owned(),
            secret,
            policy,
        })
    }

    /// The service the account belongs to, as shown in the authenticator app.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The account name (usually the login name or e-mail address).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The TOTP parameters.
    pub fn policy(&self) -> &TotpPolicy {
        &self.policy
    }

    /// Consumes the URI, keeping only the secret (to seal and store it, say).
    pub fn into_secret(self) -> Secret {
        self.secret
    }

    /// The `otpauth://totp/…` URI, in the Google Authenticator key URI format:
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
    ///
    /// The result holds the secret and is zeroized on drop; it is built in one
    /// allocation so that no partial copy is left behind.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let issuer = utf8_percent_encode(&self.issuer, COMPONENT).to_string();
        let account = utf8_percent_encode(&self.account, COMPONENT).to_string();
        let secret = self.secret.to_base32();
        let algorithm = self.policy.algorithm();
        let algorithm = algorithm.as_str();
        let digits = self.policy.digits().to_string();
        let period = self.policy.period().to_string();

        let pieces: [&str; 14] = [
            "otpauth://totp/",
            &issuer,
            ":",
            &account,
            "?secret=",
            &secret,
            "&issuer=",
            &issuer,
            "&algorithm=",
            algorithm,
            "&digits=",
            &digits,
            "&period=",
            &period,
        ];
        let mut out = Zeroizing::new(String::with_capacity(pieces.iter().map(|p| p.len()).sum()));
        for piece in pieces {
            out.push_str(piece);
        }
        out
    }

    /// Parses an `otpauth://totp/…` URI, following the rules in the
    /// [module documentation](self#parsing-rules).
    ///
    /// Every malformed case is an [`Error::InvalidInput`] with field
    /// `"otpauth_uri"` and a reason that says what is wrong without quoting the
    /// input. The policy's skew is [`TotpPolicy::default`]'s.
    pub fn parse(uri: &str) -> Result<Self> {
        if uri.len() > MAX_URI_LEN {
            return Err(bad("longer than 4096 bytes"));
        }
        let rest = strip_prefix_ignore_case(uri, "otpauth://")
            .ok_or_else(|| bad("not an otpauth:// URI"))?;
        if rest.contains('#') {
            return Err(bad("must not have a #fragment"));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind, label) = path
            .split_once('/')
            .ok_or_else(|| bad("missing label after the OTP type"))?;
        if kind.eq_ignore_ascii_case("hotp") {
            return Err(bad(
                "counter-based (hotp) URIs are not supported; only totp is",
            ));
        }
        if !kind.eq_ignore_ascii_case("totp") {
            return Err(bad("unknown OTP type; only totp is supported"));
        }
        if label.is_empty() {
            return Err(bad("missing label"));
        }

        let params = Params::parse(query)?;

        let issuer_param = params
            .issuer
            .map(|v| decode_component(v, true))
            .transpose()?;
        let (label_issuer, account) = split_label(label, issuer_param.as_deref().map(|s| &**s))?;
        let issuer: Zeroizing<String> = match (label_issuer, issuer_param) {
            (Some(from_label), Some(from_param)) => {
                if *from_label == *from_param || from_label.replace('+', " ") == *from_param {
                    from_param
                } else {
                    return Err(bad("issuer parameter does not match the label's issuer"));
                }
            }
            (Some(from_label), None) => from_label,
            (None, Some(from_param)) => from_param,
            (None, None) => {
                return Err(bad(
                    "missing issuer: neither a label prefix nor an issuer parameter",
                ));
            }
        };
        check_part(&issuer).map_err(|p| bad(p.uri_reason(true)))?;
        check_part(&account).map_err(|p| bad(p.uri_reason(false)))?;

        let secret_raw = params
            .secret
            .ok_or_else(|| bad("missing secret parameter"))?;
        if secret_raw.is_empty() {
            return Err(bad("secret parameter is empty"));
        }
        let secret_text = decode_component(secret_raw, true)?;
        let secret = Secret::from_base32(&secret_text)
            .map_err(|_| bad("secret is not valid base32 of at least 128 bits"))?;

        let policy = parse_policy(&params)?;
        Ok(OtpAuthUri {
            issuer: issuer.to_string(),
            account: account.to_string(),
            secret,
            policy,
        })
    }
}

/// An `otpauth://` URI read from another application by
/// [`OtpAuthUri::parse_lenient`]: the issuer may be missing and the secret may be
/// [weak](Secret::is_weak). `Debug` never shows the secret.
pub struct ImportedUri {
    issuer: Option<String>,
    account: String,
    secret: Secret,
    policy: TotpPolicy,
}

impl fmt::Debug for ImportedUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedUri")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret", &"[redacted]")
            .field("weak", &self.secret.is_weak())
            .field("algorithm", &self.policy.algorithm().as_str())
            .field("digits", &self.policy.digits())
            .field("period", &self.policy.period())
            .finish()
    }
}

impl ImportedUri {
    /// The issuer, when the URI names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account name (possibly empty).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret (80 to 512 bits).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The TOTP parameters (the format's defaults where the URI has none).
    pub fn policy(&self) -> &TotpPolicy {
        &self.policy
    }

    /// Whether the secret is shorter than [`Secret::MIN_BITS`].
    pub fn is_weak(&self) -> bool {
        self.secret.is_weak()
    }

    /// Consumes the URI, keeping only the secret.
    pub fn into_secret(self) -> Secret {
        self.secret
    }
}

impl OtpAuthUri {
    /// Parses an `otpauth://totp/…` URI written by another application (pyotp,
    /// otplib, Google Authenticator, Aegis, FreeOTP), with the relaxed rules of
    /// [Importing URIs from other producers](self#importing-uris-from-other-producers).
    ///
    /// ```
    /// use secondfactor::provisioning::OtpAuthUri;
    /// // pyotp 2.12: pyotp.TOTP(s).provisioning_uri(name="alice@google.com")
    /// let uri = "otpauth://totp/alice%40google.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    /// assert!(OtpAuthUri::parse(uri).is_err()); // no issuer
    /// let imported = OtpAuthUri::parse_lenient(uri)?;
    /// assert_eq!((imported.issuer(), imported.account()), (None, "alice@google.com"));
    /// // The key URI format's own example: an 80-bit secret.
    /// let example = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";
    /// assert!(OtpAuthUri::parse_lenient(example)?.is_weak());
    /// # Ok::<(), secondfactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] with field `"otpauth_uri"`, as for
    /// [`parse`](Self::parse).
    pub fn parse_lenient(uri: &str) -> Result<ImportedUri> {
        if uri.len() > MAX_URI_LEN {
            return Err(bad("longer than 4096 bytes"));
        }
        let rest = strip_prefix_ignore_case(uri, "otpauth://")
            .ok_or_else(|| bad("not an otpauth:// URI"))?;
        if rest.contains('#') {
            return Err(bad("must not have a #fragment"));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (kind, label) = path.split_once('/').unwrap_or((path, ""));
        if kind.eq_ignore_ascii_case("hotp") {
            return Err(bad(
                "counter-based (hotp) URIs are not supported; only totp is",
            ));
        }
        if !kind.eq_ignore_ascii_case("totp") {
            return Err(bad("unknown OTP type; only totp is supported"));
        }
        let params = Params::parse(query)?;
        let issuer_param = params
            .issuer
            .map(|v| decode_component(v, true))
            .transpose()?
            .filter(|v| !v.is_empty());
        // The parameter wins over a disagreeing label prefix.
        let (label_issuer, account) =
            match split_label(label, issuer_param.as_deref().map(|s| &**s)) {
                Ok(split) => split,
                Err(_) if issuer_param.is_some() => split_label(label, None)?,
                Err(e) => return Err(e),
            };
        let issuer = issuer_param.or(label_issuer.filter(|v| !v.is_empty()));
        if let Some(issuer) = &issuer {
            check_part(issuer).map_err(|p| bad(p.uri_reason(true)))?;
        }
        if !account.is_empty() {
            check_part(&account).map_err(|p| bad(p.uri_reason(false)))?;
        }
        let secret_raw = params
            .secret
            .ok_or_else(|| bad("missing secret parameter"))?;
        if secret_raw.is_empty() {
            return Err(bad("secret parameter is empty"));
        }
        let secret_text = decode_component(secret_raw, true)?;
        let secret = Secret::from_imported_base32(&secret_text)
            .map_err(|_| bad("secret is not valid base32 of at least 80 bits"))?;
        let policy = parse_policy(&params)?;
        Ok(ImportedUri {
            issuer: issuer.map(|i| i.to_string()),
            account: account.to_string(),
            secret,
            policy,
        })
    }
}

/// An `otpauth_uri` input error.
fn bad(reason: &'static str) -> Error {
    Error::input(URI_FIELD, reason)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// The raw (still percent-encoded) values of the parameters this module reads.
#[derive(Default)]
struct Params<'a> {
    secret: Option<&'a str>,
    issuer: Option<&'a str>,
    algorithm: Option<&'a str>,
    digits: Option<&'a str>,
    period: Option<&'a str>,
}

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Result<Self> {
        let mut params = Params::default();
        for piece in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            let (slot, duplicate) = if key.eq_ignore_ascii_case("secret") {
                (&mut params.secret, "duplicate secret parameter")
            } else if key.eq_ignore_ascii_case("issuer") {
                (&mut params.issuer, "duplicate issuer parameter")
            } else if key.eq_ignore_ascii_case("algorithm") {
                (&mut params.algorithm, "duplicate algorithm parameter")
            } else if key.eq_ignore_ascii_case("digits") {
                (&mut params.digits, "duplicate digits parameter")
            } else if key.eq_ignore_ascii_case("period") {
                (&mut params.period, "duplicate period parameter")
            } else {
                continue; // unknown parameters (image, counter, …) are ignored
            };
            if slot.replace(value).is_some() {
                return Err(bad(duplicate));
            }
        }
        Ok(params)
    }
}

fn parse_policy(params: &Params<'_>) -> Result<TotpPolicy> {
    let algorithm = match params.algorithm {
        None => Algorithm::Sha1,
        Some(raw) => {
            let mut name = decode_component(raw, true)?;
            name.make_ascii_uppercase();
            name.parse::<Algorithm>()
                .map_err(|_| bad("unsupported algorithm; expected SHA1, SHA256 or SHA512"))?
        }
    };
    let digits = match params.digits {
        None => URI_DEFAULT_DIGITS,
        Some(raw) => decode_component(raw, true)?
            .parse::<u32>()
            .map_err(|_| bad("digits is not a number"))?,
    };
    let period = match params.period {
        None => URI_DEFAULT_PERIOD,
        Some(raw) => decode_component(raw, true)?
            .parse::<u64>()
            .map_err(|_| bad("period is not a number"))?,
    };
    let skew = TotpPolicy::default().skew();
    // Probe each value against the policy's own validation, so the error says which one is off.
    TotpPolicy::new(Algorithm::Sha1, digits, URI_DEFAULT_PERIOD, skew)
        .map_err(|_| bad("unsupported number of digits"))?;
    TotpPolicy::new(Algorithm::Sha1, URI_DEFAULT_DIGITS, period, skew)
        .map_err(|_| bad("unsupported period"))?;
    TotpPolicy::new(algorithm, digits, period, skew)
        .map_err(|_| bad("unsupported digits or period"))
}

/// Splits the (encoded) label into its decoded issuer prefix, if any, and account.
fn split_label(
    label: &str,
    issuer_param: Option<&str>,
) -> Result<(Option<Zeroizing<String>>, Zeroizing<String>)> {
    let (prefix, account_raw) = if let Some((prefix, account)) = label.split_once(':') {
        (Some(decode_component(prefix, false)?), account)
    } else {
        let separators: Vec<usize> = encoded_colons(label).collect();
        match (separators.first(), issuer_param) {
            (None, _) => (None, label),
            (Some(&first), None) => (
                Some(decode_component(&label[..first], false)?),
                &label[first + 3..],
            ),
            (Some(_), Some(param)) => {
                let mut found = None;
                for &at in &separators {
                    let prefix = decode_component(&label[..at], false)?;
                    if *prefix == *param || prefix.replace('+', " ") == *param {
                        found = Some((prefix, &label[at + 3..]));
                        break;
                    }
                }
                let (prefix, account) = found
                    .ok_or_else(|| bad("issuer parameter does not match the label's issuer"))?;
                (Some(prefix), account)
            }
        }
    };
    let account = decode_component(account_raw, false)?;
    let account = Zeroizing::new(account.trim_start_matches(' ').to_owned());
    Ok((prefix, account))
}

/// Byte offsets of every `%3A` (any case) in `text`.
fn encoded_colons(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.as_bytes()
        .windows(3)
        .enumerate()
        .filter(|(_, w)| w[0] == b'%' && w[1] == b'3' && (w[2] == b'A' || w[2] == b'a'))
        .map(|(i, _)| i)
}

/// Decodes percent-escapes (and `+` as a space when `plus_as_space`) strictly:
/// a `%` must be followed by two hex digits, and the result must be UTF-8.
fn decode_component(raw: &str, plus_as_space: bool) -> Result<Zeroizing<String>> {
    let bytes = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex_value(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex_value(*c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(bad("malformed percent-escape")),
                }
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let mut bytes = std::mem::take(&mut *out);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            bytes = e.into_bytes();
            bytes.zeroize();
            Err(bad("percent-escapes do not decode to UTF-8"))
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Light modules around the symbol, as the QR specification requires.
const QUIET_ZONE: usize = 4;

/// PNG pixels per module.
#[cfg(feature = "qr-png")]
const PNG_SCALE: usize = 4;

/// A QR code (error-correction level M), encoded once and rendered on demand.
///
/// The modules encode the text given to [`QrCode::new`] (for provisioning, a URI
/// holding the secret), so they are zeroized on drop and `Debug` shows only the
/// size. Every rendering adds the 4-module light quiet zone.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct QrCode {
    /// Modules per side, without the quiet zone.
    width: usize,
    /// Row-major, `true` = dark.
    modules: Vec<bool>,
}

impl fmt::Debug for QrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrCode")
            .field("width", &self.width)
            .field("modules", &"[redacted]")
            .finish()
    }
}

impl QrCode {
    /// Encodes `data` (an `otpauth://` URI, typically from [`OtpAuthUri::to_uri`])
    /// at error-correction level M, in the smallest QR version that holds it.
    ///
    /// Returns [`Error::InvalidInput`] with field `"qr_data"` when the text is too
    /// long for a QR code (more than [`MAX_QR_DATA_LEN`] bytes, or more than the
    /// encoder can fit).
    ///
    /// The module grid is zeroized on drop; the encoder's own scratch buffers are
    /// outside this crate's control and are only overwritten where reachable.
    pub fn new(data: &str) -> Result<QrCode> {
        if data.len() > MAX_QR_DATA_LEN {
            return Err(Error::input("qr_data", "too long for a QR code"));
        }
        let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)
            .map_err(|_| Error::input("qr_data", "too long for a QR code"))?;
        let width = code.width();
        let mut colors = code.into_colors();
        let modules: Vec<bool> = colors.iter().map(|c| *c == qrcode::Color::Dark).collect();
        // `Color` is not `Zeroize`; overwrite it by hand and keep the writes alive.
        colors.fill(qrcode::Color::Light);
        std::hint::black_box(&colors);
        if modules.len() != width * width {
            return Err(Error::Internal("QR encoder returned a malformed grid"));
        }
        Ok(QrCode { width, modules })
    }

    /// Modules per side, without the quiet zone (21 for version 1, up to 177).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Modules per side including the quiet zone on both sides.
    fn side(&self) -> usize {
        self.width + 2 * QUIET_ZONE
    }

    /// Whether the module at (`x`, `y`), counted from the top left corner of the
    /// quiet zone, is dark. Outside the symbol everything is light.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET_ZONE), y.checked_sub(QUIET_ZONE)) else {
            return false;
        };
        if x >= self.width || y >= self.width {
            return false;
        }
        self.modules
            .get(y * self.width + x)
            .copied()
            .unwrap_or(false)
    }

    /// The code as a PNG: 1-bit grayscale, 4 pixels per module, 4-module quiet
    /// zone, maximum compression. A typical provisioning URI (about 150 bytes) gives
    /// a PNG of about 660 bytes.
    ///
    /// Returns [`Error::Internal`] if the PNG encoder fails (it writes to memory,
    /// so it should not).
    #[cfg(feature = "qr-png")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
    pub fn png(&self) -> Result<Vec<u8>> {
        let side_px = self.side() * PNG_SCALE;
        // One bit per pixel, most significant bit first, 1 = white; rows padded to bytes.
        let stride = side_px.div_ceil(8);
        let mut rows = Zeroizing::new(vec![0u8; stride * side_px]);
        for (y, row) in rows.chunks_exact_mut(stride).enumerate() {
            for x in 0..side_px {
                if !self.is_dark(x / PNG_SCALE, y / PNG_SCALE)
                    && let Some(byte) = row.get_mut(x / 8)
                {
                    *byte |= 0x80 >> (x % 8);
                }
            }
        }
        let side = u32::try_from(side_px).map_err(|_| Error::Internal("QR code too large"))?;
        let failed = |_| Error::Internal("PNG encoding failed");
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::High);
        // Measured: no filter compresses these blocky images best (664 vs 843 bytes with Up).
        encoder.set_filter(png::Filter::NoFilter);
        let mut writer = encoder.write_header().map_err(failed)?;
        writer.write_image_data(&rows).map_err(failed)?;
        writer.finish().map_err(failed)?;
        Ok(out)
    }

    /// The [PNG](Self::png) as a `data:image/png;base64,…` URI, ready for an
    /// `<img src>` attribute.
    #[cfg(feature = "qr-png")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
    pub fn png_data_uri(&self) -> Result<String> {
        use base64::Engine;
        let png = Zeroizing::new(self.png()?);
        let mut out = String::from("data:image/png;base64,");
        base64::engine::general_purpose::STANDARD.encode_string(&*png, &mut out);
        Ok(out)
    }

    /// The code as a standalone SVG document: one unit per module, a 4-module white
    /// quiet zone, black modules drawn as one path. `width`/`height` are set to 4 px
    /// per module; CSS can scale it freely (`shape-rendering="crispEdges"`).
    pub fn svg(&self) -> String {
        let side = self.side();
        let mut path = String::new();
        for y in 0..side {
            let mut x = 0;
            while x < side {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < side && self.is_dark(x, y) {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!("M{start} {y}h{run}v1h-{run}z"));
            }
        }
        let px = side * 4;
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{px}\" height=\"{px}\" \
             viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
             <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>"
        )
    }

    /// The code as text for a terminal: Unicode half blocks (`▀ ▄ █` and space),
    /// two modules per character cell, with the 4-module quiet zone.
    ///
    /// Each line sets black foreground on white background with ANSI SGR
    /// `ESC[30;47m` and resets with `ESC[0m`, so the code is dark on light, as
    /// scanners expect, whatever the terminal's color scheme.
    pub fn terminal(&self) -> String {
        let side = self.side();
        let mut out = String::with_capacity((side + 12) * side.div_ceil(2) * 3);
        for y in (0..side).step_by(2) {
            out.push_str(TERMINAL_DARK_ON_LIGHT);
            for x in 0..side {
                out.push(match (self.is_dark(x, y), self.is_dark(x, y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push_str(TERMINAL_RESET);
            out.push('\n');
        }
        out
    }
}

/// ANSI SGR: black foreground on white background.
const TERMINAL_DARK_ON_LIGHT: &str = "\x1b[30;47m";
/// ANSI SGR: reset attributes.
const TERMINAL_RESET: &str = "\x1b[0m";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// URIs from real producers, with where each came from.
    mod lenient {
        use super::*;

        fn b32(uri: &ImportedUri) -> String {
            uri.secret().to_base32().to_string()
        }

        /// pyotp 2.12.1, `pyotp.TOTP("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")`
        /// `.provisioning_uri(name="alice@google.com")` and the same with
        /// `issuer_name="Secure App"` (run while writing these tests).
        #[test]
        fn pyotp_with_and_without_issuer() {
            let no_issuer =
                "otpauth://totp/alice%40google.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
            assert_eq!(
                parse_reason(no_issuer),
                "missing issuer: neither a label prefix nor an issuer parameter"
            );
            let u = OtpAuthUri::parse_lenient(no_issuer).unwrap();
            assert_eq!(u.issuer(), None);
            assert_eq!(u.account(), "alice@google.com");
            assert_eq!(b32(&u), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
            assert!(!u.is_weak());
            assert_eq!(*u.policy(), TotpPolicy::default());

            let with = "otpauth://totp/Secure%20App:alice%40google.com\
                        ?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Secure%20App";
            let u = OtpAuthUri::parse_lenient(with).unwrap();
            assert_eq!(
                (u.issuer(), u.account()),
                (Some("Secure App"), "alice@google.com")
            );
            // The strict parser reads it the same way.
            assert_eq!(OtpAuthUri::parse(with).unwrap().issuer(), "Secure App");
        }

        /// The Key URI format's example (github.com/google/google-authenticator/wiki/
        /// Key-Uri-Format): 80 bits, refused by `parse`, weak through `parse_lenient`.
        #[test]
        fn key_uri_format_example_is_weak() {
            let uri =
                "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example";
            assert!(OtpAuthUri::parse(uri).is_err());
            let u = OtpAuthUri::parse_lenient(uri).unwrap();
            assert!(u.is_weak());
            assert_eq!(u.secret().bits(), 80);
            assert_eq!(
                (u.issuer(), u.account()),
                (Some("Example"), "alice@google.com")
            );
            let dbg = format!("{u:?}");
            assert!(!dbg.contains("JBSW"), "{dbg}");
        }

        /// otplib 12.0.1 (npm), `authenticator.keyuri("alice@example.com",
        /// "Example Co", "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD")` and
        /// `authenticator.keyuri("bob", "", "JBSWY3DPEHPK3PXP")` (run while writing
        /// these tests; the second really comes out as `bob:bob`).
        #[test]
        fn otplib_keyuri() {
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/Example%20Co:alice%40example.com?secret=KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD\
                 &period=30&digits=6&algorithm=SHA1&issuer=Example%20Co",
            )
            .unwrap();
            assert_eq!(
                (u.issuer(), u.account()),
                (Some("Example Co"), "alice@example.com")
            );
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/bob:bob?secret=JBSWY3DPEHPK3PXP&period=30&digits=6&algorithm=SHA1",
            )
            .unwrap();
            assert_eq!((u.issuer(), u.account()), (Some("bob"), "bob"));
            assert!(u.is_weak());
        }

        /// Google Authenticator's own example for its export format, as decoded by
        /// johncallahan/otpauth_migration (test/otpauth_migration_encode_test.dart):
        /// `+` for the space in the issuer parameter, `%20` in the label.
        #[test]
        fn google_authenticator_plus_in_issuer() {
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/ACME%20Co:john.doe@example.com\
                 ?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME+Co",
            )
            .unwrap();
            assert_eq!(
                (u.issuer(), u.account()),
                (Some("ACME Co"), "john.doe@example.com")
            );
            assert_eq!(b32(&u), "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ");
        }

        /// The shape Aegis writes in its plain-text URI export (parameters in the
        /// order of Aegis's `GoogleAuthInfo.getUri`: period, digits, algorithm,
        /// secret, issuer) and FreeOTP's `Token.toString` (issuer, algorithm, digits,
        /// period), with lower-case and `=`-padded base32 as tutorials write it
        /// (`base64.b32encode(os.urandom(16))`). Shapes from the apps' sources, not
        /// captured from a device.
        #[test]
        fn aegis_and_freeotp_shapes_lowercase_and_padding() {
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/Deno:Mason?period=30&digits=6&algorithm=SHA1\
                 &secret=4SJHB4GSD43FZBAI7C2HLRJGPQ&issuer=Deno",
            )
            .unwrap();
            assert_eq!((u.issuer(), u.account()), (Some("Deno"), "Mason"));
            assert_eq!(u.secret().bits(), 128);
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/Issuu:James?issuer=Issuu&algorithm=SHA256&digits=8&period=30\
                 &secret=yooy7jglc6bkbu6mwqpfumbkrm======",
            )
            .unwrap();
            assert_eq!(u.policy().algorithm(), Algorithm::Sha256);
            assert_eq!(u.policy().digits(), 8);
            // %3D-padded works too.
            let u = OtpAuthUri::parse_lenient(
                "otpauth://totp/x?secret=yooy7jglc6bkbu6mwqpfumbkrm%3D%3D%3D%3D%3D%3D",
            )
            .unwrap();
            assert_eq!(u.issuer(), None);
            assert_eq!(u.secret().bits(), 128);
        }

        #[test]
        fn disagreeing_issuer_takes_the_parameter() {
            let uri = "otpauth://totp/Old%20Name:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=New";
            assert!(OtpAuthUri::parse(uri).is_err());
            let u = OtpAuthUri::parse_lenient(uri).unwrap();
            assert_eq!((u.issuer(), u.account()), (Some("New"), "alice"));
        }

        #[test]
        fn still_refuses_what_cannot_be_used() {
            for uri in [
                "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=0",
                "otpauth://totp/x?secret=JBSWY3DP", // 40 bits
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PX1", // not base32
                "otpauth://totp/x",
                "otpauth://totp/x?secret=",
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=5",
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
                "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP#frag",
                "http://totp/x?secret=JBSWY3DPEHPK3PXP",
                "otpauth://totp/a%ZZ?secret=JBSWY3DPEHPK3PXP",
            ] {
                let r = OtpAuthUri::parse_lenient(uri);
                assert!(
                    matches!(&r, Err(Error::InvalidInput { field, .. }) if *field == "otpauth_uri"),
                    "{uri}: {r:?}"
                );
            }
        }

        proptest! {
            #[test]
            fn lenient_never_panics(input in "otpauth://totp/[ -~]{0,80}") {
                let _ = OtpAuthUri::parse_lenient(&input);
            }

            /// Whatever `parse` accepts, `parse_lenient` reads the same way.
            #[test]
            fn lenient_agrees_with_strict(bytes in prop::collection::vec(any::<u8>(), 16..=64)) {
                let secret = Secret::from_bytes(&bytes).unwrap();
                let made = OtpAuthUri::new("Iss uer", "al:ice", secret, TotpPolicy::default()).unwrap();
                let uri = made.to_uri();
                let u = OtpAuthUri::parse_lenient(&uri).unwrap();
                prop_assert_eq!(u.issuer(), Some("Iss uer"));
                prop_assert_eq!(u.account(), "al:ice");
                prop_assert!(u.secret() == made.secret());
            }
        }
    }

    /// 160-bit secret used in the examples below.
    const B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn secret() -> Secret {
        Secret::from_base32(B32).unwrap()
    }

    fn reason(result: Result<impl fmt::Debug>) -> (&'static str, &'static str) {
        match result.unwrap_err() {
            Error::InvalidInput { field, reason } => (field, reason),
            other => panic!("expected invalid_input, got {other:?}"),
        }
    }

    fn parse_reason(uri: &str) -> &'static str {
        let (field, reason) = reason(OtpAuthUri::parse(uri));
        assert_eq!(field, "otpauth_uri");
        reason
    }

    fn minimal(label: &str, query: &str) -> String {
        format!("otpauth://totp/{label}?secret={B32}{query}")
    }

    /// The example of the Google Authenticator Key URI format
    /// (github.com/google/google-authenticator/wiki/Key-Uri-Format, "Examples"),
    /// with its 80-bit secret doubled to the 128-bit minimum.
    #[test]
    fn builds_the_key_uri_format_example() {
        let uri = OtpAuthUri::new(
            "Example",
            "alice@google.com",
            secret(),
            TotpPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            uri.to_uri().as_str(),
            "otpauth://totp/Example:alice%40google.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
             &issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn percent_encodes_everything_but_unreserved() {
        let policy = TotpPolicy::new(Algorithm::Sha256, 8, 60, 1).unwrap();
        let uri = OtpAuthUri::new("A b:c@d&e/f?g#h=i+j%k", "Zz09-._~ü", secret(), policy).unwrap();
        let enc = "A%20b%3Ac%40d%26e%2Ff%3Fg%23h%3Di%2Bj%25k";
        assert_eq!(
            uri.to_uri().as_str(),
            format!(
                "otpauth://totp/{enc}:Zz09-._~%C3%BC?secret={B32}&issuer={enc}\
                 &algorithm=SHA256&digits=8&period=60"
            )
        );
    }

    #[test]
    fn parses_the_key_uri_format_example_with_defaults() {
        let uri =
            OtpAuthUri::parse(&minimal("Example:alice@google.com", "&issuer=Example")).unwrap();
        assert_eq!(uri.issuer(), "Example");
        assert_eq!(uri.account(), "alice@google.com");
        assert_eq!(&*uri.secret().to_base32(), B32);
        assert_eq!(uri.policy().algorithm().as_str(), "SHA1");
        assert_eq!(uri.policy().digits(), 6);
        assert_eq!(uri.policy().period(), 30);
        assert_eq!(uri.policy().skew(), TotpPolicy::default().skew());
    }

    #[test]
    fn parses_explicit_policy_and_lowercase_secret() {
        let uri = OtpAuthUri::parse(
            "OTPAUTH://TOTP/ACME:bob?secret=jbswy3dpehpk3pxpjbswy3dpehpk3pxp\
             &algorithm=sha512&digits=8&period=60&image=https%3A%2F%2Fx%2Fy.png",
        )
        .unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("ACME", "bob"));
        assert_eq!(&*uri.secret().to_base32(), B32);
        assert_eq!(uri.policy().algorithm().as_str(), "SHA512");
        assert_eq!((uri.policy().digits(), uri.policy().period()), (8, 60));
    }

    #[test]
    fn label_separator_forms() {
        // Encoded separator, spaces after it (allowed by the format), issuer only in the label.
        let uri = OtpAuthUri::parse(&minimal("Big%20Corp%3A%20%20alice", "")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("Big Corp", "alice"));
        // Literal separator followed by a space.
        let uri = OtpAuthUri::parse(&minimal("Big%20Corp:%20alice", "")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("Big Corp", "alice"));
        // No prefix: the issuer comes from the parameter.
        let uri = OtpAuthUri::parse(&minimal("alice%40example.com", "&issuer=Big%20Corp")).unwrap();
        assert_eq!(
            (uri.issuer(), uri.account()),
            ("Big Corp", "alice@example.com")
        );
        // An issuer containing an encoded colon, separated by an encoded colon: the
        // issuer parameter picks the right %3A.
        let uri = OtpAuthUri::parse(&minimal("A%3AB%3Acarol", "&issuer=A%3AB")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("A:B", "carol"));
        // Without the parameter the first %3A separates.
        let uri = OtpAuthUri::parse(&minimal("A%3AB%3Acarol", "")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("A", "B:carol"));
        // Literal ':' wins over encoded ones.
        let uri = OtpAuthUri::parse(&minimal("A%3AB:carol%3Ax", "&issuer=A%3AB")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("A:B", "carol:x"));
    }

    /// Decision: `+` is a space in parameter values (form encoding) and a literal
    /// plus in the label.
    #[test]
    fn plus_is_a_space_in_values_and_a_plus_in_the_label() {
        let uri = OtpAuthUri::parse(&minimal("alice+tag@example.com", "&issuer=Big+Corp")).unwrap();
        assert_eq!(
            (uri.issuer(), uri.account()),
            ("Big Corp", "alice+tag@example.com")
        );
        // A producer that wrote '+' for spaces everywhere (Java URLEncoder).
        let uri = OtpAuthUri::parse(&minimal("Big+Corp:bob", "&issuer=Big+Corp")).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("Big Corp", "bob"));
        // In the label alone, '+' stays literal.
        let uri = OtpAuthUri::parse(&minimal("C%2B%2B+Shop:bob", "")).unwrap();
        assert_eq!(uri.issuer(), "C+++Shop");
        // And this crate writes %2B and %20, so both survive a round trip.
        let made = OtpAuthUri::new("C++ Shop", "a+b c", secret(), TotpPolicy::default()).unwrap();
        let back = OtpAuthUri::parse(&made.to_uri()).unwrap();
        assert_eq!((back.issuer(), back.account()), ("C++ Shop", "a+b c"));
    }

    #[test]
    fn rejects_each_malformed_case_with_a_clear_reason() {
        let cases: &[(&str, &str)] = &[
            (
                "https://example.com/totp/A:b?secret=X",
                "not an otpauth:// URI",
            ),
            ("otpauth:/totp/A:b", "not an otpauth:// URI"),
            ("otpauth://totp", "missing label after the OTP type"),
            ("otpauth://totp/?secret=X", "missing label"),
            (
                "otpauth://hotp/A:b?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&counter=0",
                "counter-based (hotp) URIs are not supported; only totp is",
            ),
            (
                "otpauth://motp/A:b?secret=X",
                "unknown OTP type; only totp is supported",
            ),
            ("otpauth://totp/A:b?issuer=A", "missing secret parameter"),
            (
                "otpauth://totp/A:b?secret=&issuer=A",
                "secret parameter is empty",
            ),
            (
                "otpauth://totp/A:b?secret=JBSWY3DP1",
                "secret is not valid base32 of at least 128 bits",
            ),
            // 80 bits: valid base32 but too short.
            (
                "otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP",
                "secret is not valid base32 of at least 128 bits",
            ),
            (
                "otpauth://totp/A:b?secret=X#frag",
                "must not have a #fragment",
            ),
            (
                "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                "missing issuer: neither a label prefix nor an issuer parameter",
            ),
        ];
        for (uri, expected) in cases {
            assert_eq!(parse_reason(uri), *expected, "{uri}");
        }
        let with_query: &[(&str, &str, &str)] = &[
            ("A:b", "&secret=AAAA", "duplicate secret parameter"),
            ("A:b", "&issuer=A&ISSUER=A", "duplicate issuer parameter"),
            (
                "A:b",
                "&algorithm=SHA1&algorithm=SHA1",
                "duplicate algorithm parameter",
            ),
            ("A:b", "&digits=6&digits=6", "duplicate digits parameter"),
            ("A:b", "&period=30&period=30", "duplicate period parameter"),
            (
                "A:b",
                "&issuer=B",
                "issuer parameter does not match the label's issuer",
            ),
            (
                "A%3Ab",
                "&issuer=B",
                "issuer parameter does not match the label's issuer",
            ),
            (
                "A:b",
                "&algorithm=MD5",
                "unsupported algorithm; expected SHA1, SHA256 or SHA512",
            ),
            ("A:b", "&digits=six", "digits is not a number"),
            ("A:b", "&digits=-6", "digits is not a number"),
            ("A:b", "&digits=4", "unsupported number of digits"),
            ("A:b", "&digits=9", "unsupported number of digits"),
            ("A:b", "&period=0", "unsupported period"),
            (
                "A:b",
                "&period=99999999999999999999999",
                "period is not a number",
            ),
            ("A:b", "&period=3601", "unsupported period"),
            ("A%zz:b", "", "malformed percent-escape"),
            ("A:b%4", "", "malformed percent-escape"),
            ("A:b", "&issuer=%", "malformed percent-escape"),
            ("A%FF:b", "", "percent-escapes do not decode to UTF-8"),
            ("A:b%C3", "", "percent-escapes do not decode to UTF-8"),
            (":b", "", "issuer is empty"),
            ("A:", "", "account name is empty"),
            ("A:%20%20", "", "account name is empty"),
            ("A%0A:b", "", "issuer contains control characters"),
            ("A:b%00", "", "account name contains control characters"),
            ("A%20:b", "", "issuer starts or ends with whitespace"),
            ("A:b%20", "", "account name starts or ends with whitespace"),
        ];
        for (label, query, expected) in with_query {
            let uri = minimal(label, query);
            assert_eq!(parse_reason(&uri), *expected, "{uri}");
        }
        let long_issuer = "x".repeat(MAX_LABEL_PART_LEN + 1);
        assert_eq!(
            parse_reason(&minimal(&format!("{long_issuer}:b"), "")),
            "issuer is longer than 256 bytes"
        );
        assert_eq!(
            parse_reason(&minimal(&format!("A:{long_issuer}"), "")),
            "account name is longer than 256 bytes"
        );
    }

    #[test]
    fn length_is_bounded_before_parsing() {
        // A valid URI padded with an ignored parameter: accepted up to the bound...
        let base = minimal("A:b", "&x=");
        let at_bound = format!("{base}{}", "y".repeat(MAX_URI_LEN - base.len()));
        assert_eq!(at_bound.len(), MAX_URI_LEN);
        assert!(OtpAuthUri::parse(&at_bound).is_ok());
        // ...and rejected one byte past it, whatever it contains.
        let over = format!("{at_bound}y");
        assert_eq!(parse_reason(&over), "longer than 4096 bytes");
        assert_eq!(
            parse_reason(&"%".repeat(MAX_URI_LEN + 1)),
            "longer than 4096 bytes"
        );
    }

    #[test]
    fn unknown_and_empty_parameters_are_ignored() {
        let uri = OtpAuthUri::parse(&minimal("A:b", "&&counter=5&image&foo=%zz")).unwrap();
        assert_eq!(uri.account(), "b");
    }

    #[test]
    fn new_validates_issuer_and_account() {
        let ok = "x".repeat(MAX_LABEL_PART_LEN);
        assert!(OtpAuthUri::new(&ok, &ok, secret(), TotpPolicy::default()).is_ok());
        let long = "x".repeat(MAX_LABEL_PART_LEN + 1);
        let cases: &[(&str, &str, (&str, &str))] = &[
            ("", "a", ("issuer", "must not be empty")),
            ("I", "", ("account", "must not be empty")),
            (&long, "a", ("issuer", "must be at most 256 bytes")),
            ("I", &long, ("account", "must be at most 256 bytes")),
            (
                "I\n",
                "a",
                ("issuer", "must not contain control characters"),
            ),
            (
                "I",
                "a\u{7f}",
                ("account", "must not contain control characters"),
            ),
            (
                "I",
                "a\u{85}b",
                ("account", "must not contain control characters"),
            ),
            (
                " I",
                "a",
                ("issuer", "must not start or end with whitespace"),
            ),
            (
                "I",
                "a\u{a0}",
                ("account", "must not start or end with whitespace"),
            ),
        ];
        for (issuer, account, expected) in cases {
            let got = reason(OtpAuthUri::new(
                issuer,
                account,
                secret(),
                TotpPolicy::default(),
            ));
            assert_eq!(got, *expected, "{issuer:?} {account:?}");
        }
        // A multi-byte character counts by bytes: 128 × 'ü' = 256 bytes is fine, 129 is not.
        assert!(OtpAuthUri::new(&"ü".repeat(128), "a", secret(), TotpPolicy::default()).is_ok());
        assert!(OtpAuthUri::new(&"ü".repeat(129), "a", secret(), TotpPolicy::default()).is_err());
    }

    #[test]
    fn accessors_and_into_secret() {
        let policy = TotpPolicy::new(Algorithm::Sha256, 7, 45, 2).unwrap();
        let uri = OtpAuthUri::new("I", "a", secret(), policy).unwrap();
        assert_eq!((uri.issuer(), uri.account()), ("I", "a"));
        assert_eq!(uri.policy().skew(), 2);
        assert_eq!(uri.secret().expose_bytes(), secret().expose_bytes());
        assert_eq!(uri.into_secret().expose_bytes(), secret().expose_bytes());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let uri = OtpAuthUri::new("Example", "alice", secret(), TotpPolicy::default()).unwrap();
        let debug = format!("{uri:?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(
            debug.contains("Example") && debug.contains("alice"),
            "{debug}"
        );
        assert!(
            !debug.contains(B32) && !debug.contains("JBSWY3DP"),
            "{debug}"
        );
        assert!(!debug.to_lowercase().contains("jbswy3dp"), "{debug}");
        let bytes = format!("{:?}", secret().expose_bytes());
        assert!(!debug.contains(&bytes[1..bytes.len() - 1]), "{debug}");
    }

    /// Issuer/account strings mixing the characters that need escaping with
    /// non-ASCII text, within the limits `new` enforces.
    fn part() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            " ",
            ":",
            "@",
            "&",
            "/",
            "%",
            "+",
            "?",
            "#",
            "=",
            "%3A",
            "%20",
            "a",
            "Z",
            "0",
            "-",
            ".",
            "_",
            "~",
            "ä",
            "ü",
            "用户",
            "Bäckerei Müller",
            "用户@example.com",
            "😀",
            "é",
        ]);
        prop::collection::vec(pieces, 1..20)
            .prop_map(|v| v.concat())
            .prop_filter("valid part", |s| check_part(s).is_ok())
    }

    proptest! {
        #[test]
        fn parse_inverts_to_uri(
            issuer in part(),
            account in part(),
            secret_bytes in prop::collection::vec(any::<u8>(), 16..=64),
            algorithm_name in prop::sample::select(vec!["SHA1", "SHA256", "SHA512"]),
            digits in 6u32..=8,
            period in 1u64..=3600,
        ) {
            let secret = Secret::from_base32(&data_encoding::BASE32_NOPAD.encode(&secret_bytes)).unwrap();
            let algorithm: Algorithm = algorithm_name.parse().unwrap();
            let policy = TotpPolicy::new(algorithm, digits, period, TotpPolicy::default().skew()).unwrap();
            let original = OtpAuthUri::new(&issuer, &account, secret, policy).unwrap();
            let text = original.to_uri();
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(text.matches(':').count(), 2, "scheme and label separator only");
            let parsed = OtpAuthUri::parse(&text).unwrap();
            prop_assert_eq!(parsed.issuer(), issuer.as_str());
            prop_assert_eq!(parsed.account(), account.as_str());
            prop_assert_eq!(parsed.secret().expose_bytes(), &secret_bytes[..]);
            prop_assert_eq!(parsed.policy().algorithm().as_str(), algorithm_name);
            prop_assert_eq!(parsed.policy().digits(), digits);
            prop_assert_eq!(parsed.policy().period(), period);
            prop_assert_eq!(parsed.to_uri(), text);
        }

        #[test]
        fn parse_never_panics(input in "otpauth://(totp|hotp)/[ -~]{0,80}") {
            let _ = OtpAuthUri::parse(&input);
        }

        #[test]
        fn parse_never_panics_on_bytes(input in prop::collection::vec(any::<char>(), 0..120)) {
            let text: String = input.into_iter().collect();
            let _ = OtpAuthUri::parse(&format!("otpauth://totp/{text}"));
        }
    }
}
