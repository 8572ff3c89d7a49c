//! API tests: the real router served on a loopback port, against real Postgres and anvil.

mod auditors;
mod batches;
mod harness;
mod merchants;
mod onchain;
mod ops;
mod payments;
mod reconciliation;
mod schemathesis;
mod web;
mod webhooks;
