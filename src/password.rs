//! Password hashing with Argon2id.
//!
//! A [`PasswordHasher`] turns a password into a [`PasswordHash`] (a PHC string such
//! as `$argon2id$v=19$m=19456,t=2,p=1$…$…`, with a fresh random salt), checks a
//! password against a stored hash, tells when a stored hash was made with other
//! settings and should be replaced ([`PasswordHasher::needs_rehash`]), and spends
//! the same work on logins for unknown users ([`PasswordHasher::dummy_verify`]) so
//! that response times do not reveal which login names exist.
//!
//! ```
//! use secondfactor::password::{PasswordHash, PasswordHasher};
//!
//! // Cheap settings for the example; use `PasswordHasher::default()` in production.
//! let hasher = PasswordHasher::new(256, 1, 1)?;
//! let stored: PasswordHash = hasher.hash("correct horse battery staple")?;
//! assert!(stored.as_str().starts_with("$argon2id$"));
//!
//! // Store `stored.as_str()`; load it back with `from_phc`.
//! let loaded = PasswordHash::from_phc(stored.as_str())?;
//! assert!(hasher.verify("correct horse battery staple", &loaded)?);
//! assert!(!hasher.verify("Tr0ub4dor&3", &loaded)?);
//! assert!(!hasher.needs_rehash(&loaded));
//! # Ok::<(), secondfactor::Error>(())
//! ```
//!
//! Passwords are limited to [`MAX_PASSWORD_BYTES`] bytes; a longer one is rejected
//! as [`Error::InvalidInput`] before any hashing, so a megabyte-long "password"
//! costs the server nothing. Hashes are compared in constant time inside the
//! `argon2` crate.
//!
//! Verification uses the settings recorded in the stored hash, so hashes made with
//! older settings keep working; [`PasswordHasher::needs_rehash`] says when to
//! replace one (after a successful login, while the password is at hand). Stored
//! hashes are trusted input: a hash claiming an enormous memory cost would make
//! verification that expensive.
//!
//! # Imported bcrypt hashes
//!
//! Accounts moved from another application (see
//! [`Service::import_account`](crate::Service::import_account)) may bring a bcrypt
//! hash (`$2a$`, `$2b$` or `$2y$`, as Flask-Bcrypt, Python's `bcrypt`, PHP's
//! `password_hash` and Node's `bcrypt`/`bcryptjs` write them). [`PasswordHash`] holds
//! it ([`PasswordHash::from_bcrypt`]), [`PasswordHasher::verify`] checks it, and
//! [`PasswordHasher::needs_rehash`] is always `true` for it, so the first successful
//! login replaces it with argon2id. The crate never makes a bcrypt hash.
//!
//! bcrypt reads at most [`MAX_BCRYPT_PASSWORD_BYTES`] (72) bytes of a password. Where
//! other libraries silently ignore the rest, `verify` answers `false` for a longer
//! password against a bcrypt hash: a password is either checked whole or refused.
//! (Its owner logs in with the 72-byte prefix they were silently limited to before,
//! or resets the password.)
//!
//! Timing, honestly: verifying against a bcrypt hash costs bcrypt's time (set by
//! its cost factor, ~250 ms at cost 12), not argon2's, and a password over 72 bytes
//! is refused at once. Unknown login names still cost one argon2 verification
//! ([`PasswordHasher::dummy_verify`]), so they stay indistinguishable from
//! argon2 accounts, but someone timing logins can tell an imported account that
//! has not logged in since the import from the others. The difference goes away
//! with that account's first successful login.

use std::fmt;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc;
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, Result};

/// The longest password accepted, in bytes (UTF-8).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest PHC string [`PasswordHash::from_phc`] accepts, in bytes.
pub const MAX_PHC_BYTES: usize = 512;

/// The longest password checked against a bcrypt hash, in bytes: bcrypt reads no
/// more. [`PasswordHasher::verify`] answers `false` for a longer one rather than
/// truncating it.
pub const MAX_BCRYPT_PASSWORD_BYTES: usize = 72;

