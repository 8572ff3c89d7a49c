//! Gas of real settlement transactions on anvil, from their receipts: the 21,000 base cost, the
//! calldata and the execution, exactly what a sender pays for.
//!
//! "warm" payees already hold a balance of the token in the contract (a first, unmeasured batch
//! credits them), so their credit rewrites a non-zero slot; "cold" payees hold nothing yet. "push"
//! payees opted in to receive the token at settlement instead of a balance. The baseline is
//! [`NaiveSplitter`], deployed here: one ERC-20 `transfer` per payee from a balance it holds, its
//! warm payees already holding the token.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use settle_contracts::SplitSettlement;

use super::{
    BenchArgs, Report,
    env::{BenchEnv, NATIVE, NaiveSplitter, one_credit_each, payees},
    plot,
};

/// The EVM's own price of a warm credit: a cold read (2,100) and a non-zero to non-zero write
/// (2,900) of the payee's balance slot, plus the payee's 20 address bytes in calldata (16 each).
pub(crate) const FLOOR_WARM: u64 = 2_100 + 2_900 + 20 * 16;
/// The same for a cold credit: the write is zero to non-zero (20,000).
pub(crate) const FLOOR_COLD: u64 = 2_100 + 20_000 + 20 * 16;

/// What each payee gets per credit: at least the scale (1,000,000), so that every leg's rounded
/// portion is non-zero whatever the number of legs (a zero portion would leave a "warm" payee cold).
const SEED: u128 = 1_000_000;

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
struct Case {
    erc20: bool,
    push: bool,
    warm: bool,
}

impl Case {
    fn name(self) -> String {
        format!(
            "{}_{}_{}",
            if self.erc20 { "erc20" } else { "native" },
            if self.push { "push" } else { "pull" },
            if self.warm { "warm" } else { "cold" }
        )
    }
}

/// Runs the gas section.
pub(crate) async fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let env = BenchEnv::start(args, "gas").await?;
    let sizes: &[usize] = if args.quick {
        &[1, 10, 100]
    } else {
        &[1, 10, 50, 100, 200, 500]
    };
    let cases = [
        Case {
            erc20: true,
            push: false,
            warm: false,
        },
        Case {
            erc20: true,
            push: false,
            warm: true,
        },
        Case {
            erc20: false,
            push: false,
            warm: false,
        },
        Case {
            erc20: false,
            push: false,
            warm: true,
        },
        Case {
            erc20: true,
            push: true,
            warm: true,
        },
        Case {
            erc20: false,
            push: true,
            warm: true,
        },
    ];
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for case in cases {
        let mut points = Vec::new();
        for &n in sizes {
            // Opting in costs one transaction per payee; push is measured up to 100 payees.
            if case.push && n > 100 {
                continue;
            }
            let gas = measure(&env, case, n).await?;
            let per_credit = gas.checked_div(u64::try_from(n)?).unwrap_or(0);
            report.set(&format!("gas_tx_{}_{n}", case.name()), gas);
            report.set(&format!("gas_per_credit_{}_{n}", case.name()), per_credit);
            points.push((n as f64, per_credit as f64));
        }
        series.push((case.name().replace('_', " "), points));
    }
    let mut baseline_points = Vec::new();
    let mut baseline_cold = Vec::new();
    for &n in sizes {
        let warm = baseline(&env, n, true).await?;
        let cold = baseline(&env, n, false).await?;
        let n64 = u64::try_from(n)?;
        report.set(
            &format!("gas_per_credit_baseline_warm_{n}"),
            warm.checked_div(n64).unwrap_or(0),
        );
        report.set(
            &format!("gas_per_credit_baseline_cold_{n}"),
            cold.checked_div(n64).unwrap_or(0),
        );
        baseline_points.push((n as f64, warm.checked_div(n64).unwrap_or(0) as f64));
        baseline_cold.push((n as f64, cold.checked_div(n64).unwrap_or(0) as f64));
    }
    series.push((
        "baseline: transfer per payee, warm".to_owned(),
        baseline_points,
    ));
    series.push((
        "baseline: transfer per payee, cold".to_owned(),
        baseline_cold,
    ));
    series.push((
        "EVM floor, warm credit".to_owned(),
        sizes
            .iter()
            .map(|&n| (n as f64, FLOOR_WARM as f64))
            .collect(),
    ));

    // The named figures.
    if let (Some(ours), Some(base)) = (
        report.number("gas_per_credit_erc20_pull_warm_100"),
        report.number("gas_per_credit_baseline_warm_100"),
    ) {
        report.set("gas_per_credit_warm_100", ours);
        report.set(
            "gas_baseline_ratio_100",
            ((ours / base) * 1000.0).round() / 1000.0,
        );
    }
    if let Some(cold) = report.number("gas_per_credit_erc20_pull_cold_100") {
        report.set("gas_per_credit_cold_100", cold);
    }
    if let (Some(tx100), Some(tx10)) = (
        report.number("gas_tx_erc20_pull_warm_100"),
        report.number("gas_tx_erc20_pull_warm_10"),
    ) {
        report.set("gas_marginal_credit_warm", ((tx100 - tx10) / 90.0).round());
    }
    report.set("gas_floor_per_credit_warm", FLOOR_WARM);
    report.set("gas_floor_per_credit_cold", FLOOR_COLD);
    let realistic = realistic(&env).await?;
    report.set("gas_tx_realistic", realistic);
    report.set(
        "gas_per_payment_realistic",
        realistic.checked_div(500).unwrap_or(0),
    );
    plot::lines(
        &args.out.join("gas_per_credit.png"),
        "Gas per payee credit (transaction gas / payees)",
        "payees in the batch",
        "gas per credit",
        &series,
    )?;
    Ok(())
}

