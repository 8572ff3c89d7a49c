//! The REST face of settle.
//!
//! This crate owns the HTTP surface: routes, authentication, request
//! validation and the one error type every handler returns, rendered as
//! RFC 7807 `application/problem+json` with a stable machine-readable `code`.
//!
//! It must never reach into the relayer's or the indexer's tables: it calls
//! their libraries. It must never answer a client's mistake with a 500, and
//! never put internal details (SQL, RPC errors, key labels) in a response.

pub mod problem;

pub use problem::{ApiError, ErrorCode};
