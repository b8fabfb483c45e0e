//! The live connections: what each is doing (for its timeouts) and which one to close when the
//! cap is reached.
//!
//! At the cap, a new connection closes the one that has gone longest without a request in progress
//! (a silent or slowloris client, or an idle keep-alive) instead of being refused: an attacker who
//! holds every slot with connections that send nothing cannot keep new clients out, they only push
//! each other out. Only when every slot has a request in progress is a new connection refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::Limits;

/// One connection's state, shared by its task, its I/O wrapper and its requests.
#[derive(Debug)]
pub(crate) struct ConnState {
    epoch: Instant,
    /// Requests whose response has not been fully sent.
    in_flight: AtomicUsize,
    /// Whether a request was ever answered (a fresh connection waits `header_timeout` for its
    /// first request, a keep-alive one `idle_timeout`).
    answered: AtomicBool,
    /// Ms since `epoch` when the connection last became idle (start, or end of a response).
    idle_since_ms: AtomicU64,
    /// Ms since `epoch` (+1, 0 = none) when the first byte of the next request head arrived.
    head_started_ms: AtomicU64,
    /// Set when the registry (or shutdown) closes the connection.
    closed: AtomicBool,
    /// Wakes the connection task: a state change moved its deadline, or it must close.
    pub(crate) wake: Notify,
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        ConnState {
            idle_since_ms: AtomicU64::new(ms_since(epoch)),
            epoch,
            in_flight: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            head_started_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Bytes arrived: when no request is in progress they are a request head, whose clock starts.
    pub(crate) fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == 0
        {
            self.head_started_ms
                .store(ms_since(self.epoch) + 1, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    /// A request head was read and the request handed to the service.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(0, Ordering::Relaxed);
    }

    /// A response was fully produced: the connection is idle again (if nothing else is running).
    pub(crate) fn request_finished(&self) {
        self.answered.store(true, Ordering::Relaxed);
        self.idle_since_ms
            .store(ms_since(self.epoch), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Whether a request is in progress.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Whether the connection was told to close.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// When the connection must be closed if nothing changes; `None` while a request is in
    /// progress (its body has its own deadline, its handler the drain).
    pub(crate) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.busy() {
            return None;
        }
        let at = |ms: u64, d: Duration| Some(self.epoch + Duration::from_millis(ms) + d);
        match self.head_started_ms.load(Ordering::Relaxed) {
            0 if self.answered.load(Ordering::Relaxed) => at(
                self.idle_since_ms.load(Ordering::Relaxed),
                limits.idle_timeout,
            ),
            0 => at(
                self.idle_since_ms.load(Ordering::Relaxed),
                limits.header_timeout,
            ),
            started => at(started - 1, limits.header_timeout),
        }
    }

    fn idle_since(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The live connections of one server.
#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    max: usize,
    next_id: AtomicU64,
    /// Connections counted against the cap (registered and not told to close).
    live: AtomicUsize,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

/// A registered connection; deregisters on drop.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.state.closed.swap(true, Ordering::AcqRel) {
            self.registry.live.fetch_sub(1, Ordering::AcqRel);
        }
        if let Ok(mut conns) = self.registry.conns.lock() {
            conns.remove(&self.id);
        }
    }
}

impl Registry {
    pub(crate) fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            epoch: Instant::now(),
            max,
            next_id: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a new connection, closing the longest-idle one when at the cap; `None` when at
    /// the cap and every connection has a request in progress.
    pub(crate) fn admit(self: &Arc<Registry>) -> Option<Slot> {
        let mut conns = self.conns.lock().ok()?;
        if self.live.load(Ordering::Acquire) >= self.max && !self.evict_idlest(&conns) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.epoch));
        conns.insert(id, Arc::clone(&state));
        self.live.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            registry: Arc::clone(self),
            id,
            state,
        })
    }

    /// Closes the connection idle longest (to free a file descriptor when accept fails with
    /// EMFILE); whether there was one.
    pub(crate) fn evict_one(&self) -> bool {
        match self.conns.lock() {
            Ok(conns) => self.evict_idlest(&conns),
            Err(_) => false,
        }
    }

    fn evict_idlest(&self, conns: &HashMap<u64, Arc<ConnState>>) -> bool {
        let victim = conns
            .values()
            .filter(|c| !c.busy() && !c.is_closed())
            .min_by_key(|c| c.idle_since());
        match victim {
            Some(v) => {
                close(v, &self.live);
                true
            }
            None => false,
        }
    }

    /// Tells every connection without a request in progress to close (shutdown).
    pub(crate) fn close_idle(&self) {
        if let Ok(conns) = self.conns.lock() {
            for c in conns.values().filter(|c| !c.busy()) {
                close(c, &self.live);
            }
        }
    }

    /// Connections counted against the cap.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

fn close(c: &ConnState, live: &AtomicUsize) {
    if !c.closed.swap(true, Ordering::AcqRel) {
        live.fetch_sub(1, Ordering::AcqRel);
    }
    c.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_idlest_is_closed_and_busy_ones_are_kept() {
        let r = Registry::new(2);
        let a = r.admit().expect("first");
        std::thread::sleep(Duration::from_millis(5));
        let b = r.admit().expect("second");
        let c = r.admit().expect("third pushes out the idlest");
        assert!(a.state.is_closed(), "the oldest idle one is closed");
        assert!(!b.state.is_closed());
        assert_eq!(r.live(), 2);
        b.state.request_started();
        c.state.request_started();
        assert!(r.admit().is_none(), "every slot is busy: refused");
        c.state.request_finished();
        let d = r.admit().expect("c is idle again");
        assert!(c.state.is_closed());
        drop((a, b, c, d));
        assert_eq!(r.live(), 0);
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(100),
            ..Limits::default()
        };
        let r = Registry::new(4);
        let s = r.admit().expect("admitted");
        let fresh = s.state.deadline(&limits).expect("deadline");
        assert!(fresh <= Instant::now() + Duration::from_secs(1));
        s.state.request_started();
        assert_eq!(s.state.deadline(&limits), None, "busy: no deadline");
        s.state.request_finished();
        let idle = s.state.deadline(&limits).expect("deadline");
        assert!(
            idle > Instant::now() + Duration::from_secs(50),
            "keep-alive idle"
        );
        s.state.bytes_read();
        let head = s.state.deadline(&limits).expect("deadline");
        assert!(
            head <= Instant::now() + Duration::from_secs(1),
            "head started"
        );
    }
}
