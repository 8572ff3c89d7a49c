//! Conservation over a long pseudo-random sequence of calls, failures included: for every
//! token the internal balances sum to what the contract says it holds, and for the native
//! coin that is exactly what its account gained.

use ink::U256;

use super::*;
use crate::FUNDING_PULL;

/// xorshift64*: small, deterministic, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Shares for `legs` legs summing to the scale, each at least 1.
fn shares(rng: &mut Rng, legs: usize) -> Vec<u32> {
    let mut cuts: Vec<u32> = (1..legs)
        .map(|_| u32::try_from(1 + rng.below(999_998)).unwrap())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for cut in cuts.into_iter().chain([1_000_000]) {
        out.push(cut - last);
        last = cut;
    }
    out
}

#[ink::test]
fn balances_always_sum_to_what_the_contract_holds() {
    // given a configured contract, five accounts and a fixed seed
    let mut w = World::new();
    let start = engine_balance(contract());
    let mut accounts = payees(4);
    accounts.push(funder());
    accounts.sort();
    let tokens = [NATIVE, token()];
    let mut rng = Rng(0x5e77_1e5e_771e_0001);
    let mut nonce = 0u64;
    let mut ok = [0usize; 4];
    let mut refused = 0usize;

    // when 400 random calls run (deposits, settlements, withdrawals, replays)
    for step in 0..400 {
        let t = tokens[usize::try_from(rng.below(2)).unwrap()];
        let who = accounts[usize::try_from(rng.below(5)).unwrap()];
        let amount = u128::from(1 + rng.below(5_000));
        let (kind, result) = match rng.below(5) {
            0 if t == NATIVE => (0, paying(stranger(), amount, || w.c.deposit_native(who))),
            0 => {
                as_caller(custodian());
                (0, w.c.deposit(t, who, amount))
            }
            1 | 2 => {
                let n = usize::try_from(1 + rng.below(5)).unwrap();
                let mut chosen: Vec<Address> = accounts.clone();
                while chosen.len() > n {
                    let drop =
                        usize::try_from(rng.below(u64::try_from(chosen.len()).unwrap())).unwrap();
                    chosen.remove(drop);
                }
                let payments: Vec<Pay> = (0..1 + rng.below(3))
                    .map(|i| {
                        let legs = usize::try_from(1 + rng.below(4)).unwrap();
                        let legs: Vec<(u16, u32)> = shares(&mut rng, legs)
                            .into_iter()
                            .map(|s| {
                                (
                                    u16::try_from(rng.below(u64::try_from(n).unwrap())).unwrap(),
                                    s,
                                )
                            })
                            .collect();
                        pay(
                            u8::try_from(i).unwrap(),
                            u128::from(1 + rng.below(3_000)),
                            &legs,
                        )
                    })
                    .collect();
                let pull = t == NATIVE && rng.below(2) == 0;
                let funding = if pull { FUNDING_PULL } else { FUNDING_DEPOSIT };
                // Now and then replay an old nonce.
                let n_used = if nonce > 0 && rng.below(8) == 0 {
                    nonce - 1
                } else {
                    nonce
                };
                let mut b = batch(n_used, t, funding, chosen, &payments);
                b.funder = who;
                nonce += 1;
                let signature = w.sign(&b);
                let total: u128 = payments.iter().map(|p| p.amount).sum();
                let result = if pull {
                    paying(who, total, || w.c.settle_batch(b.clone(), signature))
                } else {
                    as_caller(stranger());
                    w.c.settle_batch(b, signature)
                }
                .map(|_| ());
                (1, result)
            }
            3 => {
                as_caller(who);
                let amount = amount.min(w.c.balance_of(t, who) + u128::from(rng.below(2)));
                (2, w.c.withdraw(t, amount.max(1), addr(0x77)))
            }
            _ => {
                as_caller(w.signer.address);
                (3, w.c.invalidate_nonce(U256::from(rng.below(nonce + 1))))
            }
        };
        match result {
            Ok(()) => ok[kind] += 1,
            Err(_) => refused += 1,
        }
        // Some days pass now and then, so the daily cap resets.
        if rng.below(50) == 0 {
            set_now(now() + 86_400);
        }

        // then after every step, for every token, balances sum to what is held
        for t in tokens {
            let sum: u128 = accounts.iter().map(|a| w.c.balance_of(t, *a)).sum();
            assert_eq!(sum, w.c.held(t), "step {step}, token {t:?}");
        }
        assert_eq!(
            engine_balance(contract()),
            start + U256::from(w.c.held(NATIVE)),
            "step {step}"
        );
    }
    // and the sequence exercised every kind of call, successes and refusals alike
    assert!(ok.iter().all(|n| *n > 10), "successes per kind: {ok:?}");
    assert!(refused > 10, "refused: {refused}");
}
