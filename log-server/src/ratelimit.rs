//! Per-client token-bucket rate limiting of the write endpoints (`POST /v1/add`,
//! `POST /v1/add-bundle`, `POST /v1/admin/enroll`), answered with SPEC §5 `rate-limited` (429)
//! and `Retry-After`.
//!
//! A bundle costs one token per leaf, so bundling never raises a client's sustained rate of
//! leaves: the request needs one token like any other (taken before the body is read), and its
//! other leaves are charged once it is parsed, driving the bucket into debt if need be
//! ([`RateLimiter::charge`]); the client's next write waits until the debt is paid off. A bundle
//! larger than the burst is thus allowed (it could never pass otherwise), but paid for.
//!
//! The client is the TCP peer address (the server is served with axum's `ConnectInfo`); headers
//! such as `X-Forwarded-For` are not trusted, so behind a reverse proxy every client shares the
//! proxy's bucket — rate-limit at the proxy instead, or leave this off. IPv6 peers are keyed by
//! their /64 prefix, since one host usually owns a whole /64. Reads are never limited here.
//!
//! The check runs before the body is read, so a refused request costs no parsing or signature
//! verification, and nothing refused is stored.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledger_core::problem::ProblemType;

use crate::problem::ApiError;

/// The routes (all `POST`) whose requests take a token.
pub const LIMITED_ROUTES: [&str; 3] = ["/v1/add", "/v1/add-bundle", "/v1/admin/enroll"];

/// Above this many tracked clients, buckets that have refilled completely are forgotten (a full
/// bucket is the same as no bucket), which keeps memory bounded by the clients that are active.
/// After a prune the threshold becomes twice what is left (never below this), so a flood of
/// distinct addresses costs amortised O(1) per request rather than a full scan each.
const PRUNE_ABOVE: usize = 65_536;

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    prune_at: usize,
}

/// A token-bucket limit: `per_s` tokens are added per second, up to `burst`; each limited request
/// takes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second per client (at least 1).
    pub per_s: u32,
    /// Bucket size: requests a client may make at once after being idle (at least 1).
    pub burst: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The shared limiter state: one bucket per client key. Cloning shares the buckets.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<Buckets>>,
}

impl RateLimiter {
    /// A limiter enforcing `limit` (values below 1 are raised to 1).
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit: RateLimit {
                per_s: limit.per_s.max(1),
                burst: limit.burst.max(1),
            },
            buckets: Arc::new(Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_ABOVE,
            })),
        }
    }

    /// The limit enforced.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one token for `client` at time `now`: `Ok(())` if there was one, else `Err(seconds)`
    /// until one will be available (at least 1, for `Retry-After`).
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let key = client_key(client);
        let rate = f64::from(self.limit.per_s);
        let burst = f64::from(self.limit.burst);
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        if buckets.map.len() >= buckets.prune_at && !buckets.map.contains_key(&key) {
            buckets
                .map
                .retain(|_, b| refill(b, now, rate, burst) < burst);
            buckets.prune_at = buckets.map.len().saturating_mul(2).max(PRUNE_ABOVE);
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let tokens = refill(bucket, now, rate, burst);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.updated = now;
            Ok(())
        } else {
            bucket.tokens = tokens;
            bucket.updated = now;
            // Whole seconds, rounded up, never 0: Retry-After has second granularity.
            let wait = ((1.0 - tokens) / rate).ceil().max(1.0);
            Err(wait as u64)
        }
    }
}

impl RateLimiter {
    /// Charges `tokens` more to `client`'s bucket at `now` (the rest of a bundle whose request
    /// already took one token), going below zero if need be: later requests are refused until
    /// the bucket refills above one token again. `None` is the shared bucket of requests without
    /// a known peer address, as in [`middleware`].
    pub fn charge(&self, client: Option<IpAddr>, tokens: u32, now: Instant) {
        if tokens == 0 {
            return;
        }
        let key = client_key(client.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        let rate = f64::from(self.limit.per_s);
        let burst = f64::from(self.limit.burst);
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = guard.map.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        bucket.tokens = refill(bucket, now, rate, burst) - f64::from(tokens);
        bucket.updated = now;
    }
}

/// The bucket's level at `now` (not stored).
fn refill(b: &Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

/// The bucket key of a peer: the IPv4 address (IPv4-mapped IPv6 included), or the /64 of IPv6.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Axum middleware: takes a token for `POST` on [`LIMITED_ROUTES`] when a limiter is configured;
/// refuses with `rate-limited` (429) and `Retry-After` when the client's bucket is empty. Requests
/// without a known peer address (in-process tests) share one bucket.
pub async fn middleware(
    State(limiter): State<Option<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = &limiter {
        let limited = req.method() == Method::POST
            && req
                .extensions()
                .get::<MatchedPath>()
                .is_some_and(|p| LIMITED_ROUTES.contains(&p.as_str()));
        if limited {
            if let Err(secs) = limiter.check(peer_ip(&req), Instant::now()) {
                return rate_limited(limiter.limit(), secs).into_response();
            }
        }
    }
    next.run(req).await
}

/// The `rate-limited` problem with `Retry-After: secs`.
pub fn rate_limited(limit: RateLimit, secs: u64) -> ApiError {
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            ProblemType::RateLimited,
            format!(
                "too many write requests from this address (limit {} per second, burst {}); retry after {secs} s",
                limit.per_s, limit.burst
            ),
        )
    }
}

