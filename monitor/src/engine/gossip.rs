//! Split-view detection (SPEC §8 `split-view`): comparing the monitor's verified view of a log with
//! the checkpoints its peers were shown.
//!
//! A log that signs one tree for this monitor and another for someone else is caught only if the
//! two views meet. So, after every successful sync, the monitor reads each configured peer's
//! checkpoint of the log — an auditor's latest cosigned one (`<base>/<hex sha256(origin)>/checkpoint`,
//! SPEC §7) or any other checkpoint URL — and checks it against its own verified checkpoint:
//!
//! - only a note carrying a valid signature by the *log's* key counts: anyone can write a
//!   checkpoint, only the log can sign one, so an unsigned or forged note is no evidence against
//!   the log (it is logged and skipped; witness cosignatures are not required on peer notes);
//! - same size, another root: the log signed two trees of one size → `split-view`;
//! - smaller: it must be a prefix of the verified tree, proven from the log's own hash tiles at the
//!   verified size (trusted only once they reproduce the verified root) → else `split-view`;
//! - larger: it cannot be checked yet; it is remembered (in memory, the latest per peer) and
//!   checked after a later sync reaches its size.
//!
//! A peer that cannot be read is a warning, never an alert and never an error: gossip is
//! best-effort, and a peer's outage says nothing about the log. `split-view` does not halt the log:
//! the monitor's own view is still consistent, the log showed someone else a different one.

use std::collections::HashMap;
use std::io::Read as _;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ledger_core::checkpoint::{compare, Agreement, Checkpoint, Contradiction, SignedCheckpoint};
use ledger_core::witness::gossip_path;
use tracing::{debug, info, warn};

use super::{b64, sha256_hex, Ctx, EngineError, LogMonitor, TileCheck};
use crate::alert::{Alert, Kind};
use crate::config::LogParams;
use crate::fetch::FetchError;

/// Per request to a peer: short, so that one dead peer does not hold up the monitor's round (the
/// next round asks again).
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to a peer.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest peer answer read: a checkpoint note with many cosignatures is a few KiB; a peer
/// sending more is not sending a checkpoint.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// The peers of one log, and the checkpoints they showed that were ahead of the monitor's view.
pub struct Peers {
    /// Checkpoint URLs, in configuration order (auditors first), without repeats.
    urls: Vec<String>,
    /// Built only when there are peers (a blocking client owns a thread).
    client: Option<reqwest::blocking::Client>,
    /// Per peer URL: the latest log-signed checkpoint it showed that was larger than the verified
    /// one. In memory only: after a restart the peer serves its latest checkpoint again.
    pending: HashMap<String, SignedCheckpoint>,
}

