//! The API's reads over many batches: chunked scans continue where they stopped and pages neither
//! skip nor repeat. Rows are written directly (the chain's part is covered by the API's tests).

use std::ops::ControlFlow;

use alloy::primitives::{Address, B256, U256, keccak256};
use settle_contracts::{Leg, Payment, encode_payments};
use settle_indexer::{
    MIGRATOR,
    query::{self, BlockFilter, Deployment, PayoutKey},
};
use settle_testkit::TestDb;
use sqlx::PgPool;

const AT: Deployment = Deployment {
    chain_id: 31337,
    contract: Address::repeat_byte(0xcc),
};
/// Paid in every batch.
const MERCHANT: Address = Address::repeat_byte(0x11);
/// Listed as a payee of every batch, but paid only in every 100th.
const RARE: Address = Address::repeat_byte(0x22);

/// Batch `n` (block `n`, log 0): one payment of `n` wei, all to MERCHANT, or split with RARE when
/// `n` is a multiple of 100.
async fn insert_batch(pool: &PgPool, n: u64) {
    let block_hash = keccak256(n.to_be_bytes());
    let rare = n.is_multiple_of(100);
    let legs = if rare {
        vec![
            Leg {
                payee: 0,
                share: 500_000,
            },
            Leg {
                payee: 1,
                share: 500_000,
            },
        ]
    } else {
        vec![Leg {
            payee: 0,
            share: 1_000_000,
        }]
    };
    let payment = Payment {
        payment_id: keccak256(format!("payment-{n}")),
        amount: u128::from(n),
        legs,
    };
    let payments = encode_payments(std::slice::from_ref(&payment)).expect("encodes");
    let number = i64::try_from(n).expect("small");
    sqlx::query(
        "INSERT INTO indexer.batches (chain_id, contract, block_number, block_hash, log_index,
             tx_hash, batch_id, signer, token, digest, funder, funding, nonce, total, payments)
         VALUES (31337, $1, $2, $3, 0, $4, $5, $6, $7, $8, $9, 1, $2, $2, $10)",
    )
    .bind(AT.contract.to_vec())
    .bind(number)
    .bind(block_hash.to_vec())
    .bind(keccak256(format!("tx-{n}")).to_vec())
    .bind(keccak256(format!("batch-{n}")).to_vec())
    .bind(Address::repeat_byte(0x51).to_vec())
    .bind(Address::ZERO.to_vec())
    .bind(B256::repeat_byte(0xd1).to_vec())
    .bind(Address::repeat_byte(0xf0).to_vec())
    .bind(payments.to_vec())
    .execute(pool)
    .await
    .expect("batch");
    sqlx::query(
        "INSERT INTO indexer.payments (chain_id, block_hash, log_index, position, payment_id, amount)
         VALUES (31337, $1, 0, 0, $2, $3)",
    )
    .bind(block_hash.to_vec())
    .bind(payment.payment_id.to_vec())
    .bind(number)
    .execute(pool)
    .await
    .expect("payment");
    let half = number / 2;
    let (merchant_credit, rare_credit) = if rare {
        (number - half, half)
    } else {
        (number, 0)
    };
    for (position, payee, amount) in [(0, MERCHANT, merchant_credit), (1, RARE, rare_credit)] {
        sqlx::query(
            "INSERT INTO indexer.credits (chain_id, block_hash, log_index, position, payee, amount)
             VALUES (31337, $1, 0, $2, $3, $4)",
        )
        .bind(block_hash.to_vec())
        .bind(position)
        .bind(payee.to_vec())
        .bind(amount)
        .execute(pool)
        .await
        .expect("credit");
    }
}

#[tokio::test]
async fn scans_continue_across_chunks_and_pages_never_skip_or_repeat() {
    let db = TestDb::create().await.expect("database");
    MIGRATOR.run(db.pool()).await.expect("migrations");
    for n in 1..=300 {
        insert_batch(db.pool(), n).await;
    }

    // Exports read 256 batches a statement: all 300 come, in chain order, each once.
    let mut seen = Vec::new();
    let broke = query::visit_settled_batches(db.pool(), AT, 0, u64::MAX, |batch| {
        seen.push(batch.key.block_number);
        assert_eq!(batch.credits.len(), 2);
        assert_eq!(batch.total, U256::from(batch.key.block_number));
        Ok(ControlFlow::Continue(()))
    })
    .await
    .expect("visits");
    assert!(!broke);
    assert_eq!(seen, (1..=300).collect::<Vec<u64>>());
    // A visitor that stops is not called again; a block range bounds the scan.
    let mut count = 0u32;
    let broke = query::visit_settled_batches(db.pool(), AT, 0, u64::MAX, |_| {
        count += 1;
        Ok(if count == 260 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })
    .await
    .expect("visits");
    assert!(broke);
    assert_eq!(count, 260);
    let mut seen = Vec::new();
    query::visit_settled_batches(db.pool(), AT, 10, 12, |batch| {
        seen.push(batch.key.block_number);
        Ok(ControlFlow::Continue(()))
    })
    .await
    .expect("visits");
    assert_eq!(seen, [10, 11, 12]);

    // Pages of 7 over MERCHANT's 300 payouts: newest first, each once.
    let mut before: Option<PayoutKey> = None;
    let mut blocks = Vec::new();
    let mut pages = 0;
    loop {
        let page = query::payouts(db.pool(), AT, MERCHANT, &BlockFilter::ALL, before, 7)
            .await
            .expect("page");
        pages += 1;
        blocks.extend(page.items.iter().map(|p| p.key.block_number));
        for payout in &page.items {
            let n = payout.key.block_number;
            let expected = if n.is_multiple_of(100) { n - n / 2 } else { n };
            assert_eq!(payout.amount, u128::from(expected), "block {n}");
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 43);
    assert_eq!(blocks, (1..=300).rev().collect::<Vec<u64>>());

    // RARE is a payee of every batch but paid in three: a page of one scans many chunks of two
    // batches before it fills.
    let mut before = None;
    let mut rare = Vec::new();
    loop {
        let page = query::payouts(db.pool(), AT, RARE, &BlockFilter::ALL, before, 1)
            .await
            .expect("page");
        rare.extend(
            page.items
                .iter()
                .map(|p| (p.key.block_number, p.key.leg, p.amount)),
        );
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(rare, [(300, 1, 150), (200, 1, 100), (100, 1, 50)]);
    db.cleanup().await.expect("cleanup");
}
