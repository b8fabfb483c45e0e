//! # log-server
//!
//! The mimi-ledger log (SPEC §3–§5): a durable Merkle log (tile files and an fjall index) that admits signed entries,
//! answers receipts only once they are synced and covered by a signed checkpoint, serves the C2SP
//! tlog-tiles read API, the JSON API with proofs, and Discovery Provider lookups.
//!
//! `main.rs` only parses the configuration and calls [`server::run`]; everything else lives in
//! these modules so that tests and the load generator can drive the log in-process.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod config;
pub mod disk;
pub mod enroll;
pub mod error;
pub mod explorer;
pub mod fault;
pub mod gateway;
pub mod issuer;
pub mod keys;
pub mod ledger;
pub mod lock;
pub mod lookup;
pub mod map;
pub mod metrics;
pub mod mirror;
pub mod openapi;
pub mod problem;
pub mod publish;
pub mod ratelimit;
pub mod routes;
pub mod sequencer;
pub mod server;
pub mod storage;
pub mod submit;
pub mod tiles;
pub mod tokens;
pub mod witness;