impl Peers {
    /// The peers configured for a log: each auditor's `<base>/<hex sha256(origin)>/checkpoint`,
    /// then each `peer_checkpoints` URL as given.
    pub fn new(params: &LogParams) -> Result<Peers, FetchError> {
        let path = gossip_path(&params.origin);
        let mut urls: Vec<String> = Vec::new();
        let candidates = params
            .auditors
            .iter()
            .map(|base| format!("{}{path}", base.trim_end_matches('/')))
            .chain(params.peer_checkpoints.iter().cloned());
        for url in candidates {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        let client = if urls.is_empty() {
            None
        } else {
            let c = reqwest::blocking::Client::builder()
                .timeout(PEER_TIMEOUT)
                .connect_timeout(PEER_CONNECT_TIMEOUT)
                .user_agent(concat!("mimi-ledger-monitor/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| FetchError::Failed {
                    url: urls.join(", "),
                    reason: format!("cannot build the HTTP client for peers: {e}"),
                })?;
            Some(c)
        };
        Ok(Peers {
            urls,
            client,
            pending: HashMap::new(),
        })
    }

    /// The checkpoint URLs asked after each sync.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Remembers `cp`, shown by `url` and larger than the verified view, replacing what that peer
    /// showed before (the latest per peer: a consistent peer's later checkpoints extend its
    /// earlier ones, so the latest is the one worth checking).
    pub fn remember(&mut self, url: &str, cp: SignedCheckpoint) {
        self.pending.insert(url.to_string(), cp);
    }

    /// Removes and returns the remembered checkpoints that a verified view of `verified_size`
    /// leaves can now be checked against, in configuration order.
    pub fn take_due(&mut self, verified_size: u64) -> Vec<(String, SignedCheckpoint)> {
        let mut due = Vec::new();
        for url in &self.urls {
            if self
                .pending
                .get(url)
                .is_some_and(|cp| cp.checkpoint.size <= verified_size)
            {
                if let Some(cp) = self.pending.remove(url) {
                    due.push((url.clone(), cp));
                }
            }
        }
        due
    }

    /// `GET url`, once, with the short peer timeout; at most [`MAX_NOTE_BYTES`].
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: url.to_string(),
            reason,
        };
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| failed("no HTTP client (no peers configured)".into()))?;
        let resp = client
            .get(url)
            .send()
            .map_err(|e| failed(error_chain(&e)))?;
        let status = resp.status();
        if status.as_u16() == 404 {
            return Err(FetchError::NotFound {
                url: url.to_string(),
            });
        }
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        resp.take(MAX_NOTE_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| failed(e.to_string()))?;
        if body.len() as u64 > MAX_NOTE_BYTES {
            return Err(failed(format!(
                "the answer is larger than {MAX_NOTE_BYTES} bytes"
            )));
        }
        Ok(body)
    }
}

/// An error and its sources on one line (reqwest's own message hides the cause, e.g. "connection
/// refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What comparing a peer's checkpoint with the verified view found.
enum PeerVerdict {
    /// Both can be true.
    Consistent,
    /// Larger than the verified view: to be checked later.
    Ahead,
    /// They cannot both be true: which check failed.
    Split(String),
    /// No conclusion (the log's hash tiles could not prove either way): why.
    Unknown(String),
}

impl LogMonitor {
    /// Compares each peer's checkpoint of this log with the monitor's verified one, raising
    /// `split-view` for a log-signed checkpoint that cannot be true together with it. Called after
    /// each successful [`LogMonitor::sync`]; does nothing for a halted log (its verified view is
    /// no longer trusted) or one without peers.
    ///
    /// Peers that cannot be read, notes that do not parse, carry no valid log signature or name
    /// another origin are logged and skipped: they are not evidence against the log. Errors are
    /// only the state's or the sinks'.
    pub fn check_peers(&mut self, cx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.peers.urls().is_empty() {
            return Ok(());
        }
        if self.progress.halted.is_some() {
            debug!(log = %self.params.name, "halted: peers not checked");
            return Ok(());
        }
        // First what peers showed earlier, ahead of the view then, which a sync has now reached.
        for (url, cp) in self.peers.take_due(self.progress.verified_size) {
            self.check_peer_checkpoint(cx, &url, &cp)?;
        }
        for url in self.peers.urls().to_vec() {
            if let Some(cp) = self.read_peer(&url) {
                self.check_peer_checkpoint(cx, &url, &cp)?;
            }
        }
        Ok(())
    }

