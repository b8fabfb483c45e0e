//! Pending challenges and rate limits: the security core of the prover, kept free of I/O so that it
//! is tested directly.
//!
//! A code is random (OS RNG), single-use, expires, allows at most `max_tries` wrong guesses, and is
//! compared in constant time (`subtle`). Challenges are rate-limited per SII (so nobody can flood a
//! person with codes) and per client address (so nobody can flood the sender).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ledger_core::entry::Action;
use ledger_core::sii::{Name, Sii, Ssi, Tag};
use rand_core::{OsRng, RngCore as _};
use subtle::ConstantTimeEq as _;

/// The limits the prover enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// How many wrong codes lock a challenge.
    pub max_tries: u32,
    /// Challenges per SII per window.
    pub per_sii: (u32, Duration),
    /// Challenges per client address per window.
    pub per_client: (u32, Duration),
    /// At most this many live challenges (memory bound).
    pub max_pending: usize,
    /// Digits per code (6 to 10). An attacker who starts challenges for someone else's SII gets
    /// at most `per_sii.0 * max_tries` guesses per window: with 6 digits and the defaults that is
    /// 25 in 10^6 per 15 minutes — and every try sends the owner a code they did not ask for.
    pub code_digits: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            code_ttl: Duration::from_secs(300),
            max_tries: 5,
            per_sii: (5, Duration::from_secs(15 * 60)),
            per_client: (30, Duration::from_secs(15 * 60)),
            max_pending: 100_000,
            code_digits: 6,
        }
    }
}

/// What a challenge is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The action the attestation will authorize.
    pub action: Action,
    /// The SII whose control is proven.
    pub sii: Sii,
    /// The MSP (claim, revoke).
    pub msp: Option<Name>,
    /// The SSI (claim, revoke).
    pub ssi: Option<Ssi>,
    /// The tags of a claim (shown to the user; not part of the attestation).
    pub tags: Vec<Tag>,
}

/// Why a challenge was not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// Too many challenges from this client address.
    #[error("too many challenges from this address; retry in {retry_after}s")]
    ClientRate {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// Too many challenges for this SII.
    #[error("too many challenges for {sii}; retry in {retry_after}s")]
    SiiRate {
        /// The SII.
        sii: String,
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// Too many live challenges overall.
    #[error("too many pending challenges; retry later")]
    Full,
}

/// Why a code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No such challenge (never issued, or cleaned up long after it expired).
    #[error("unknown challenge")]
    Unknown,
    /// The challenge was already answered: codes are single-use.
    #[error("this challenge was already used; codes are single-use")]
    Used,
    /// The code expired.
    #[error("the code expired; request a new challenge")]
    Expired,
    /// Too many wrong codes: the challenge is locked.
    #[error("locked after {max_tries} wrong codes; request a new challenge")]
    Locked {
        /// The try limit.
        max_tries: u32,
    },
    /// A wrong code.
    #[error("wrong code; {tries_left} {} left", if *tries_left == 1 { "try" } else { "tries" })]
    WrongCode {
        /// Tries left before the challenge locks.
        tries_left: u32,
    },
}

#[derive(Debug)]
struct Pending {
    subject: Subject,
    code: String,
    expires_at: Instant,
    tries_left: u32,
    used: bool,
}

/// A fixed-window counter per key.
#[derive(Debug, Default)]
struct RateLimiter {
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimiter {
    /// Counts one event for `key`; `Err(seconds until reset)` when over `limit` in `window`.
    fn hit(
        &mut self,
        key: &str,
        (limit, window): (u32, Duration),
        now: Instant,
    ) -> Result<(), u64> {
        if self.windows.len() > 100_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = self.windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(slot.0) >= window {
            *slot = (now, 0);
        }
        if slot.1 >= limit {
            let left = window.saturating_sub(now.duration_since(slot.0));
            return Err(left.as_secs().max(1));
        }
        slot.1 += 1;
        Ok(())
    }
}

/// The live challenges and rate-limit counters.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    pending: HashMap<String, Pending>,
    per_sii: RateLimiter,
    per_client: RateLimiter,
}

/// A freshly created challenge.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The challenge id (public).
    pub id: String,
    /// The one-time code (secret; only for the sender).
    pub code: String,
}

