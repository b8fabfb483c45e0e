//! Reading a log's C2SP static API (c2sp.org/tlog-tiles): `/checkpoint`, `/tile/<L>/<N>[.p/<W>]`,
//! `/tile/entries/<N>[.p/<W>]`, from the log itself, a mirror or a static copy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ledger_core::tile::{Tile, TileError, TileReader};

/// A fetch failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Transport failure or an unexpected status, after retries.
    #[error("GET {url}: {reason}")]
    Failed {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// 404: the resource does not exist (yet).
    #[error("GET {url}: 404 not found")]
    NotFound {
        /// The URL.
        url: String,
    },
}

/// A blocking HTTP reader of one log's tiles.
#[derive(Clone)]
pub struct TileClient {
    base: String,
    client: reqwest::blocking::Client,
}

/// How many times a transient failure is retried.
const ATTEMPTS: u32 = 4;

impl TileClient {
    /// A reader for the tiles under `base` (no trailing `/`).
    pub fn new(base: &str) -> Result<TileClient, FetchError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("mimi-ledger-monitor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Failed {
                url: base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(TileClient {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// `GET <base>/<path>`; retries transport errors and 5xx/429 with backoff.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            match self.client.get(&url).send() {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        match resp.bytes() {
                            Ok(b) => return Ok(b.to_vec()),
                            Err(e) => last = e.to_string(),
                        }
                    } else if status.as_u16() == 404 {
                        return Err(FetchError::NotFound { url });
                    } else if status.is_server_error() || status.as_u16() == 429 {
                        last = format!("HTTP {status}");
                    } else {
                        return Err(FetchError::Failed {
                            url,
                            reason: format!("HTTP {status}"),
                        });
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(FetchError::Failed { url, reason: last })
    }
}

/// The core's [`TileReader`] over one log's hash tiles, for one check: fetches what the core's
/// authenticating reader asks for (in parallel when it asks for several) and keeps only the tiles
/// it has authenticated, so the root and a proof computed one after the other fetch each tile once.
pub struct FetchedTiles<'a> {
    client: &'a TileClient,
    checked: Mutex<HashMap<Tile, Vec<u8>>>,
}

impl<'a> FetchedTiles<'a> {
    /// An empty cache over `client`.
    pub fn new(client: &'a TileClient) -> Self {
        FetchedTiles {
            client,
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn fetch(&self, tile: &Tile) -> Result<Vec<u8>, TileError> {
        let cached = self.checked.lock().ok().and_then(|c| c.get(tile).cloned());
        if let Some(data) = cached {
            return Ok(data);
        }
        self.client.get(&tile.path()).map_err(|e| match e {
            FetchError::NotFound { .. } => TileError::NotFound { path: tile.path() },
            FetchError::Failed { .. } => TileError::Unreadable {
                path: tile.path(),
                reason: e.to_string(),
            },
        })
    }
}

impl TileReader for FetchedTiles<'_> {
    fn read_tiles(&self, tiles: &[Tile]) -> Vec<Result<Vec<u8>, TileError>> {
        if tiles.len() <= 1 {
            return tiles.iter().map(|t| self.fetch(t)).collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = tiles
                .iter()
                .map(|t| s.spawn(move || self.fetch(t)))
                .collect();
            handles
                .into_iter()
                .zip(tiles)
                .map(|(h, t)| {
                    h.join().unwrap_or_else(|_| {
                        Err(TileError::Unreadable {
                            path: t.path(),
                            reason: "fetch thread panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }

    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        if let Ok(mut c) = self.checked.lock() {
            for (t, d) in tiles.iter().zip(data) {
                c.entry(*t).or_insert_with(|| d.clone());
            }
        }
    }
}
