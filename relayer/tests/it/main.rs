//! Relayer integration tests against real SoftHSM2 tokens and a real anvil chain.

mod batcher;
mod hsm;
mod intake;