/// The client address a limiter charges: the peer of the connection (`ConnectInfo`), or the
/// unspecified address for a request that came without one (an in-process call).
pub fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn burst_then_refill_at_rate() {
        let l = RateLimiter::new(RateLimit { per_s: 2, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip("10.0.0.1"), t0), Ok(()));
        }
        assert_eq!(l.check(ip("10.0.0.1"), t0), Err(1));
        // Another client has its own bucket.
        assert_eq!(l.check(ip("10.0.0.2"), t0), Ok(()));
        // 0.5 s at 2/s refills one token, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.check(ip("10.0.0.1"), t1), Ok(()));
        assert_eq!(l.check(ip("10.0.0.1"), t1), Err(1));
        // Long idle refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(l.check(ip("10.0.0.1"), t2), Ok(()));
        }
        assert!(l.check(ip("10.0.0.1"), t2).is_err());
    }

    #[test]
    fn a_bundle_is_charged_per_leaf_into_debt() {
        let l = RateLimiter::new(RateLimit {
            per_s: 10,
            burst: 5,
        });
        let t0 = Instant::now();
        let a = ip("10.0.0.9");
        assert_eq!(l.check(a, t0), Ok(()));
        l.charge(Some(a), 19, t0); // a bundle of 20 leaves: 5 - 20 = -15 tokens
        assert_eq!(l.check(a, t0), Err(2));
        // 1.5 s at 10/s pays the debt off to 0: still no token.
        assert!(l.check(a, t0 + Duration::from_millis(1500)).is_err());
        assert_eq!(l.check(a, t0 + Duration::from_millis(1700)), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_for_slow_rates() {
        let l = RateLimiter::new(RateLimit { per_s: 1, burst: 1 });
        let t0 = Instant::now();
        assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        assert_eq!(l.check(ip("192.0.2.1"), t0), Err(1));
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_millis(999)),
            Err(1)
        );
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_millis(1999)),
            Ok(())
        );
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_v4_by_the_v4() {
        let l = RateLimiter::new(RateLimit { per_s: 1, burst: 1 });
        let t0 = Instant::now();
        assert_eq!(l.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert!(l.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(l.check(ip("198.51.100.7"), t0), Ok(()));
        assert!(l.check(ip("::ffff:198.51.100.7"), t0).is_err());
    }

    #[test]
    fn refilled_buckets_are_pruned_when_many_clients_are_tracked() {
        let fill = |l: &RateLimiter, t: Instant| {
            for i in 0..PRUNE_ABOVE as u32 {
                assert_eq!(l.check(IpAddr::from(i.to_be_bytes()), t), Ok(()));
            }
        };
        let state = |l: &RateLimiter| {
            let b = l.buckets.lock().expect("lock");
            (b.map.len(), b.prune_at)
        };
        let t0 = Instant::now();
        // Every old bucket has refilled when the next new client comes: all are forgotten.
        let l = RateLimiter::new(RateLimit { per_s: 1, burst: 1 });
        fill(&l, t0);
        assert_eq!(state(&l), (PRUNE_ABOVE, PRUNE_ABOVE));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(l.check(ip("203.0.113.1"), t1), Ok(()));
        assert_eq!(state(&l), (1, PRUNE_ABOVE));
        // A pruned client starts again with a full bucket.
        assert_eq!(l.check(IpAddr::from(7u32.to_be_bytes()), t1), Ok(()));

        // All still empty: nothing is forgotten, and the next scan waits for twice as many.
        let l = RateLimiter::new(RateLimit { per_s: 1, burst: 1 });
        fill(&l, t0);
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(l.check(ip("203.0.113.1"), t1), Ok(()));
        assert_eq!(state(&l), (PRUNE_ABOVE + 1, 2 * PRUNE_ABOVE));
    }

    #[test]
    fn refusal_is_429_rate_limited_with_retry_after() {
        let e = rate_limited(RateLimit { per_s: 1, burst: 2 }, 3);
        assert_eq!(e.status(), 429);
        assert_eq!(e.problem().type_, "urn:mimi-ledger:problem:rate-limited");
        let resp = e.into_response();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()[axum::http::header::RETRY_AFTER], "3");
    }
}
