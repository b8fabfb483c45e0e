//! Verifying many log entries at once (SPEC §3, all but the log's clock): what every follower of
//! a log runs on the entries it downloads — the monitor, and a DP mirror — so both judge them by
//! this one path and [`crate::admission`]'s rules, never a copy of either.
//!
//! Entries are parsed (in parallel with the `parallel` feature), enrollments are decided in log
//! order (they change which keys later entries are checked against), and everything else is
//! checked by groups of [`BATCH`]: the signature equations of a group's [`crate::admission::Plan`]s
//! in one batch ([`crate::admission::verify_plans`], the one signature rule of
//! [`crate::signature`]), which falls back to single checks only to name a bad one. So a good entry
//! costs about half a signature check and a bad one is reported with the core's reason.

use crate::admission::{plan, verify_entry, verify_plans, KeyRegistry, Plan, Refusal, Signers};
use crate::entry::{Entry, Leaf};

/// How many entries share one batch (and are re-checked one by one when it fails).
pub const BATCH: usize = 128;

/// the signers or the refusal (`Refusal::Entry` when it does not parse).
#[derive(Clone, Debug)]
pub struct Checked {
    /// The parsed leaf.
    pub leaf: Option<Leaf>,
    /// The signers, or why the entry must have been refused.
    pub result: Result<Signers, Refusal>,
}

type Item = (
    usize,
    Result<Leaf, Refusal>,
    Option<Result<Signers, Refusal>>,
);

/// Verifies `raw` (the leaves at indices `start..`), in order, and adds every valid enrollment to
/// `registry` (which must hold the enrollments of all earlier indices).
pub fn check_leaves(start: u64, raw: &[Vec<u8>], registry: &mut KeyRegistry) -> Vec<Checked> {
    // 1. Parse in parallel.
    let parse = |b: &Vec<u8>| Leaf::parse(b).map_err(Refusal::from);
    #[cfg(feature = "parallel")]
    let parsed: Vec<Result<Leaf, Refusal>> = {
        use rayon::prelude::*;
        raw.par_iter().map(parse).collect()
    };
    #[cfg(not(feature = "parallel"))]
    let parsed: Vec<Result<Leaf, Refusal>> = raw.iter().map(parse).collect();
    // 2. Enrollments, in order: they change which keys later entries are checked against. Few,
    //    and signed by the log, so checked one by one with the core.
    let mut enroll_ok: Vec<Option<Result<Signers, Refusal>>> = vec![None; parsed.len()];
    for (i, p) in parsed.iter().enumerate() {
        if let Ok(leaf) = p {
            if let Entry::Enroll(_) = leaf.entry() {
                let index = start + i as u64;
                let r = verify_entry(leaf, &registry.at(index));
                if r.is_ok() {
                    registry.add_entry(index, leaf.entry());
                }
                if let Some(slot) = enroll_ok.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
    }
    // 3. Everything else, by groups of BATCH, in parallel.
    let registry: &KeyRegistry = registry;
    let items: Vec<Item> = parsed
        .into_iter()
        .zip(enroll_ok)
        .enumerate()
        .map(|(i, (p, e))| (i, p, e))
        .collect();
    // Groups are taken by value so that each parsed leaf moves into its verdict, never copied.
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items
            .into_par_iter()
            .chunks(BATCH)
            .flat_map_iter(|group| verify_group(start, group, registry))
            .collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        let mut out = Vec::with_capacity(items.len());
        let mut rest = items.into_iter();
        loop {
            let group: Vec<Item> = rest.by_ref().take(BATCH).collect();
            if group.is_empty() {
                break out;
            }
            out.extend(verify_group(start, group, registry));
        }
    }
}

/// Verifies one group: enrollments as already decided, the others by the core's plans, whose
/// signature equations are checked in one batch; each leaf then moves into its verdict.
fn verify_group(start: u64, group: Vec<Item>, registry: &KeyRegistry) -> Vec<Checked> {
    let mut results: Vec<Option<Result<Signers, Refusal>>> = vec![None; group.len()];
    {
        let mut batched: Vec<(usize, Plan<'_>)> = Vec::new();
        for (slot, (i, parsed, enroll)) in group.iter().enumerate() {
            let index = start + *i as u64;
            let result = match (parsed, enroll) {
                (Err(e), _) => Some(Err(e.clone())),
                (Ok(_), Some(r)) => Some(r.clone()),
                (Ok(leaf), None) => {
                    let p = plan(leaf, &registry.at(index));
                    if p.outcome().is_ok() {
                        batched.push((slot, p));
                        None
                    } else {
                        // Refused whatever its signatures are: the core's single pass names the
                        // exact refusal, and a refused entry's equations do not spoil the batch.
                        Some(p.verify())
                    }
                }
            };
            if let Some(r) = results.get_mut(slot) {
                *r = result;
            }
        }
        let (slots, plans): (Vec<usize>, Vec<Plan<'_>>) = batched.into_iter().unzip();
        for (slot, result) in slots.into_iter().zip(verify_plans(plans)) {
            if let Some(r) = results.get_mut(slot) {
                *r = Some(result);
            }
        }
    }
    group
        .into_iter()
        .zip(results)
        .map(|((_, parsed, _), result)| Checked {
            leaf: parsed.ok(),
            result: result.unwrap_or_else(|| {
                Err(Refusal::BadSignature {
                    name: "internal: entry not verified".into(),
                })
            }),
        })
        .collect()
}