    /// Fetches, parses and verifies a peer's checkpoint; `None` (after a warning) when it is not
    /// a log-signed checkpoint of this log.
    fn read_peer(&self, url: &str) -> Option<SignedCheckpoint> {
        let log = &self.params.name;
        let bytes = match self.peers.fetch(url) {
            Ok(b) => b,
            Err(FetchError::NotFound { .. }) => {
                warn!(%log, "peer {url}: no checkpoint of this log (404); skipped");
                return None;
            }
            Err(e) => {
                warn!(%log, "peer could not be read, skipped: {e}");
                return None;
            }
        };
        let cp = match SignedCheckpoint::parse(&bytes) {
            Ok(cp) => cp,
            Err(e) => {
                warn!(%log, "peer {url}: not a checkpoint note ({e}); skipped");
                return None;
            }
        };
        if cp.checkpoint.origin != self.params.origin {
            warn!(
                %log,
                "peer {url}: the checkpoint is of origin {:?}, not {:?}; skipped",
                cp.checkpoint.origin,
                self.params.origin
            );
            return None;
        }
        if let Err(e) = cp.verify_signature(&self.params.log.log_key) {
            warn!(
                %log,
                "peer {url}: the checkpoint at size {} has no valid log signature ({e}); not evidence, skipped",
                cp.checkpoint.size
            );
            return None;
        }
        Some(cp)
    }

    /// Checks one log-signed peer checkpoint against the verified view: raises `split-view`, or
    /// remembers it when it is ahead.
    fn check_peer_checkpoint(
        &mut self,
        cx: &mut Ctx<'_>,
        url: &str,
        cp: &SignedCheckpoint,
    ) -> Result<(), EngineError> {
        let log = self.params.name.clone();
        let vs = self.progress.verified_size;
        let vroot = self.verified_root()?;
        let (ps, proot) = (cp.checkpoint.size, cp.checkpoint.root);
        let check = match self.compare_with_verified(ps, &proot, vs, &vroot) {
            PeerVerdict::Consistent => {
                debug!(%log, "peer {url}: size {ps} is consistent with the verified size {vs}");
                return Ok(());
            }
            PeerVerdict::Ahead => {
                info!(%log, "peer {url}: size {ps} is ahead of the verified size {vs}; checked once a sync reaches it");
                self.peers.remember(url, cp.clone());
                return Ok(());
            }
            PeerVerdict::Unknown(why) => {
                warn!(%log, "peer {url}: size {ps} cannot be checked against the verified size {vs} ({why}); skipped");
                return Ok(());
            }
            PeerVerdict::Split(check) => check,
        };
        let detail = format!(
            "split view: peer {url} was shown a log-signed checkpoint of size {ps} with root {}; \
             this monitor verified size {vs} with root {}; failed check: {check}; \
             peer note (base64): {}",
            b64(&proot),
            b64(&vroot),
            B64.encode(cp.to_bytes()),
        );
        warn!(%log, "{detail}");
        let alert = Alert::new(Kind::SplitView, &self.params.origin, Some(ps), detail);
        // The evidence is the peer's checkpoint (origin, size, root) — not its signature lines,
        // which an auditor re-cosigns, and not the verified view, which grows — as shown by this
        // peer: one alert per peer and conflicting checkpoint, also across restarts.
        let disc = sha256_hex(format!("{url}\n{}", cp.checkpoint.to_text()).as_bytes());
        self.alert_now(cx, alert, &disc)
    }