/// Gas of a batch paying `n` payees of `case` once each.
async fn measure(env: &BenchEnv, case: Case, n: usize) -> anyhow::Result<u64> {
    let token = if case.erc20 { env.erc20 } else { NATIVE };
    let who = payees(&format!("{}-{n}", case.name()), n);
    if case.warm {
        env.settle(token, &one_credit_each(&who, SEED)).await?;
    }
    if case.push {
        opt_in(env, token, &who).await?;
    }
    env.settle(token, &one_credit_each(&who, SEED)).await
}

/// Each payee (impersonated on anvil) asks for its credits in `token` to be pushed.
async fn opt_in(env: &BenchEnv, token: Address, who: &[Address]) -> anyhow::Result<()> {
    let plain = ProviderBuilder::new().connect_http(env.rpc().parse()?);
    let input = SplitSettlement::setPushPreferenceCall { token, push: true }.abi_encode();
    for &payee in who {
        let _: () = plain
            .raw_request("anvil_impersonateAccount".into(), (payee,))
            .await?;
        let _: () = plain
            .raw_request(
                "anvil_setBalance".into(),
                (payee, U256::from(10u128.pow(18))),
            )
            .await?;
        let request = TransactionRequest::default()
            .with_from(payee)
            .with_to(env.manifest.settlement)
            .with_input(input.clone());
        let receipt = plain.send_transaction(request).await?.get_receipt().await?;
        anyhow::ensure!(receipt.status(), "setPushPreference reverted for {payee}");
    }
    Ok(())
}

/// Gas of the baseline paying `n` payees once each with one `transfer`.
async fn baseline(env: &BenchEnv, n: usize, warm: bool) -> anyhow::Result<u64> {
    let splitter = NaiveSplitter::deploy(&env.provider).await?;
    let token = super::env::BenchToken::new(env.erc20, &env.provider);
    let receipt = token
        .mint(*splitter.address(), U256::from(10u128.pow(24)))
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "minting to the baseline reverted");
    let who = payees(&format!("baseline-{warm}-{n}"), n);
    let pay = |amount: u64| {
        let amounts = vec![U256::from(amount); who.len()];
        splitter.pay(env.erc20, who.clone(), amounts)
    };
    if warm {
        let seed = pay(1).send().await?.get_receipt().await?;
        anyhow::ensure!(seed.status(), "the baseline's seed payment reverted");
    }
    let receipt = pay(1_000).send().await?.get_receipt().await?;
    anyhow::ensure!(receipt.status(), "the baseline payment reverted");
    Ok(receipt.gas_used)
}

/// The realistic batch: 500 payments in the bench ERC-20, each split 90% to one of 50 merchants,
/// 7% to the platform and 3% to one of 20 referrers, all warm.
async fn realistic(env: &BenchEnv) -> anyhow::Result<u64> {
    let merchants = payees("realistic-merchant", 50);
    let referrers = payees("realistic-referrer", 20);
    let platform = Address::repeat_byte(0xc0);
    let mut everyone = merchants.clone();
    everyone.extend(&referrers);
    everyone.push(platform);
    everyone.sort_unstable();
    env.settle(env.erc20, &one_credit_each(&everyone, SEED))
        .await?;
    let payments: Vec<(u128, Vec<(Address, u32)>)> = (0..500usize)
        .map(|i| {
            let amount = 1_000_000_000u128.saturating_add(u128::try_from(i).unwrap_or(0));
            let merchant = merchants[i.checked_rem(50).unwrap_or(0)];
            let referrer = referrers[i.checked_rem(20).unwrap_or(0)];
            (
                amount,
                vec![(merchant, 900_000), (platform, 70_000), (referrer, 30_000)],
            )
        })
        .collect();
    let g = env.settle(env.erc20, &payments).await;
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("DEBUG rpc {}", env.rpc());
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    }
    g
}
