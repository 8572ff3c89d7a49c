//! Relayer integration tests against real SoftHSM2 tokens and a real anvil chain.

mod audit;
mod batcher;
mod hsm;
mod intake;
