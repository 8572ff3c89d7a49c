//! `settle` command tests: the built binary against real SoftHSM2 tokens and Postgres.

mod api_keys;
mod audit;
mod bench;
mod browser;
mod chains;
mod deploy;
mod dev;
mod keys;
mod serve;
mod upgrade;
