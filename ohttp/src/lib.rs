//! # ledger-ohttp
//!
//! The Oblivious HTTP (RFC 9458) pieces that mimi-ledger's gateway (in `log-server`), relay
//! (`ohttp-relay`) and client (`ledger lookup --relay`) share, so that all three agree on one
//! format and one suite (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM or
//! ChaCha20-Poly1305):
//!
//! - [`config`]: the `application/ohttp-keys` key configuration list (RFC 9540 §3), parsed
//!   and checked without trusting the peer.
//! - [`keys`]: the gateway's key ring: key files (0600, through `ledger-secret-file`), rotation
//!   and the overlap during which the previous key stays valid.
//! - [`replay`]: the bounded window of request encapsulations already answered (RFC 9458 §6.5).
//! - [`message`]: the Binary HTTP (RFC 9292) requests and responses carried inside.
//! - [`client`]: encapsulation for a pinned key configuration.
//!
//! See docs/privacy.md for what each party learns.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod keys;
pub mod message;
pub mod replay;

/// The media type of an encapsulated request (RFC 9458 §9.2).
pub const REQUEST_MEDIA_TYPE: &str = "message/ohttp-req";
/// The media type of an encapsulated response (RFC 9458 §9.3).
pub const RESPONSE_MEDIA_TYPE: &str = "message/ohttp-res";
/// The media type of a key configuration list (RFC 9540 §3).
pub const KEYS_MEDIA_TYPE: &str = "application/ohttp-keys";
/// Where the gateway takes encapsulated requests.
pub const GATEWAY_PATH: &str = "/.well-known/ohttp-gateway";
/// Where the gateway serves its key configuration list.
pub const KEYS_PATH: &str = "/ohttp-keys";
/// The largest encapsulated request or response body the relay and the gateway read.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
