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

/// The built `settle` binary with a test token's module and PIN, the test Postgres server and quiet
/// logs in its environment.
fn settle_on(token: &settle_testkit::TestToken) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_settle"));
    command
        .env(
            settle_testkit::softhsm::CONF_ENV,
            std::env::var_os(settle_testkit::softhsm::CONF_ENV)
                .expect("SOFTHSM2_CONF is set by .cargo/config.toml"),
        )
        .env("SETTLE_HSM_PIN", token.user_pin())
        .env("SETTLE_PKCS11_MODULE", token.module_path())
        .env("SETTLE_DATABASE_URL", settle_testkit::postgres::admin_url())
        .env("SETTLE_LOG", "warn");
    command
}
