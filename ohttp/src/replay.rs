//! The gateway's replay window (RFC 9458 §6.5): an encapsulated request is answered at most once.
//!
//! Each request carries a `date` field inside its encryption; the gateway refuses one dated
//! more than the window away from its clock, and remembers the HPKE `enc` value (the client's
//! fresh ephemeral public key, unique per request) of every request it answered for twice the
//! window. A request can only be accepted while its date is within the window, so a copy
//! arriving later is refused by the date, and one arriving earlier by the set. The set is bounded:
//! when it is full of entries still inside their retention, new requests are refused (503) rather
//! than an entry forgotten early, so a flood cannot reopen the window.

use std::collections::{HashMap, VecDeque};

/// The default window: how far a request's date may be from the gateway's clock (seconds).
pub const DEFAULT_WINDOW_S: u64 = 300;
/// The default bound on remembered encapsulations.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// What [`ReplayWindow::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before; now remembered.
    Fresh,
    /// Already answered: refuse.
    Replayed,
    /// Dated outside the window: refuse.
    OutsideWindow,
    /// The set is full of live entries: refuse for now.
    Full,
}

/// The bounded set of recently answered encapsulations.
#[derive(Debug)]
pub struct ReplayWindow {
    window_s: u64,
    capacity: usize,
    seen: HashMap<Vec<u8>, u64>,
    order: VecDeque<(Vec<u8>, u64)>,
}

impl ReplayWindow {
    /// A window of `window_s` seconds remembering at most `capacity` requests.
    pub fn new(window_s: u64, capacity: usize) -> ReplayWindow {
        ReplayWindow {
            window_s,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The window, in seconds.
    pub fn window_s(&self) -> u64 {
        self.window_s
    }

    /// How many encapsulations are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Decides on a decapsulated request with HPKE `enc` and inner `date` (Unix seconds) at
    /// `now`, remembering it when fresh.
    pub fn check(&mut self, enc: &[u8], date: u64, now: u64) -> Verdict {
        if date.abs_diff(now) > self.window_s {
            return Verdict::OutsideWindow;
        }
        let retain = self.window_s.saturating_mul(2);
        while let Some((_, at)) = self.order.front() {
            if at.saturating_add(retain) > now {
                break;
            }
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(enc) {
            return Verdict::Replayed;
        }
        if self.seen.len() >= self.capacity {
            return Verdict::Full;
        }
        self.seen.insert(enc.to_vec(), now);
        self.order.push_back((enc.to_vec(), now));
        Verdict::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_encapsulation_once() {
        let mut w = ReplayWindow::new(10, 100);
        assert_eq!(w.check(b"a", 1000, 1000), Verdict::Fresh);
        assert_eq!(w.check(b"a", 1000, 1001), Verdict::Replayed);
        assert_eq!(w.check(b"b", 1000, 1001), Verdict::Fresh);
        // Still refused at the end of its possible acceptance (date + window).
        assert_eq!(w.check(b"a", 1000, 1010), Verdict::Replayed);
        // After that the date refuses it, and the set has forgotten it.
        assert_eq!(w.check(b"a", 1000, 1011), Verdict::OutsideWindow);
        assert_eq!(w.check(b"c", 1021, 1021), Verdict::Fresh);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn refuses_dates_outside_the_window_both_ways() {
        let mut w = ReplayWindow::new(10, 100);
        assert_eq!(w.check(b"x", 989, 1000), Verdict::OutsideWindow);
        assert_eq!(w.check(b"x", 1011, 1000), Verdict::OutsideWindow);
        assert_eq!(w.check(b"x", 990, 1000), Verdict::Fresh);
        assert!(!w.is_empty());
    }

    #[test]
    fn full_refuses_instead_of_forgetting() {
        let mut w = ReplayWindow::new(10, 2);
        assert_eq!(w.check(b"1", 100, 100), Verdict::Fresh);
        assert_eq!(w.check(b"2", 100, 100), Verdict::Fresh);
        assert_eq!(w.check(b"3", 100, 101), Verdict::Full);
        assert_eq!(w.check(b"1", 100, 101), Verdict::Replayed);
        // Once the first entries' retention (2 × window) is over there is room again.
        assert_eq!(w.check(b"3", 120, 120), Verdict::Fresh);
    }
}
