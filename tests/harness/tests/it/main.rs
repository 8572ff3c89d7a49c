//! Integration tests of the testkit fixtures against the real tools.

mod anvil;
mod postgres;
mod softhsm;