/// The highest bcrypt cost factor [`PasswordHash::from_bcrypt`] accepts (2²⁰
/// rounds, tens of seconds per verification; real applications use 10 to 14).
pub const MAX_BCRYPT_COST: u32 = 20;

/// The lowest bcrypt cost factor bcrypt defines.
const MIN_BCRYPT_COST: u32 = 4;

/// Salt of the dummy hash: base64 of `secondfactor-dummy`.
const DUMMY_SALT_B64: &str = "c2Vjb25kZmFjdG9yLWR1bW15";
/// Output of the dummy hash: 32 zero bytes, which no password hashes to.
const DUMMY_OUTPUT_B64: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A stored password hash: an Argon2 PHC string, or a bcrypt hash brought along by an
/// import (see the [module documentation](self#imported-bcrypt-hashes)).
///
/// Not a secret in the way a password is, but it allows offline guessing, so
/// `Debug` is redacted and the buffer is zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PasswordHash(String);

/// Whether `s` starts like a bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
fn bcrypt_prefix(s: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p))
}

impl PasswordHash {
    /// The stored string (PHC or bcrypt), for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an imported bcrypt hash, which the next successful login
    /// replaces with argon2id.
    pub fn is_bcrypt(&self) -> bool {
        bcrypt_prefix(&self.0)
    }

    /// Whether this is an argon2id hash (what the crate makes).
    pub fn is_argon2id(&self) -> bool {
        self.0.starts_with("$argon2id$")
    }

    /// Loads a stored hash: a complete Argon2 PHC string (`argon2id`, `argon2i` or
    /// `argon2d`, version 16 or 19, valid parameters, salt and output present), or a
    /// bcrypt hash as [`from_bcrypt`](Self::from_bcrypt) accepts it (stores load
    /// every hash through here, imported ones included).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `password_hash`) for anything else, or for a
    /// string longer than [`MAX_PHC_BYTES`].
    pub fn from_phc(s: &str) -> Result<PasswordHash> {
        const FIELD: &str = "password_hash";
        if s.len() > MAX_PHC_BYTES {
            return Err(Error::input(FIELD, "too long"));
        }
        if bcrypt_prefix(s) {
            return Self::from_bcrypt(s);
        }
        let parsed =
            phc::PasswordHash::new(s).map_err(|_| Error::input(FIELD, "not a PHC string"))?;
        Algorithm::try_from(parsed.algorithm.as_str())
            .map_err(|_| Error::input(FIELD, "not an Argon2 hash"))?;
        let version = parsed
            .version
            .ok_or(Error::input(FIELD, "missing Argon2 version"))?;
        Version::try_from(version).map_err(|_| Error::input(FIELD, "unknown Argon2 version"))?;
        Params::try_from(&parsed).map_err(|_| Error::input(FIELD, "invalid Argon2 parameters"))?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(Error::input(FIELD, "missing salt or hash output"));
        }
        Ok(PasswordHash(s.to_owned()))
    }

    /// Loads a bcrypt hash made by another application: `$2a$`, `$2b$` or `$2y$`,
    /// a two-digit cost from 04 to [`MAX_BCRYPT_COST`], then 22 characters of salt
    /// and 31 of hash in bcrypt's base64 (60 ASCII bytes in all), as Flask-Bcrypt
    /// (`$2b$12$…`), Python's `bcrypt`, PHP (`$2y$`) and Node's `bcrypt` write them.
    /// `$2x$` (hashes of a buggy 2011 implementation) is refused.
    ///
    /// ```
    /// use secondfactor::password::{PasswordHash, PasswordHasher};
    /// // Made by Python's bcrypt 5.0: bcrypt.hashpw(b"hunter2", bcrypt.gensalt(4)).
    /// let legacy = PasswordHash::from_bcrypt(
    ///     "$2b$04$r1eW7Dd9UDf6mG7HkXXxUOA0t0uZjeNSjSb1Bc8TKXeXQVf4ItLJ2",
    /// )?;
    /// let hasher = PasswordHasher::new(256, 1, 1)?;
    /// assert!(hasher.verify("hunter2", &legacy)?);
    /// assert!(hasher.needs_rehash(&legacy)); // replaced by argon2id at the next login
    /// # Ok::<(), secondfactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `password_hash`) for anything else.
    pub fn from_bcrypt(s: &str) -> Result<PasswordHash> {
        const FIELD: &str = "password_hash";
        if s.len() != 60 || !s.is_ascii() || !bcrypt_prefix(s) {
            return Err(Error::input(
                FIELD,
                "not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)",
            ));
        }
        let parts: bcrypt::HashParts = s
            .parse()
            .map_err(|_| Error::input(FIELD, "malformed bcrypt hash"))?;
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&parts.get_cost()) {
            return Err(Error::input(FIELD, "bcrypt cost out of range (04 to 20)"));
        }
        Ok(PasswordHash(s.to_owned()))
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Hashes and verifies passwords with Argon2id (version 19).
///
/// [`Default`] uses the `argon2` crate's defaults, which follow the OWASP
/// recommendation: 19 MiB of memory, 2 passes, 1 lane.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash with this hasher's settings that no password matches, for
    /// [`PasswordHasher::dummy_verify`].
    dummy: PasswordHash,
    /// Argon2 working memory for this hasher's settings, reused from job to job
    /// (shared by clones): a burst of hashes takes memory once per job running at
    /// once, not once per thread that ever ran one, whatever the allocator keeps.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// Most working buffers a hasher keeps for reuse (each is its memory cost, 19 MiB
