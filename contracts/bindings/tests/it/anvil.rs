//! The Rust mirror against the compiled contract (committed artifact) on anvil:
//! the shared vectors, then random valid and invalid batches.

use alloy::{
    primitives::{Address, B256, U256},
    providers::DynProvider,
};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use settle_contracts::{
    Batch, Leg, Payment, PaymentError, SplitSettlement,
    SplitSettlement::{SplitSettlementErrors, SplitSettlementInstance},
    batch_credits,
    digest::batch_digest,
    encode_payments,
    split::{SCALE, SplitError},
};
use settle_testkit::TestChain;
use tokio::runtime::Handle;

use crate::fixtures::batch_cases;

/// Random batches per property; each costs two `eth_call`s.
const CASES: u32 = 64;

type Contract = SplitSettlementInstance<DynProvider>;

/// The implementation, deployed directly: `batchDigest` and `previewCredits`
/// need no initialised state, and the EIP-712 domain is its own address.
async fn deploy(chain: &TestChain) -> Contract {
    SplitSettlement::deploy(chain.provider())
        .await
        .expect("deploy SplitSettlement from the committed artifact")
}

fn credits_u256(credits: &[u128]) -> Vec<U256> {
    credits.iter().map(|&c| U256::from(c)).collect()
}

#[tokio::test]
async fn contract_agrees_with_rust_and_vectors() {
    let chain = TestChain::start().expect("anvil");
    let contract = deploy(&chain).await;
    let cases = batch_cases();
    assert!(!cases.is_empty());
    for case in cases {
        let digest = contract
            .batchDigest(case.batch.clone())
            .call()
            .await
            .expect("batchDigest of a valid vector");
        assert_eq!(
            digest,
            batch_digest(&case.batch, chain.chain_id(), *contract.address()),
            "{}: digest",
            case.name
        );
        let preview = contract
            .previewCredits(case.batch.clone())
            .call()
            .await
            .expect("previewCredits of a valid vector");
        let (credits, total) =
            batch_credits(case.batch.payees.len(), &case.payments).expect("valid vector");
        assert_eq!(preview.credits, credits, "{}: credits", case.name);
        assert_eq!(preview.total, U256::from(total), "{}: total", case.name);
        assert_eq!(
            preview.credits,
            credits_u256(&case.expected.credits),
            "{}: credits vs vector",
            case.name
        );
        assert_eq!(
            preview.total,
            U256::from(case.expected.total),
            "{}: total vs vector",
            case.name
        );
    }
}

// ------------------------------------------------------------------ strategies

/// A random batch and the payments packed into it.
#[derive(Debug, Clone)]
struct Case {
    batch: Batch,
    payments: Vec<Payment>,
}

impl Case {
    fn repack(&mut self) {
        self.batch.payments = encode_payments(&self.payments).expect("at most 5 legs per payment");
    }
}

// alloy's `arbitrary` feature would add `Arbitrary` impls, but for the whole
// workspace build; byte arrays are enough here.
fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from)
}

fn word() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

/// 1..=8 distinct non-zero payees, ascending (byte order is numeric order).
fn payees() -> impl Strategy<Value = Vec<Address>> {
    prop::collection::btree_set(address().prop_filter("non-zero", |a| !a.is_zero()), 1..=8)
        .prop_map(|set| set.into_iter().collect())
}

/// `legs` non-zero shares summing to `SCALE`: the gaps between sorted cut points.
fn shares(legs: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::btree_set(1..SCALE, legs - 1).prop_map(|cuts| {
        let mut previous = 0;
        cuts.into_iter()
            .chain([SCALE])
            .map(|cut| {
                let share = cut - previous;
                previous = cut;
                share
            })
            .collect()
    })
}

/// Amounts up to `max`, biased towards small amounts (where rounding shows) and `max`.
fn amount(max: u128) -> impl Strategy<Value = u128> {
    prop_oneof![
        3 => 1..=max,
        2 => 1..=2_000_001u128,
        1 => Just(max),
    ]
}

fn payment(payee_count: usize, max_amount: u128) -> impl Strategy<Value = Payment> {
    let payee_index = 0..u16::try_from(payee_count).expect("at most 8 payees");
    let legs = (1usize..=5)
        .prop_flat_map(move |n| (shares(n), prop::collection::vec(payee_index.clone(), n)));
    (word(), amount(max_amount), legs).prop_map(|(payment_id, amount, (shares, payees))| Payment {
        payment_id,
        amount,
        legs: payees
            .into_iter()
            .zip(shares)
            .map(|(payee, share)| Leg { payee, share })
            .collect(),
    })
}

