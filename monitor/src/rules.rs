//! The claim rules of SPEC §8 (`unexpected-claimant`, `conflicting-claim`, `unattested-claim`,
//! `claim-burst`, `revoked-by-prover`) and `bad-entry`, applied to verified entries in log order.
//!
//! The state they need (the current mappings of each SII, the burst window of each MSP) is kept in
//! the [`Store`] and cached in a [`Step`] for the entries of one catch-up step, whose changes the
//! caller commits together with the step's progress and alerts.

use std::collections::{HashMap, HashSet};

use ledger_core::entry::{Entry, Role};

use crate::alert::{Alert, Identified, Kind};
use crate::config::{Rules, Scope, Watch};
use crate::store::{BurstRec, Commit, MappingRec, SiiRec, Store, StoreError};
use crate::verify::Verdict;

/// The configured rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// The watchlist.
    pub watches: Vec<Watch>,
    /// The rule switches and parameters.
    pub rules: Rules,
}

/// The rule state touched by one catch-up step, and the alerts it raised.
pub struct Step<'a> {
    store: &'a Store,
    rules: &'a RuleSet,
    log: &'a str,
    origin: &'a str,
    siis: HashMap<String, SiiRec>,
    bursts: HashMap<String, BurstRec>,
    alerts: Vec<Identified>,
    ids: HashSet<String>,
}

impl<'a> Step<'a> {
    /// A step over log `log` (state name) with origin `origin`.
    pub fn new(store: &'a Store, rules: &'a RuleSet, log: &'a str, origin: &'a str) -> Self {
        Step {
            store,
            rules,
            log,
            origin,
            siis: HashMap::new(),
            bursts: HashMap::new(),
            alerts: Vec::new(),
            ids: HashSet::new(),
        }
    }

    /// Records `alert` unless an alert with the same id is already known.
    pub fn raise(&mut self, alert: Alert, discriminator: &str) -> Result<(), StoreError> {
        let a = alert.identify(discriminator);
        if self.ids.contains(&a.id) || self.store.alert_known(&a.id)? {
            return Ok(());
        }
        self.ids.insert(a.id.clone());
        self.alerts.push(a);
        Ok(())
    }

    /// The alerts raised so far.
    pub fn alerts(&self) -> &[Identified] {
        &self.alerts
    }

    /// Moves the step's state changes and alerts into `c`.
    pub fn into_commit(self, c: &mut Commit) {
        for (sii, rec) in self.siis {
            c.siis.push((self.log.to_string(), sii, rec));
        }
        for (msp, rec) in self.bursts {
            c.bursts.push((self.log.to_string(), msp, rec));
        }
        c.alerts.extend(self.alerts);
    }