/// by default); the [`Service`](crate::Service) bounds how many hashes run at once
/// well below this.
const KEPT_BUFFERS: usize = 32;
/// Salt length for new hashes (the argon2 crate's recommendation).
const SALT_BYTES: usize = 16;

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::with_params(Params::DEFAULT)
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("algorithm", &"argon2id")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

fn check_password_len(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::input("password", "longer than 1024 bytes"));
    }
    Ok(())
}

impl PasswordHasher {
    /// A hasher with the given Argon2id costs: memory in KiB, passes, lanes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `argon2` rejects the values (memory below 8 KiB
    /// per lane, zero passes, zero lanes, more than 2²⁴ − 1 lanes).
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|_| Error::InvalidConfig("Argon2 parameters out of range"))?;
        Ok(Self::with_params(params))
    }

    fn with_params(params: Params) -> Self {
        let dummy = PasswordHash(format!(
            "${}$v={}$m={},t={},p={}${}${}",
            ARGON2ID_IDENT,
            u32::from(Version::V0x13),
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            DUMMY_SALT_B64,
            DUMMY_OUTPUT_B64,
        ));
        PasswordHasher {
            params,
            dummy,
            buffers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.params.m_cost()
    }

    /// Number of passes.
    pub fn t_cost(&self) -> u32 {
        self.params.t_cost()
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.params.p_cost()
    }

    /// Runs Argon2 with `params` into `out`, in a working buffer from the pool when
    /// `params` take this hasher's memory (else in a fresh one). The buffer is wiped
    /// before it goes back.
    fn argon2_into(
        &self,
        algorithm: Algorithm,
        version: Version,
        params: Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let blocks = params.block_count();
        let pooled = blocks == self.params.block_count();
        let mut buffer = if pooled {
            self.buffers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        // A stored hash names its own memory cost: allocate fallibly, as argon2 does.
        buffer
            .try_reserve_exact(blocks.saturating_sub(buffer.len()))
            .map_err(|_| Error::Internal("not enough memory for this password hash"))?;
        buffer.resize(blocks, Block::default());
        let result = Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut buffer[..])
            .map_err(|_| Error::Internal("password hashing failed"));
        for block in buffer.iter_mut() {
            *block = Block::default();
        }
        if pooled {
            let mut kept = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() < KEPT_BUFFERS {
                kept.push(buffer);
            }
        }
        result
    }

    /// Hashes `password` with a fresh random salt.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `password`) if it is longer than
    /// [`MAX_PASSWORD_BYTES`], checked before any hashing; [`Error::Internal`] if
    /// the OS random generator or the hash function fails.
    pub fn hash(&self, password: &str) -> Result<PasswordHash> {
        check_password_len(password)?;
        let mut salt = [0u8; SALT_BYTES];
        rand::fill(&mut salt);
        let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
        self.argon2_into(
            Algorithm::Argon2id,
            Version::V0x13,
            self.params.clone(),
            password.as_bytes(),
            &salt,
            &mut out[..],
        )?;
        fn internal<E>(_: E) -> Error {
            Error::Internal("password hash could not be encoded")
        }
        let phc = phc::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: phc::ParamsString::try_from(&self.params).map_err(internal)?,
            salt: Some(phc::Salt::new(&salt).map_err(internal)?),
            hash: Some(phc::Output::new(&out[..]).map_err(internal)?),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    /// Whether `password` matches `hash`, using the settings recorded in `hash`.
    /// The final comparison is constant time.
    ///
    /// An imported bcrypt hash is verified with bcrypt; a password over
    /// [`MAX_BCRYPT_PASSWORD_BYTES`] is then `false` without any hashing (bcrypt
    /// would silently ignore the bytes past 72). See the
    /// [module documentation](self#imported-bcrypt-hashes) for what that costs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `password`) if `password` is longer than
    /// [`MAX_PASSWORD_BYTES`], checked before any hashing; [`Error::Internal`] if
    /// the stored hash cannot be used.
    pub fn verify(&self, password: &str, hash: &PasswordHash) -> Result<bool> {
        check_password_len(password)?;
        if hash.is_bcrypt() {
            if password.len() > MAX_BCRYPT_PASSWORD_BYTES {
                return Ok(false);
            }
            return bcrypt::verify(password.as_bytes(), hash.as_str())
                .map_err(|_| Error::Internal("stored bcrypt hash could not be verified"));
        }
        fn unusable<E>(_: E) -> Error {
            Error::Internal("stored password hash could not be verified")
        }
        let parsed = phc::PasswordHash::new(hash.as_str())
            .map_err(|_| Error::Internal("stored password hash is malformed"))?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(unusable)?;
        let version =
            Version::try_from(parsed.version.unwrap_or(Version::V0x13.into())).map_err(unusable)?;
        let params = Params::try_from(&parsed).map_err(unusable)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(Error::Internal(
                "stored password hash has no salt or output",
            ));
        };
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        self.argon2_into(
            algorithm,
            version,
            params,
            password.as_bytes(),
            salt,
            &mut out[..],
        )?;
        Ok(out[..].ct_eq(expected.as_bytes()).into())
    }

    /// Whether `hash` was made with another algorithm, version or settings than
    /// this hasher's, and should be replaced by a fresh [`hash`](Self::hash) of the
    /// password (after a successful [`verify`](Self::verify)). A hash that cannot be
    /// parsed also needs rehashing, and so does every imported bcrypt hash.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        if hash.is_bcrypt() {
            return true;
        }
        let Ok(parsed) = phc::PasswordHash::new(hash.as_str()) else {
            return true;
        };
        if parsed.algorithm != ARGON2ID_IDENT || parsed.version != Some(Version::V0x13.into()) {
            return true;
        }
        let Ok(theirs) = Params::try_from(&parsed) else {
            return true;
        };
        let ours = &self.params;
        theirs.m_cost() != ours.m_cost()
            || theirs.t_cost() != ours.t_cost()
            || theirs.p_cost() != ours.p_cost()
            || theirs.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                != ours.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
            || !theirs.keyid().is_empty()
            || !theirs.data().is_empty()
    }

    /// Spends the work of one [`verify`](Self::verify) and discards the result.
    ///
    /// Call it when the login name is unknown, so that a wrong name and a wrong
    /// password take the same time. It verifies `password` against a built-in
    /// hash that has this hasher's settings and that no password matches. Like
    /// `verify`, it returns at once for a password over [`MAX_PASSWORD_BYTES`].
    pub fn dummy_verify(&self, password: &str) {
        let _ = self.verify(password, &self.dummy);
    }

    /// A hash with this hasher's settings that no password matches: the password of
    /// an account whose import is not complete yet.
    pub(crate) fn unusable_hash(&self) -> &PasswordHash {
        &self.dummy
    }

    #[cfg(test)]
    fn dummy_hash(&self) -> &PasswordHash {
        &self.dummy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher as _;
    use std::time::{Duration, Instant};

    #[test]
    fn hashes_interoperate_with_the_argon2_crate_both_ways() {
        use argon2::PasswordVerifier as _;
        let h = cheap();
        let ours = h.hash("correct horse").unwrap();
        let parsed = phc::PasswordHash::new(ours.as_str()).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, h.params.clone());
        assert!(theirs.verify_password(b"correct horse", &parsed).is_ok());
        assert!(theirs.verify_password(b"wrong horse", &parsed).is_err());
        let made_by_them = theirs.hash_password(b"battery staple").unwrap().to_string();
        let made_by_them = PasswordHash::from_phc(&made_by_them).unwrap();
        assert!(h.verify("battery staple", &made_by_them).unwrap());
        assert!(!h.verify("battery stapler", &made_by_them).unwrap());
        assert!(!h.needs_rehash(&ours));
    }

    #[test]
    fn working_memory_is_reused_and_wiped() {
        let h = cheap();
        for i in 0..5 {
            let hash = h.hash(&format!("password {i}")).unwrap();
            assert!(h.verify(&format!("password {i}"), &hash).unwrap());
        }
        let kept = h.buffers.lock().unwrap();
        assert_eq!(kept.len(), 1, "one job at a time needs one buffer");
        assert!(
            kept[0].iter().all(|b| b.as_ref().iter().all(|w| *w == 0)),
            "a kept buffer holds nothing of the last password"
        );
        // Clones share the pool.
        drop(kept);
        let c = h.clone();
        c.hash("another one").unwrap();
        assert_eq!(h.buffers.lock().unwrap().len(), 1);
    }

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(256, 1, 1).unwrap()
    }

    fn is_invalid_input(r: &Result<impl fmt::Debug>, field: &str) -> bool {
        matches!(r, Err(Error::InvalidInput { field: f, .. }) if *f == field)
    }

    #[test]
    fn hash_verify_round_trip() {
        let h = cheap();
        let stored = h.hash("hunter2").unwrap();
        assert!(h.verify("hunter2", &stored).unwrap());
        let loaded = PasswordHash::from_phc(stored.as_str()).unwrap();
        assert!(h.verify("hunter2", &loaded).unwrap());
        assert!(h.verify("", &h.hash("").unwrap()).unwrap());
        assert!(
            h.verify("pässwörd ✓", &h.hash("pässwörd ✓").unwrap())
                .unwrap()
        );
    }

    #[test]
    fn wrong_password_is_false() {
        let h = cheap();
        let stored = h.hash("hunter2").unwrap();
        assert!(!h.verify("hunter3", &stored).unwrap());
        assert!(!h.verify("Hunter2", &stored).unwrap());
        assert!(!h.verify("", &stored).unwrap());
    }

    #[test]
    fn phc_string_is_argon2id_v19_with_our_params_and_random_salt() {
        let h = cheap();
        let a = h.hash("same").unwrap();
        let b = h.hash("same").unwrap();
        assert!(
            a.as_str().starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{}",
            a.as_str()
        );
        assert_ne!(a.as_str(), b.as_str(), "salt must be random");
    }

    #[test]
    fn default_hasher_uses_argon2_defaults() {
        let h = PasswordHasher::default();
        assert_eq!((h.m_cost_kib(), h.t_cost(), h.p_cost()), (19 * 1024, 2, 1));
        let stored = h.hash("correct horse").unwrap();
        assert!(
            stored
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            stored.as_str()
        );
        assert!(h.verify("correct horse", &stored).unwrap());
        assert!(!h.verify("correct horsf", &stored).unwrap());
        assert!(!h.needs_rehash(&stored));
    }

    #[test]
    fn needs_rehash_tracks_settings() {
        let old = cheap();
        let stored = old.hash("pw").unwrap();
        assert!(!old.needs_rehash(&stored));
        assert!(!cheap().needs_rehash(&stored));
        assert!(
            PasswordHasher::new(512, 1, 1)
                .unwrap()
                .needs_rehash(&stored)
        );
        assert!(
            PasswordHasher::new(256, 2, 1)
                .unwrap()
                .needs_rehash(&stored)
        );
        assert!(
            PasswordHasher::new(256, 1, 2)
                .unwrap()
                .needs_rehash(&stored)
        );
        assert!(PasswordHasher::default().needs_rehash(&stored));
        // Other variant, same costs: verifies, but should be replaced.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        let argon2i = PasswordHash::from_phc(&argon2i).unwrap();
        assert!(old.verify("pw", &argon2i).unwrap());
        assert!(old.needs_rehash(&argon2i));
        // Old version.
        let v16 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x10,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        let v16 = PasswordHash::from_phc(&v16).unwrap();
        assert!(old.verify("pw", &v16).unwrap());
        assert!(old.needs_rehash(&v16));
    }

    #[test]
    fn invalid_params_are_invalid_config() {
        for (m, t, p) in [(0, 1, 1), (7, 1, 1), (256, 0, 1), (256, 1, 0), (8, 1, 2)] {
            match PasswordHasher::new(m, t, p) {
                Err(e) => assert_eq!(e.code(), "invalid_config", "{m},{t},{p}"),
                Ok(h) => panic!("accepted {h:?}"),
            }
        }
        assert!(PasswordHasher::new(8, 1, 1).is_ok());
    }

    #[test]
    fn password_length_is_bounded_in_bytes() {
        let h = cheap();
        let max = "a".repeat(MAX_PASSWORD_BYTES);
        let stored = h.hash(&max).unwrap();
        assert!(h.verify(&max, &stored).unwrap());
        let over = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let r = h.hash(&over);
        assert!(is_invalid_input(&r, "password"), "{r:?}");
        assert_eq!(r.unwrap_err().code(), "invalid_input");
        assert!(is_invalid_input(&h.verify(&over, &stored), "password"));
        // Bytes, not characters: 512 × 'é' is 1024 bytes, 513 × is 1026.
        assert!(h.hash(&"é".repeat(512)).is_ok());
        assert!(is_invalid_input(&h.hash(&"é".repeat(513)), "password"));
    }

    /// Over-long passwords are refused before any Argon2 work: with settings
    /// that take seconds per hash (256 MiB, 8 passes), refusal is immediate.
    #[test]
    fn over_long_password_is_refused_before_hashing() {
        let over = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let slow = PasswordHasher::new(256 * 1024, 8, 1).unwrap();
        // A stored hash with the same slow settings (made by hand, no work).
        let stored = PasswordHash::from_phc(slow.dummy_hash().as_str()).unwrap();
        let start = Instant::now();
        assert!(is_invalid_input(&slow.hash(&over), "password"));
        assert!(is_invalid_input(&slow.verify(&over, &stored), "password"));
        slow.dummy_verify(&over);
        let took = start.elapsed();
        assert!(took < Duration::from_millis(100), "took {took:?}");
    }

    #[test]
    fn dummy_hash_has_this_hashers_settings_and_matches_nothing() {
        for h in [cheap(), PasswordHasher::new(1024, 3, 2).unwrap()] {
            let dummy = h.dummy_hash();
            let parsed = phc::PasswordHash::new(dummy.as_str()).unwrap();
            assert_eq!(parsed.algorithm, ARGON2ID_IDENT);
            assert_eq!(parsed.version, Some(0x13));
            let params = Params::try_from(&parsed).unwrap();
            assert_eq!(
                (params.m_cost(), params.t_cost(), params.p_cost()),
                (h.m_cost_kib(), h.t_cost(), h.p_cost())
            );
            assert!(!h.needs_rehash(dummy));
            assert!(PasswordHash::from_phc(dummy.as_str()).is_ok());
            // Verifying against it does real work and fails (an error would mean
            // dummy_verify returned early without hashing).
            assert!(!h.verify("", dummy).unwrap());
            assert!(!h.verify("password", dummy).unwrap());
        }
        let default = PasswordHasher::default();
        let params =
            Params::try_from(&phc::PasswordHash::new(default.dummy_hash().as_str()).unwrap())
                .unwrap();
        assert_eq!(params.m_cost(), Params::DEFAULT_M_COST);
        assert_eq!(params.t_cost(), Params::DEFAULT_T_COST);
    }

    /// `dummy_verify` costs about as much as a real `verify` (same Argon2 work).
    /// Runs are interleaved and the fastest of each kind compared, with a wide
    /// margin (10×) for noisy machines: skipping the work would be ~10⁵× faster.
    #[test]
    fn dummy_verify_costs_the_same_as_verify() {
        let h = PasswordHasher::new(8 * 1024, 2, 1).unwrap();
        let stored = h.hash("secret").unwrap();
        let time = |f: &dyn Fn()| {
            let s = Instant::now();
            f();
            s.elapsed()
        };
        let (mut real, mut dummy) = (Duration::MAX, Duration::MAX);
        for _ in 0..7 {
            real = real.min(time(&|| {
                let _ = h.verify("wrong", &stored);
            }));
            dummy = dummy.min(time(&|| h.dummy_verify("wrong")));
        }
        assert!(dummy * 10 > real, "dummy {dummy:?} vs real {real:?}");
        assert!(real * 10 > dummy, "dummy {dummy:?} vs real {real:?}");
    }

    #[test]
    fn from_phc_rejects_garbage() {
        let good = cheap().hash("pw").unwrap();
        let g = good.as_str();
        let (head, _) = g.rsplit_once('$').unwrap();
        // bcrypt-looking but malformed: 2x, short, cost out of range, bad alphabet.
        let bcrypt_2x = "$2x$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let bcrypt_short = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMU";
        let bcrypt_cost = "$2b$25$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let bcrypt_cost3 = "$2b$03$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let bcrypt_alpha = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWM!W";
        let scrypt = "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$dGVzdGluZ3Rlc3Rpbmd0ZXN0aW5ndGVzdGluZw";
        let no_version = g.replacen("$v=19", "", 1);
        let too_long = format!("{g}{}", "A".repeat(MAX_PHC_BYTES));
        for bad in [
            "",
            "hunter2",
            "$",
            "$argon2id",
            head,
            bcrypt_2x,
            bcrypt_short,
            bcrypt_cost,
            bcrypt_cost3,
            bcrypt_alpha,
            scrypt,
            &no_version,
            &g.replacen("v=19", "v=42", 1),
            &g.replacen("m=256", "m=1", 1),
            &g.replacen("t=1", "t=0", 1),
            &g.replacen("m=256", "q=256", 1),
            &g.replacen("$argon2id$", "$argon2x$", 1),
            &format!("{g}$extra"),
            &too_long,
            "$argon2id$v=19$m=256,t=1,p=1$!!!!$AAAA",
        ] {
            let r = PasswordHash::from_phc(bad);
            assert!(is_invalid_input(&r, "password_hash"), "{bad:?}: {r:?}");
        }
        assert!(PasswordHash::from_phc(g).is_ok());
    }

    /// Made by Python's `bcrypt` 5.0.0 (`bcrypt.hashpw(pw, bcrypt.gensalt(4))`, and
    /// `prefix=b"2a"` for the `$2a$` one).
    const PY_HUNTER2_2B: &str = "$2b$04$r1eW7Dd9UDf6mG7HkXXxUOA0t0uZjeNSjSb1Bc8TKXeXQVf4ItLJ2";
    const PY_HUNTER2_2A: &str = "$2a$04$akxp/iZZB3IoOYWDIdUvY.pphv.9szrVIWqQ06mIieTYTe5HyKH2a";
    /// `bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4))`.
    const PY_72_AS: &str = "$2b$04$B2xfeTM.eDatY/2601nNKO8bs0rb8xw5P1dvzaHptZpz0GJ/GM1eW";

    #[test]
    fn bcrypt_hashes_from_python_verify_and_need_rehash() {
        let h = cheap();
        for s in [PY_HUNTER2_2B, PY_HUNTER2_2A] {
            let stored = PasswordHash::from_bcrypt(s).unwrap();
            assert!(stored.is_bcrypt() && !stored.is_argon2id());
            assert!(h.verify("hunter2", &stored).unwrap(), "{s}");
            assert!(!h.verify("hunter3", &stored).unwrap(), "{s}");
            assert!(!h.verify("", &stored).unwrap(), "{s}");
            assert!(h.needs_rehash(&stored));
            // Stores load every hash through from_phc.
            assert!(PasswordHash::from_phc(s).unwrap().is_bcrypt());
        }
        // PHP writes $2y$; the algorithm is the same as $2b$.
        let y = PY_HUNTER2_2B.replacen("$2b$", "$2y$", 1);
        assert!(
            h.verify("hunter2", &PasswordHash::from_bcrypt(&y).unwrap())
                .unwrap()
        );
        // Argon2 hashes are not bcrypt.
        let a = h.hash("pw").unwrap();
        assert!(!a.is_bcrypt() && a.is_argon2id());
        assert!(PasswordHash::from_bcrypt(a.as_str()).is_err());
    }

    #[test]
    fn bcrypt_refuses_rather_than_truncates_past_72_bytes() {
        let h = cheap();
        let stored = PasswordHash::from_bcrypt(PY_72_AS).unwrap();
        let exactly = "a".repeat(MAX_BCRYPT_PASSWORD_BYTES);
        assert!(h.verify(&exactly, &stored).unwrap());
        // bcrypt itself would accept these (it reads 72 bytes); we refuse them.
        assert!(!h.verify(&format!("{exactly}a"), &stored).unwrap());
        assert!(!h.verify(&format!("{exactly}zzzz"), &stored).unwrap());
        assert!(!h.verify(&"a".repeat(73), &stored).unwrap());
        // Over the general limit it is still an input error.
        let over = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(is_invalid_input(&h.verify(&over, &stored), "password"));
    }

    #[test]
    fn debug_is_redacted_or_params_only() {
        let h = cheap();
        let stored = h.hash("hunter2").unwrap();
        let salt_and_hash: Vec<&str> = stored.as_str().rsplitn(3, '$').take(2).collect();
        let dbg = format!("{stored:?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(!dbg.contains("argon2"), "{dbg}");
        for part in &salt_and_hash {
            assert!(!dbg.contains(part), "{dbg}");
        }
        let hdbg = format!("{h:?}");
        assert_eq!(
            hdbg,
            r#"PasswordHasher { algorithm: "argon2id", m_cost_kib: 256, t_cost: 1, p_cost: 1 }"#
        );
    }
}
