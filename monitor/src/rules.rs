//! The claim rules of SPEC §8 (`unexpected-claimant`, `conflicting-claim`, `unattested-claim`,
//! `claim-burst`, `revoked-by-prover`) and `bad-entry`, applied to verified entries in log order.
//!
//! The state they need lives in a [`RuleState`] owned by the log's monitor; a [`Step`] applies the
//! entries of one catch-up step to it and collects the journal record and the alerts, which the
//! caller commits together with the step's progress.

use std::collections::HashSet;

use ledger_core::entry::{Entry, Role};

use crate::alert::{Alert, Identified, Kind};
use crate::config::{Rules, Scope, Watch};
use crate::rulestate::{encode_op, sii_key, ssi_tag, Op, RuleState, NEVER};
use crate::store::{Store, StoreError};
use crate::verify::Verdict;

/// The configured rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// The watchlist.
    pub watches: Vec<Watch>,
    /// The rule switches and parameters.
    pub rules: Rules,
}

/// Alerts raised but not yet committed, without the ones already known (by id).
pub struct Alerts<'a> {
    store: &'a Store,
    list: Vec<Identified>,
    ids: HashSet<String>,
}

impl<'a> Alerts<'a> {
    /// An empty set, checked against `store`'s known ids.
    pub fn new(store: &'a Store) -> Self {
        Alerts {
            store,
            list: Vec::new(),
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
        self.list.push(a);
        Ok(())
    }

    /// The alerts raised so far.
    pub fn list(&self) -> &[Identified] {
        &self.list
    }

    /// The alerts, for the commit.
    pub fn into_vec(self) -> Vec<Identified> {
        self.list
    }
}

/// The rules applied to the entries of one catch-up step.
pub struct Step<'a> {
    rules: &'a RuleSet,
    origin: &'a str,
    state: &'a mut RuleState,
    journal: Vec<u8>,
    alerts: Alerts<'a>,
}

impl<'a> Step<'a> {
    /// A step over the log with origin `origin`, changing `state`.
    pub fn new(
        store: &'a Store,
        rules: &'a RuleSet,
        origin: &'a str,
        state: &'a mut RuleState,
    ) -> Self {
        Step {
            rules,
            origin,
            state,
            journal: Vec::new(),
            alerts: Alerts::new(store),
        }
    }

    /// The alerts raised so far.
    pub fn alerts(&self) -> &[Identified] {
        self.alerts.list()
    }

    /// The step's journal record (empty when the state did not change) and its alerts.
    pub fn finish(self) -> (Vec<u8>, Vec<Identified>) {
        (self.journal, self.alerts.into_vec())
    }

    fn raise(&mut self, alert: Alert) -> Result<(), StoreError> {
        self.alerts.raise(alert, "")
    }

    /// Records an alert the engine raised for this step (the map's), in order with the rules'
    /// own, unless an alert with the same id is known.
    pub fn raise_with(&mut self, alert: Alert, discriminator: &str) -> Result<(), StoreError> {
        self.alerts.raise(alert, discriminator)
    }

    fn op(&mut self, op: Op) -> crate::rulestate::Applied {
        encode_op(&op, &mut self.journal);
        self.state.apply(&op)
    }

    fn in_scope(&self, scope: Scope, sii: &str) -> bool {
        match scope {
            Scope::All => true,
            Scope::Watched => self.rules.watches.iter().any(|w| w.matches(sii)),
            Scope::Off => false,
        }
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
                return self.raise(a);
            }
            Verdict::Good {
                leaf,
                signer_role,
                attested_by,
            } => (leaf, signer_role, attested_by),
        };
        let rules = &self.rules.rules;
        match leaf.entry() {
            // Map leaves are checked against the rebuilt map by the engine, not by the rules.
            Entry::Enroll(_) | Entry::Map(_) => {}
            Entry::Claim(c) => {
                let sii = c.sii.as_str();
                let msp = c.msp.as_str();
                let mut watched = false;
                let mut allowed = false;
                for w in self.rules.watches.iter().filter(|w| w.matches(sii)) {
                    watched = true;
                    allowed |= w.allowed.iter().any(|m| m == msp);
                }
                if watched && !allowed {
                    let names: Vec<&str> = self
                        .rules
                        .watches
                        .iter()
                        .filter(|w| w.matches(sii))
                        .flat_map(|w| w.allowed.iter().map(String::as_str))
                        .collect();
                    let a = Alert::new(
                        Kind::UnexpectedClaimant,
                        origin,
                        Some(index),
                        format!(
                            "{msp} claimed the watched {sii} (ssi {}) at index {index}; allowed: [{}]",
                            c.ssi,
                            names.join(", ")
                        ),
                    )
                    .sii(sii)
                    .msp(msp);
                    self.raise(a)?;
                }
                if self.in_scope(rules.unattested_claim, sii) {
                    let trusted = &rules.trusted_provers;
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
                        self.raise(a)?;
                    }
                }
                let conflict = self.in_scope(rules.conflicting_claim, sii);
                if !conflict && rules.claim_burst.is_none() {
                    return Ok(());
                }
                let key = sii_key(sii);
                let msp_id = self.state.msp_id(msp, &mut self.journal);
                if conflict {
                    let applied = self.op(Op::Claim {
                        sii: key,
                        msp: msp_id,
                        ssi: ssi_tag(c.ssi.as_str()),
                        index,
                        expires: c.expires.unwrap_or(NEVER),
                        time: c.time,
                    });
                    if !applied.others.is_empty() {
                        let others: Vec<String> = applied
                            .others
                            .iter()
                            .map(|(m, i)| format!("{} (index {i})", self.state.msp_name(*m)))
                            .collect();
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
                        self.raise(a)?;
                    }
                }
                if let Some(b) = rules.claim_burst {
                    let n = self
                        .op(Op::Burst {
                            msp: msp_id,
                            sii: key,
                            time: c.time,
                            floor: c.time.saturating_sub(b.window_s),
                        })
                        .window;
                    if n > b.max_siis {
                        // A new episode starts after each alert.
                        self.op(Op::BurstClear { msp: msp_id });
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
                        self.raise(a)?;
                    }
                }
            }
            Entry::Revoke(r) => {
                let sii = r.sii.as_str();
                // An MSP the state never saw has no mapping to revoke.
                let known = self.state.known_msp(r.msp.as_str());
                if let (true, Some(msp)) = (self.in_scope(rules.conflicting_claim, sii), known) {
                    self.op(Op::Revoke {
                        sii: sii_key(sii),
                        msp,
                        ssi: ssi_tag(r.ssi.as_str()),
                    });
                }
                if *signer_role == Some(Role::Prover) && self.in_scope(rules.revoked_by_prover, sii)
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
                    self.raise(a)?;
                }
            }
            Entry::Optout(o) => {
                let sii = o.sii.as_str();
                if self.in_scope(rules.conflicting_claim, sii) {
                    self.op(Op::Optout { sii: sii_key(sii) });
                }
            }
        }
        Ok(())
    }
}
