//! Integration tests of the testkit fixtures against the real tools.

mod anvil;
mod cluster;
mod postgres;
mod softhsm;