/// A valid batch: 1..=6 payments of 1..=5 legs. Amounts are capped at
/// `u128::MAX / payments` so the total fits the mirror's `u128` (see the
/// `#[ignore]`d test below for what happens above).
fn valid_case() -> impl Strategy<Value = Case> {
    (payees(), 1usize..=6).prop_flat_map(|(payees, n)| {
        let max = u128::MAX / u128::try_from(n).expect("small");
        (
            prop::collection::vec(payment(payees.len(), max), n),
            word(),
            any::<[u8; 32]>().prop_map(U256::from_be_bytes),
            any::<u64>(),
            address(),
            address(),
            any::<u8>(),
            Just(payees),
        )
            .prop_map(
                |(payments, batch_id, nonce, deadline, token, funder, funding, payees)| {
                    let mut case = Case {
                        batch: Batch {
                            batchId: batch_id,
                            nonce,
                            deadline,
                            token,
                            funder,
                            funding,
                            payees,
                            payments: Default::default(),
                        },
                        payments,
                    };
                    case.repack();
                    case
                },
            )
    })
}

/// Runs `check` on `CASES` random values, sharing one anvil across them.
fn run<S: Strategy>(strategy: S, check: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    let mut config = Config::with_cases(CASES);
    config.failure_persistence = None;
    let handle = Handle::current();
    let result = TestRunner::new(config).run(&strategy, |value| {
        tokio::task::block_in_place(|| handle.block_on(check(value)))
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_valid_batches_agree() {
    let chain = TestChain::start().expect("anvil");
    let contract = deploy(&chain).await;
    let chain_id = chain.chain_id();
    run(valid_case(), async |case: Case| {
        let (credits, total) = batch_credits(case.batch.payees.len(), &case.payments)
            .map_err(|e| TestCaseError::fail(format!("rust rejected a valid batch: {e}")))?;
        let preview = contract
            .previewCredits(case.batch.clone())
            .call()
            .await
            .map_err(|e| TestCaseError::fail(format!("previewCredits reverted: {e}")))?;
        prop_assert_eq!(preview.credits, credits);
        prop_assert_eq!(preview.total, U256::from(total));
        let digest = contract
            .batchDigest(case.batch.clone())
            .call()
            .await
            .map_err(|e| TestCaseError::fail(format!("batchDigest reverted: {e}")))?;
        prop_assert_eq!(
            digest,
            batch_digest(&case.batch, chain_id, *contract.address())
        );
        Ok(())
    });
}

// ------------------------------------------------------------------ invalid batches

/// One thing wrong with one leg or payment of an otherwise valid batch.
#[derive(Debug, Clone)]
enum Fault {
    ZeroAmount,
    NoLegs,
    ZeroShare,
    /// Moves one share by this much (never to zero), so the sum misses `SCALE`.
    ShareOff {
        delta: u32,
        up: bool,
    },
    /// Points one leg this far past the last payee.
    UnknownPayee {
        past: u16,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::ZeroAmount),
        Just(Fault::NoLegs),
        Just(Fault::ZeroShare),
        (1..=SCALE, any::<bool>()).prop_map(|(delta, up)| Fault::ShareOff { delta, up }),
        prop_oneof![0..=16u16, Just(u16::MAX - 8)].prop_map(|past| Fault::UnknownPayee { past }),
    ]
}

/// A batch with one fault, and the error each side must report for it.
#[derive(Debug, Clone)]
struct InvalidCase {
    case: Case,
    rust: PaymentError,
    contract: SplitSettlementErrors,
}

fn invalid_case() -> impl Strategy<Value = InvalidCase> {
    (valid_case(), fault(), any::<Index>(), any::<Index>()).prop_map(|(mut case, fault, p, l)| {
        let payment = p.index(case.payments.len());
        let target = &mut case.payments[payment];
        let leg = l.index(target.legs.len());
        let payment_index = U256::from(payment);
        let split_error = |source| PaymentError::Split { payment, source };
        let (rust, contract) = match fault {
            Fault::ZeroAmount => {
                target.amount = 0;
                (
                    split_error(SplitError::ZeroAmount),
                    SplitSettlementErrors::ZeroAmount(SplitSettlement::ZeroAmount {
                        paymentIndex: payment_index,
                    }),
                )
            }
            Fault::NoLegs => {
                target.legs.clear();
                (
                    split_error(SplitError::EmptySplit),
                    SplitSettlementErrors::EmptySplit(SplitSettlement::EmptySplit {
                        paymentIndex: payment_index,
                    }),
                )
            }
            Fault::ZeroShare => {
                target.legs[leg].share = 0;
                (
                    split_error(SplitError::ZeroShare { leg }),
                    SplitSettlementErrors::ZeroShare(SplitSettlement::ZeroShare {
                        paymentIndex: payment_index,
                        legIndex: U256::from(leg),
                    }),
                )
            }
            Fault::ShareOff { delta, up } => {
                let share = target.legs[leg].share;
                let (share, sum) = if up || share <= delta {
                    (share + delta, u64::from(SCALE) + u64::from(delta))
                } else {
                    (share - delta, u64::from(SCALE) - u64::from(delta))
                };
                target.legs[leg].share = share;
                (
                    split_error(SplitError::SharesMismatch { sum }),
                    SplitSettlementErrors::SharesMismatch(SplitSettlement::SharesMismatch {
                        paymentIndex: payment_index,
                        shareSum: U256::from(sum),
                    }),
                )
            }
            Fault::UnknownPayee { past } => {
                let payees = case.batch.payees.len();
                let payee = u16::try_from(payees).expect("at most 8 payees") + past;
                target.legs[leg].payee = payee;
                (
                    PaymentError::UnknownPayee {
                        payment,
                        leg,
                        payee,
                        payees,
                    },
                    SplitSettlementErrors::UnknownPayee(SplitSettlement::UnknownPayee {
                        paymentIndex: payment_index,
                        legIndex: U256::from(leg),
                    }),
                )
            }
        };
        case.repack();
        InvalidCase {
            case,
            rust,
            contract,
        }
    })
}

/// The contract's revert for `batch`, decoded through the bindings' error types.
fn revert_of(
    result: Result<impl std::fmt::Debug, alloy::contract::Error>,
) -> Result<SplitSettlementErrors, TestCaseError> {
    match result {
        Ok(value) => Err(TestCaseError::fail(format!(
            "expected a revert, got {value:?}"
        ))),
        Err(err) => err
            .as_decoded_interface_error::<SplitSettlementErrors>()
            .ok_or_else(|| TestCaseError::fail(format!("not a SplitSettlement error: {err}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_invalid_batches_are_rejected_alike() {
    let chain = TestChain::start().expect("anvil");
    let contract = deploy(&chain).await;
    run(invalid_case(), async |invalid: InvalidCase| {
        let InvalidCase {
            case,
            rust,
            contract: expected,
        } = invalid;
        prop_assert_eq!(
            batch_credits(case.batch.payees.len(), &case.payments),
            Err(rust)
        );
        let preview = contract.previewCredits(case.batch.clone()).call().await;
        prop_assert_eq!(revert_of(preview)?, expected.clone(), "previewCredits");
        // batchDigest validates the same way before hashing.
        let digest = contract.batchDigest(case.batch.clone()).call().await;
        prop_assert_eq!(revert_of(digest)?, expected, "batchDigest");
        Ok(())
    });
}

// ------------------------------------------------------------------ former disagreements
//
// Both once disagreed (the mirror saturated at u128::MAX and checked the share
// sum before the legs' payees); they now pin the agreement.

fn bare_batch(payees: Vec<Address>, payments: Vec<Payment>) -> Case {
    let mut case = Case {
        batch: Batch {
            batchId: B256::ZERO,
            nonce: U256::ZERO,
            deadline: 0,
            token: Address::ZERO,
            funder: Address::ZERO,
            funding: 0,
            payees,
            payments: Default::default(),
        },
        payments,
    };
    case.repack();
    case
}

#[tokio::test]
async fn totals_above_u128_agree() {
    let chain = TestChain::start().expect("anvil");
    let contract = deploy(&chain).await;
    let whole = |id: u8| Payment {
        payment_id: B256::repeat_byte(id),
        amount: u128::MAX,
        legs: vec![Leg {
            payee: 0,
            share: SCALE,
        }],
    };
    let case = bare_batch(vec![Address::repeat_byte(0x11)], vec![whole(1), whole(2)]);
    let preview = contract
        .previewCredits(case.batch.clone())
        .call()
        .await
        .expect("previewCredits");
    let (credits, total) = batch_credits(1, &case.payments).expect("rust accepts it");
    assert_eq!(preview.total, U256::from(total), "total");
    assert_eq!(preview.credits, credits, "credits");
}

#[tokio::test]
async fn first_error_of_a_payment_with_two_faults_agrees() {
    let chain = TestChain::start().expect("anvil");
    let contract = deploy(&chain).await;
    // Leg 0 names payee 5 of 1, and the shares sum to 900,000.
    let payment = Payment {
        payment_id: B256::repeat_byte(1),
        amount: 100,
        legs: vec![
            Leg {
                payee: 5,
                share: 500_000,
            },
            Leg {
                payee: 0,
                share: 400_000,
            },
        ],
    };
    let case = bare_batch(vec![Address::repeat_byte(0x11)], vec![payment]);
    let reverted =
        revert_of(contract.previewCredits(case.batch.clone()).call().await).expect("reverts");
    assert_eq!(
        reverted,
        SplitSettlementErrors::UnknownPayee(SplitSettlement::UnknownPayee {
            paymentIndex: U256::ZERO,
            legIndex: U256::ZERO,
        })
    );
    assert_eq!(
        batch_credits(1, &case.payments),
        Err(PaymentError::UnknownPayee {
            payment: 0,
            leg: 0,
            payee: 5,
            payees: 1
        })
    );
}