/// A uniformly random decimal code of `digits` digits from the OS RNG.
pub fn random_code(digits: u32) -> String {
    let modulus = 10u64.pow(digits);
    // Rejection sampling: accept only values below the largest multiple of `modulus`.
    let bound = u64::MAX - u64::MAX % modulus;
    loop {
        let x = OsRng.next_u64();
        if x < bound {
            return format!("{:0width$}", x % modulus, width = digits as usize);
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Store {
    /// An empty store.
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            pending: HashMap::new(),
            per_sii: RateLimiter::default(),
            per_client: RateLimiter::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Creates a challenge for `subject` from `client`, after the rate limits.
    pub fn challenge(
        &mut self,
        subject: Subject,
        client: &str,
        now: Instant,
    ) -> Result<Issued, ChallengeError> {
        self.cleanup(now);
        if self.pending.len() >= self.limits.max_pending {
            return Err(ChallengeError::Full);
        }
        self.per_client
            .hit(client, self.limits.per_client, now)
            .map_err(|retry_after| ChallengeError::ClientRate { retry_after })?;
        self.per_sii
            .hit(subject.sii.as_str(), self.limits.per_sii, now)
            .map_err(|retry_after| ChallengeError::SiiRate {
                sii: subject.sii.to_string(),
                retry_after,
            })?;
        let id = random_id();
        let code = random_code(self.limits.code_digits.clamp(6, 10));
        self.pending.insert(
            id.clone(),
            Pending {
                subject,
                code: code.clone(),
                expires_at: now + self.limits.code_ttl,
                tries_left: self.limits.max_tries,
                used: false,
            },
        );
        Ok(Issued { id, code })
    }

    /// Forgets a challenge whose code could not be delivered.
    pub fn forget(&mut self, id: &str) {
        self.pending.remove(id);
    }

    /// Checks `code` for challenge `id`; on success the challenge is used up and its subject returned.
    pub fn verify(&mut self, id: &str, code: &str, now: Instant) -> Result<Subject, VerifyError> {
        let Some(p) = self.pending.get_mut(id) else {
            return Err(VerifyError::Unknown);
        };
        if p.used {
            return Err(VerifyError::Used);
        }
        if now >= p.expires_at {
            return Err(VerifyError::Expired);
        }
        if p.tries_left == 0 {
            return Err(VerifyError::Locked {
                max_tries: self.limits.max_tries,
            });
        }
        // Constant time in the code's content; a code of another length is simply unequal.
        let equal: bool = p.code.as_bytes().ct_eq(code.trim().as_bytes()).into();
        if !equal {
            p.tries_left -= 1;
            if p.tries_left == 0 {
                return Err(VerifyError::Locked {
                    max_tries: self.limits.max_tries,
                });
            }
            return Err(VerifyError::WrongCode {
                tries_left: p.tries_left,
            });
        }
        p.used = true;
        Ok(p.subject.clone())
    }

    /// Drops challenges that expired more than one code lifetime ago (used and locked ones are kept
    /// until then, so that a late retry is told why, not "unknown").
    fn cleanup(&mut self, now: Instant) {
        let ttl = self.limits.code_ttl;
        self.pending
            .retain(|_, p| now < p.expires_at + ttl.max(Duration::from_secs(60)));
    }

    /// How many challenges are held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no challenge is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(sii: &str) -> Subject {
        Subject {
            action: Action::Optout,
            sii: Sii::parse(sii).unwrap(),
            msp: None,
            ssi: None,
            tags: vec![],
        }
    }

    #[test]
    fn codes_are_six_random_digits() {
        let codes: Vec<String> = (0..50).map(|_| random_code(6)).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 40, "codes repeat too often: {codes:?}");
    }

    #[test]
    fn right_code_once_then_used() {
        let mut s = Store::new(Limits::default());
        let t = Instant::now();
        let i = s.challenge(subject("tel:+14155550100"), "c", t).unwrap();
        assert_eq!(
            s.verify(&i.id, &i.code, t).unwrap(),
            subject("tel:+14155550100")
        );
        assert_eq!(s.verify(&i.id, &i.code, t), Err(VerifyError::Used));
        assert_eq!(s.verify("nope", &i.code, t), Err(VerifyError::Unknown));
    }

    #[test]
    fn five_wrong_codes_lock() {
        let mut s = Store::new(Limits::default());
        let t = Instant::now();
        let i = s.challenge(subject("tel:+14155550100"), "c", t).unwrap();
        let wrong = if i.code == "000000" {
            "000001"
        } else {
            "000000"
        };
        for left in (1..5).rev() {
            assert_eq!(
                s.verify(&i.id, wrong, t),
                Err(VerifyError::WrongCode { tries_left: left })
            );
        }
        assert_eq!(
            s.verify(&i.id, wrong, t),
            Err(VerifyError::Locked { max_tries: 5 })
        );
        assert_eq!(
            s.verify(&i.id, &i.code, t),
            Err(VerifyError::Locked { max_tries: 5 })
        );
    }

    #[test]
    fn codes_expire() {
        let mut s = Store::new(Limits::default());
        let t = Instant::now();
        let i = s.challenge(subject("tel:+14155550100"), "c", t).unwrap();
        let later = t + Duration::from_secs(300);
        assert_eq!(s.verify(&i.id, &i.code, later), Err(VerifyError::Expired));
    }

    #[test]
    fn rate_limits_per_sii_and_per_client() {
        let limits = Limits {
            per_sii: (2, Duration::from_secs(60)),
            per_client: (3, Duration::from_secs(60)),
            ..Limits::default()
        };
        let mut s = Store::new(limits);
        let t = Instant::now();
        s.challenge(subject("tel:+14155550100"), "a", t).unwrap();
        s.challenge(subject("tel:+14155550100"), "b", t).unwrap();
        assert!(matches!(
            s.challenge(subject("tel:+14155550100"), "c", t),
            Err(ChallengeError::SiiRate { .. })
        ));
        s.challenge(subject("tel:+14155550101"), "a", t).unwrap();
        s.challenge(subject("tel:+14155550102"), "a", t).unwrap();
        assert!(matches!(
            s.challenge(subject("tel:+14155550103"), "a", t),
            Err(ChallengeError::ClientRate { .. })
        ));
        // A new window admits again.
        let later = t + Duration::from_secs(61);
        s.challenge(subject("tel:+14155550100"), "a", later)
            .unwrap();
    }
}
