//! Integration tests of the Rust mirror against the shared test vectors
//! (`contracts/vectors`) and against the compiled contract on anvil.

// Test arithmetic on bounded, generated values (shares below 2 * SCALE, indexes below 2^16).
#![allow(clippy::arithmetic_side_effects)]

mod anvil;
mod fixtures;
mod vectors;