    /// Compares a peer's (size, root) with the verified (size, root).
    fn compare_with_verified(
        &self,
        ps: u64,
        proot: &ledger_core::Hash,
        vs: u64,
        vroot: &ledger_core::Hash,
    ) -> PeerVerdict {
        if ps > vs {
            return PeerVerdict::Ahead;
        }
        let at = |size, root| Checkpoint {
            origin: self.params.origin.clone(),
            size,
            root,
        };
        match compare(self.params.log.hash, &at(ps, *proot), &at(vs, *vroot)) {
            Ok(Agreement::Consistent) => return PeerVerdict::Consistent,
            Ok(Agreement::NeedsProof { .. }) => {}
            Err(Contradiction::SameSizeDifferentRoots { .. }) => {
                return PeerVerdict::Split("same size, different roots".into())
            }
            Err(e) => return PeerVerdict::Split(e.to_string()),
        }
        match self.tile_consistency(ps, proot, vs, vroot) {
            TileCheck::Consistent => PeerVerdict::Consistent,
            TileCheck::Inconsistent(why) => PeerVerdict::Split(format!(
                "not a prefix of the verified tree (consistency proof from the log's hash tiles \
                 at size {vs}: {why})"
            )),
            TileCheck::Unavailable(why) => PeerVerdict::Unknown(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use ledger_core::checkpoint::Checkpoint;
    use ledger_core::testkit::test_key;

    const ORIGIN: &str = "example.com/log";

    fn params(extra: &str) -> LogParams {
        let key = test_key(ORIGIN).verifier();
        let text = format!(
            "[[log]]\nurl = \"http://127.0.0.1:1\"\norigin = \"{ORIGIN}\"\nvkey = \"{key}\"\n{extra}"
        );
        Config::parse(&text)
            .unwrap()
            .log_params()
            .unwrap()
            .remove(0)
    }

    fn signed(size: u64, root: u8) -> SignedCheckpoint {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: [root; 32],
        };
        SignedCheckpoint::sign(cp, &test_key(ORIGIN)).unwrap()
    }

    #[test]
    fn peer_urls_follow_the_auditor_gossip_path_without_repeats() {
        let p = Peers::new(&params(
            "auditors = [\"http://127.0.0.1:9001/\", \"https://aud.example/w\"]\n\
             peer_checkpoints = [\"https://mirror.example/log/checkpoint\", \
             \"http://127.0.0.1:9001/4d3203c8f35cdf600e475f55fede6081a703d3d322f208865fca2ec4f0e030f8/checkpoint\"]\n",
        ))
        .unwrap();
        // `printf 'example.com/log' | sha256sum`
        let h = "4d3203c8f35cdf600e475f55fede6081a703d3d322f208865fca2ec4f0e030f8";
        assert_eq!(
            p.urls(),
            [
                format!("http://127.0.0.1:9001/{h}/checkpoint"),
                format!("https://aud.example/w/{h}/checkpoint"),
                "https://mirror.example/log/checkpoint".to_string(),
            ]
        );
        assert!(p.client.is_some());
        let none = Peers::new(&params("")).unwrap();
        assert!(none.urls().is_empty() && none.client.is_none());
    }

    #[test]
    fn pending_checkpoints_come_due_once_the_view_reaches_them() {
        let mut p = Peers::new(&params(
            "peer_checkpoints = [\"http://a.example/checkpoint\", \"http://b.example/checkpoint\"]\n",
        ))
        .unwrap();
        let (a, b) = ("http://a.example/checkpoint", "http://b.example/checkpoint");
        p.remember(b, signed(600, 1));
        p.remember(a, signed(500, 2));
        assert!(p.take_due(300).is_empty(), "both still ahead");
        assert_eq!(p.pending.get(a).map(|c| c.checkpoint.size), Some(500));
        // The latest per peer replaces the earlier one.
        p.remember(a, signed(550, 3));
        assert_eq!(p.pending.get(a).map(|c| c.checkpoint.root), Some([3; 32]));
        let due = p.take_due(550);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, a);
        assert_eq!(due[0].1.checkpoint.size, 550);
        assert!(!p.pending.contains_key(a), "taken once");
        assert!(p.take_due(550).is_empty());
        let due = p.take_due(10_000);
        assert_eq!(
            due.iter()
                .map(|(u, c)| (u.as_str(), c.checkpoint.size))
                .collect::<Vec<_>>(),
            vec![(b, 600)]
        );
        assert!(p.take_due(10_000).is_empty());
    }

    #[test]
    fn unreachable_peer_is_a_fetch_error_not_a_panic() {
        let p = Peers::new(&params(
            "peer_checkpoints = [\"http://127.0.0.1:1/checkpoint\"]\n",
        ))
        .unwrap();
        match p.fetch("http://127.0.0.1:1/checkpoint") {
            Err(FetchError::Failed { url, reason }) => {
                assert_eq!(url, "http://127.0.0.1:1/checkpoint");
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_chain_names_the_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "outer: connection refused");
    }
}
