//! API tests: the real router served on a loopback port, against real Postgres and anvil.

mod harness;
mod ops;
mod schemathesis;
