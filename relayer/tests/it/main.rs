//! Relayer integration tests against real SoftHSM2 tokens and a real anvil chain.

mod audit;
mod batcher;
mod chain;
mod hsm;
mod intake;
mod keys;
mod query;
mod rotation;
mod submitter;
