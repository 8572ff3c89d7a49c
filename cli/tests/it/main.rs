//! `settle` command tests: the built binary against real SoftHSM2 tokens and Postgres.

mod api_keys;
mod deploy;
mod dev;
mod keys;
mod serve;
mod upgrade;