    fn watched(&self, sii: &str) -> Vec<&'a Watch> {
        self.rules
            .watches
            .iter()
            .filter(|w| w.matches(sii))
            .collect()
    }

    fn in_scope(&self, scope: Scope, sii: &str) -> bool {
        match scope {
            Scope::All => true,
            Scope::Watched => self.rules.watches.iter().any(|w| w.matches(sii)),
            Scope::Off => false,
        }
    }

    fn sii_rec(&mut self, sii: &str) -> Result<&mut SiiRec, StoreError> {
        if !self.siis.contains_key(sii) {
            let rec = self.store.sii(self.log, sii)?.unwrap_or_default();
            self.siis.insert(sii.to_string(), rec);
        }
        Ok(self.siis.entry(sii.to_string()).or_default())
    }

    fn burst_rec(&mut self, msp: &str) -> Result<&mut BurstRec, StoreError> {
        if !self.bursts.contains_key(msp) {
            let rec = self.store.burst(self.log, msp)?.unwrap_or_default();
            self.bursts.insert(msp.to_string(), rec);
        }
        Ok(self.bursts.entry(msp.to_string()).or_default())
    }

    /// Applies the rules to the entry at `index`.
    pub fn apply(&mut self, index: u64, verdict: &Verdict) -> Result<(), StoreError> {
        let origin = self.origin;
        let (leaf, signer_role, attested_by) = match verdict {
            Verdict::Bad { reason, leaf } => {
                let mut a = Alert::new(
                    Kind::BadEntry,
                    origin,
                    Some(index),
                    format!("entry {index} fails SPEC §3 verification: {reason}"),
                );
                if let Some(l) = leaf {
                    if let Some(s) = l.entry().sii() {
                        a = a.sii(s.as_str());
                    }
                    if let Entry::Claim(c) = l.entry() {
                        a = a.msp(c.msp.as_str());
                    }
                }
                return self.raise(a, "");
            }
            Verdict::Good {
                leaf,
                signer_role,
                attested_by,
            } => (leaf, signer_role, attested_by),
        };
        match leaf.entry() {
            Entry::Enroll(_) => {}
            Entry::Claim(c) => {
                let sii = c.sii.as_str();
                let msp = c.msp.as_str();
                let watches = self.watched(sii);
                if !watches.is_empty()
                    && !watches.iter().any(|w| w.allowed.iter().any(|m| m == msp))
                {
                    let allowed: Vec<&str> = watches
                        .iter()
                        .flat_map(|w| w.allowed.iter().map(String::as_str))
                        .collect();
                    let a = Alert::new(
                        Kind::UnexpectedClaimant,
                        origin,
                        Some(index),
                        format!(
                            "{msp} claimed the watched {sii} (ssi {}) at index {index}; allowed: [{}]",
                            c.ssi,
                            allowed.join(", ")
                        ),
                    )
                    .sii(sii)
                    .msp(msp);
                    self.raise(a, "")?;
                }
                if self.in_scope(self.rules.rules.unattested_claim, sii) {
                    let trusted = &self.rules.rules.trusted_provers;
                    let ok = attested_by
                        .as_deref()
                        .is_some_and(|p| trusted.is_empty() || trusted.iter().any(|t| t == p));
                    if !ok {
                        let why = match attested_by {
                            None => "carries no attestation".to_string(),
                            Some(p) => format!("is attested by {p}, which is not a trusted prover"),
                        };
                        let a = Alert::new(
                            Kind::UnattestedClaim,
                            origin,
                            Some(index),
                            format!("the claim of {sii} by {msp} at index {index} {why}"),
                        )
                        .sii(sii)
                        .msp(msp);
                        self.raise(a, "")?;
                    }
                }
                if self.rules.rules.conflicting_claim != Scope::Off
                    && self.in_scope(self.rules.rules.conflicting_claim, sii)
                {
                    let time = c.time;
                    let rec = self.sii_rec(sii)?;
                    rec.mappings.retain(|m| m.expires.is_none_or(|e| e >= time));
                    let others: Vec<String> = rec
                        .mappings
                        .iter()
                        .filter(|m| m.msp != msp)
                        .map(|m| format!("{} (index {})", m.msp, m.index))
                        .collect();
                    rec.mappings
                        .retain(|m| !(m.msp == msp && m.ssi == c.ssi.as_str()));
                    rec.mappings.push(MappingRec {
                        msp: msp.to_string(),
                        ssi: c.ssi.as_str().to_string(),
                        index,
                        expires: c.expires,
                    });
                    rec.opted_out = false;
                    if !others.is_empty() {
                        let a = Alert::new(
                            Kind::ConflictingClaim,
                            origin,
                            Some(index),
                            format!(
                                "{msp} claimed {sii} at index {index} while it is mapped by {}",
                                others.join(", ")
                            ),
                        )
                        .sii(sii)
                        .msp(msp);
                        self.raise(a, "")?;
                    }
                }
                if let Some(b) = self.rules.rules.claim_burst {
                    let time = c.time;
                    let rec = self.burst_rec(msp)?;
                    let floor = time.saturating_sub(b.window_s);
                    rec.siis.retain(|_, t| *t > floor);
                    rec.siis.insert(sii.to_string(), time);
                    let n = rec.siis.len();
                    if n > b.max_siis {
                        // A new episode starts after each alert.
                        rec.siis.clear();
                        let a = Alert::new(
                            Kind::ClaimBurst,
                            origin,
                            Some(index),
                            format!(
                                "{msp} claimed {n} distinct SIIs within {} s (limit {}), the last at index {index}",
                                b.window_s, b.max_siis
                            ),
                        )
                        .msp(msp);
                        self.raise(a, "")?;
                    }
                }
            }
            Entry::Revoke(r) => {
                let sii = r.sii.as_str();
                if self.rules.rules.conflicting_claim != Scope::Off
                    && self.in_scope(self.rules.rules.conflicting_claim, sii)
                {
                    let rec = self.sii_rec(sii)?;
                    rec.mappings
                        .retain(|m| !(m.msp == r.msp.as_str() && m.ssi == r.ssi.as_str()));
                }
                if *signer_role == Some(Role::Prover)
                    && self.in_scope(self.rules.rules.revoked_by_prover, sii)
                {
                    let a = Alert::new(
                        Kind::RevokedByProver,
                        origin,
                        Some(index),
                        format!(
                            "prover {} revoked the mapping of {sii} to {} ({}) at index {index}",
                            leaf.signer_name(),
                            r.ssi,
                            r.msp
                        ),
                    )
                    .sii(sii)
                    .msp(r.msp.as_str());
                    self.raise(a, "")?;
                }
            }
            Entry::Optout(o) => {
                let sii = o.sii.as_str();
                if self.rules.rules.conflicting_claim != Scope::Off
                    && self.in_scope(self.rules.rules.conflicting_claim, sii)
                {
                    let rec = self.sii_rec(sii)?;
                    rec.mappings.clear();
                    rec.opted_out = true;
                }
            }
        }
        Ok(())
    }
}
