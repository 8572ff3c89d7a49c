//! The indexer's tables: the reorg window, the checkpoints and the typed event rows.
//!
//! Every write is one transaction under a per-chain advisory lock, and first checks that the
//! window's head is still the one the caller verified against the chain, so a range is written
//! whole, exactly once, on top of the blocks it was checked against. Rows go in with `UNNEST`
//! arrays, one statement per table, and `ON CONFLICT DO NOTHING` on the natural key.

use std::sync::LazyLock;

use alloy::primitives::{Address, B256};
use sqlx::{
    PgConnection, PgPool, Postgres, Row,
    migrate::Migrator,
    postgres::{PgArguments, PgRow},
    query::Query,
    types::chrono::{DateTime, Utc},
};

use crate::{
    error::{IndexerError, Result},
    events::{Meta, MoveRow, Rows},
    reorg::BlockRef,
};

/// The indexer's migrations (versions 2xxxxx, schema `indexer`).
///
/// They share sqlx's migration table with the relayer's (1xxxxx) and the api's (3xxxxx), so this
/// migrator ignores versions it does not know instead of refusing to run.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
});

/// Applies the indexer's migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// A block header as fetched: its links and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) block: BlockRef,
    pub(crate) timestamp: u64,
}

/// Where indexing stands for the configured contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// The next block to index (the lowest over the contracts).
    pub(crate) next: u64,
    /// The newest block in the window.
    pub(crate) head: Option<BlockRef>,
}

pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| IndexerError::OutOfRange { what })
}

fn to_u64(value: i64, what: &'static str) -> Result<u64> {
    u64::try_from(value).map_err(|_| IndexerError::OutOfRange { what })
}

fn b256(bytes: &[u8], what: &'static str) -> Result<B256> {
    B256::try_from(bytes).map_err(|_| IndexerError::OutOfRange { what })
}

fn block_ref(row: &PgRow) -> Result<BlockRef> {
    Ok(BlockRef {
        number: to_u64(row.try_get("number")?, "stored block number")?,
        hash: b256(row.try_get::<&[u8], _>("hash")?, "stored block hash")?,
        parent_hash: b256(
            row.try_get::<&[u8], _>("parent_hash")?,
            "stored parent hash",
        )?,
    })
}

fn addresses(contracts: &[Address]) -> Vec<Vec<u8>> {
    contracts.iter().map(|c| c.to_vec()).collect()
}

/// The next block and the window's head.
pub(crate) async fn state(
    pool: &PgPool,
    chain_id: i64,
    contracts: &[Address],
    from_block: u64,
) -> Result<State> {
    let rows = sqlx::query(
        "SELECT contract, block_number FROM indexer.checkpoints
         WHERE chain_id = $1 AND contract = ANY($2::bytea[])",
    )
    .bind(chain_id)
    .bind(addresses(contracts))
    .fetch_all(pool)
    .await?;
    let mut next = u64::MAX;
    for contract in contracts {
        let mut contract_next = from_block;
        for row in &rows {
            if row.try_get::<&[u8], _>("contract")? == contract.as_slice() {
                let checkpoint = to_u64(row.try_get("block_number")?, "checkpoint")?;
                contract_next = checkpoint.saturating_add(1).max(from_block);
            }
        }
        next = next.min(contract_next);
    }
    let head = sqlx::query(
        "SELECT number, hash, parent_hash FROM indexer.blocks
         WHERE chain_id = $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(chain_id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(block_ref)
    .transpose()?;
    Ok(State { next, head })
}

/// Stored blocks with `low <= number <= high`, ascending.
pub(crate) async fn blocks_between(
    pool: &PgPool,
    chain_id: i64,
    low: u64,
    high: u64,
) -> Result<Vec<BlockRef>> {
    sqlx::query(
        "SELECT number, hash, parent_hash FROM indexer.blocks
         WHERE chain_id = $1 AND number BETWEEN $2 AND $3 ORDER BY number",
    )
    .bind(chain_id)
    .bind(to_i64(low, "block number")?)
    .bind(to_i64(high, "block number")?)
    .fetch_all(pool)
    .await?
    .iter()
    .map(block_ref)
    .collect()
}

/// The whole window, newest first.
pub(crate) async fn window_newest_first(pool: &PgPool, chain_id: i64) -> Result<Vec<BlockRef>> {
    sqlx::query(
        "SELECT number, hash, parent_hash FROM indexer.blocks
         WHERE chain_id = $1 ORDER BY number DESC",
    )
    .bind(chain_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(block_ref)
    .collect()
}

/// Takes the chain's write lock and checks that nobody moved the window's head since `expected`.
async fn lock_and_check(
    conn: &mut PgConnection,
    chain_id: i64,
    expected: Option<&BlockRef>,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('settle-indexer/' || $1::text, 0))")
        .bind(chain_id)
        .execute(&mut *conn)
        .await?;
    let head = sqlx::query(
        "SELECT number, hash, parent_hash FROM indexer.blocks
         WHERE chain_id = $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(chain_id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(block_ref)
    .transpose()?;
    if head.as_ref() != expected {
        return Err(IndexerError::ConcurrentWriter {
            chain_id: to_u64(chain_id, "chain id")?,
        });
    }
    Ok(())
}

/// The columns every event table starts with.
#[derive(Default)]
struct MetaColumns {
    contract: Vec<Vec<u8>>,
    block_number: Vec<i64>,
    block_hash: Vec<Vec<u8>>,
    log_index: Vec<i64>,
    tx_hash: Vec<Vec<u8>>,
}

impl MetaColumns {
    fn push(&mut self, meta: &Meta) -> Result<()> {
        self.contract.push(meta.contract.to_vec());
        self.block_number
            .push(to_i64(meta.block_number, "block number")?);
        self.block_hash.push(meta.block_hash.to_vec());
        self.log_index.push(to_i64(meta.log_index, "log index")?);
        self.tx_hash.push(meta.tx_hash.to_vec());
        Ok(())
    }

    /// Binds `$2..=$6`.
    fn bind<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(self.contract)
            .bind(self.block_number)
            .bind(self.block_hash)
            .bind(self.log_index)
            .bind(self.tx_hash)
    }
}

/// `INSERT INTO indexer.<table> (meta columns, <columns>) SELECT $1, * FROM UNNEST($2.., <casts>)`.
fn insert_sql(table: &str, columns: &str, casts: &[&str]) -> String {
    let mut unnest = vec![
        "$2::bytea[]".to_owned(),
        "$3::bigint[]".to_owned(),
        "$4::bytea[]".to_owned(),
        "$5::bigint[]".to_owned(),
        "$6::bytea[]".to_owned(),
    ];
    for (offset, cast) in casts.iter().enumerate() {
        unnest.push(format!("${}::{cast}", offset.saturating_add(7)));
    }
    format!(
        "INSERT INTO indexer.{table} (chain_id, contract, block_number, block_hash, log_index, tx_hash, {columns})
         SELECT $1::bigint, * FROM UNNEST({}) ON CONFLICT DO NOTHING",
        unnest.join(", ")
    )
}

async fn insert_moves(
    conn: &mut PgConnection,
    chain_id: i64,
    table: &str,
    columns: &str,
    rows: &[MoveRow],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut meta = MetaColumns::default();
    let (mut token, mut account, mut counterparty, mut amount) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        meta.push(&row.meta)?;
        token.push(row.token.to_vec());
        account.push(row.account.to_vec());
        counterparty.push(row.counterparty.to_vec());
        amount.push(row.amount.to_string());
    }
    let sql = insert_sql(
        table,
        columns,
        &["bytea[]", "bytea[]", "bytea[]", "text[]::numeric[]"],
    );
    meta.bind(sqlx::query(&sql).bind(chain_id))
        .bind(token)
        .bind(account)
        .bind(counterparty)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Refreshes the planner's statistics on `indexer.batches`, inside the range's transaction and
/// before its payments and credits go in, when the table has changed by at least autovacuum's
/// default analyze threshold (50 rows plus 10% of the table) since they were last taken, counting
/// the `inserted` rows of this transaction (the statistics views do not see them yet).
///
/// `batches` is the parent of the foreign keys of `payments` and `credits`: every one of those
/// rows is checked by a lookup that Postgres plans once per connection and keeps until the table
/// changes definition or statistics. Planned while the table was small and had no statistics (a
/// fresh database before autovacuum's first pass, or for good where autovacuum is off), that
/// lookup ties between the primary key and `batches_block` and takes `batches_block`, which
/// matches only `chain_id`; planned on statistics of a small table, it is a sequential scan.
/// Either way each credit then reads every batch of the chain and a backfill turns quadratic.
/// `ANALYZE` takes the statistics and invalidates the kept plans (this connection's at once, the
/// others' at commit), so the lookups are planned again on the table as it now is: on the primary
/// key once it holds more than a few pages. It counts this transaction's own rows and changes no
/// row. `SKIP_LOCKED`: when another chain's indexer is analyzing, there is nothing to wait for;
/// without ownership of the table, Postgres only warns.
async fn refresh_statistics(conn: &mut PgConnection, inserted: usize) -> Result<()> {
    let inserted = i64::try_from(inserted).map_err(|_| IndexerError::OutOfRange {
        what: "batch count",
    })?;
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT s.n_mod_since_analyze + $1 >= 50 + 0.1 * greatest(c.reltuples, 0)
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.relid = 'indexer.batches'::regclass",
    )
    .bind(inserted)
    .fetch_optional(&mut *conn)
    .await?;
    if stale == Some(true) {
        sqlx::query("ANALYZE (SKIP_LOCKED) indexer.batches")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn insert_rows(conn: &mut PgConnection, chain_id: i64, rows: &Rows) -> Result<()> {
    if !rows.batches.is_empty() {
        let mut meta = MetaColumns::default();
        let mut cols: [Vec<Vec<u8>>; 6] = Default::default();
        let (mut funding, mut nonce, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for b in &rows.batches {
            meta.push(&b.meta)?;
            let [batch_id, signer, token, digest, funder, payments] = &mut cols;
            batch_id.push(b.batch_id.to_vec());
            signer.push(b.signer.to_vec());
            token.push(b.token.to_vec());
            digest.push(b.digest.to_vec());
            funder.push(b.funder.to_vec());
            payments.push(b.payments.to_vec());
            funding.push(i16::from(b.funding));
            nonce.push(b.nonce.to_string());
            total.push(b.total.to_string());
        }
        let [batch_id, signer, token, digest, funder, payments] = cols;
        let sql = insert_sql(
            "batches",
            "batch_id, signer, token, digest, funder, funding, nonce, total, payments",
            &[
                "bytea[]",
                "bytea[]",
                "bytea[]",
                "bytea[]",
                "bytea[]",
                "smallint[]",
                "text[]::numeric[]",
                "text[]::numeric[]",
                "bytea[]",
            ],
        );
        meta.bind(sqlx::query(&sql).bind(chain_id))
            .bind(batch_id)
            .bind(signer)
            .bind(token)
            .bind(digest)
            .bind(funder)
            .bind(funding)
            .bind(nonce)
            .bind(total)
            .bind(payments)
            .execute(&mut *conn)
            .await?;
        refresh_statistics(conn, rows.batches.len()).await?;
    }
    for (table, key_column, entries) in [
        (
            "payments",
            "payment_id",
            rows.payments
                .iter()
                .map(|p| {
                    (
                        p.block_hash,
                        p.log_index,
                        p.position,
                        p.key.to_vec(),
                        p.amount,
                    )
                })
                .collect::<Vec<_>>(),
        ),
        (
            "credits",
            "payee",
            rows.credits
                .iter()
                .map(|c| {
                    (
                        c.block_hash,
                        c.log_index,
                        c.position,
                        c.key.to_vec(),
                        c.amount,
                    )
                })
                .collect(),
        ),
    ] {
        if entries.is_empty() {
            continue;
        }
        let (mut hash, mut index, mut position, mut key, mut amount) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (h, i, p, k, a) in entries {
            hash.push(h.to_vec());
            index.push(to_i64(i, "log index")?);
            position.push(i32::try_from(p).map_err(|_| IndexerError::OutOfRange {
                what: "payment or payee position",
            })?);
            key.push(k);
            amount.push(a.to_string());
        }
        sqlx::query(&format!(
            "INSERT INTO indexer.{table} (chain_id, block_hash, log_index, position, {key_column}, amount)
             SELECT $1::bigint, * FROM UNNEST($2::bytea[], $3::bigint[], $4::int[], $5::bytea[], $6::text[]::numeric[])
             ON CONFLICT DO NOTHING"
        ))
        .bind(chain_id)
        .bind(hash)
        .bind(index)
        .bind(position)
        .bind(key)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    }
    insert_moves(
        conn,
        chain_id,
        "deposits",
        "token, funder, depositor, amount",
        &rows.deposits,
    )
    .await?;
    insert_moves(
        conn,
        chain_id,
        "withdrawals",
        "token, account, recipient, amount",
        &rows.withdrawals,
    )
    .await?;
    if !rows.pushes.is_empty() {
        let mut meta = MetaColumns::default();
        let (mut kind, mut token, mut account, mut amount) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for push in &rows.pushes {
            meta.push(&push.row.meta)?;
            kind.push(if push.pushed_out {
                "pushed_out"
            } else {
                "push_failed"
            });
            token.push(push.row.token.to_vec());
            account.push(push.row.account.to_vec());
            amount.push(push.row.amount.to_string());
        }
        let sql = insert_sql(
            "pushes",
            "kind, token, account, amount",
            &["text[]", "bytea[]", "bytea[]", "text[]::numeric[]"],
        );
        meta.bind(sqlx::query(&sql).bind(chain_id))
            .bind(kind)
            .bind(token)
            .bind(account)
            .bind(amount)
            .execute(&mut *conn)
            .await?;
    }
    if !rows.signer_changes.is_empty() {
        let mut meta = MetaColumns::default();
        let (mut signer, mut authorised) = (Vec::new(), Vec::new());
        for change in &rows.signer_changes {
            meta.push(&change.meta)?;
            signer.push(change.signer.to_vec());
            authorised.push(change.authorised);
        }
        let sql = insert_sql(
            "signer_changes",
            "signer, authorised",
            &["bytea[]", "boolean[]"],
        );
        meta.bind(sqlx::query(&sql).bind(chain_id))
            .bind(signer)
            .bind(authorised)
            .execute(&mut *conn)
            .await?;
    }
    if !rows.governance.is_empty() {
        let mut meta = MetaColumns::default();
        let (mut name, mut args) = (Vec::new(), Vec::new());
        for event in &rows.governance {
            meta.push(&event.meta)?;
            name.push(event.name);
            args.push(event.args.to_string());
        }
        let sql = insert_sql("governance", "name, args", &["text[]", "text[]::jsonb[]"]);
        meta.bind(sqlx::query(&sql).bind(chain_id))
            .bind(name)
            .bind(args)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// One checked range, ready to be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeWrite<'a> {
    /// The window's head the range was checked against.
    pub(crate) expected_head: Option<&'a BlockRef>,
    /// Headers to keep in the window (always including the range's last block).
    pub(crate) headers: &'a [Header],
    /// The range's rows.
    pub(crate) rows: &'a Rows,
    /// The range's last block: the new checkpoint.
    pub(crate) to: &'a BlockRef,
    /// Blocks the window keeps.
    pub(crate) window: u64,
}

/// Writes one range: its rows, its headers into the window, the checkpoints of `contracts` at
/// its last block, and prunes the window; all or nothing.
pub(crate) async fn write_range(
    pool: &PgPool,
    chain_id: i64,
    contracts: &[Address],
    range: &RangeWrite<'_>,
) -> Result<()> {
    let RangeWrite {
        expected_head,
        headers,
        rows,
        to,
        window,
    } = *range;
    let mut tx = pool.begin().await?;
    lock_and_check(&mut tx, chain_id, expected_head).await?;
    insert_rows(&mut tx, chain_id, rows).await?;

    let (mut number, mut hash, mut parent, mut time) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for header in headers {
        number.push(to_i64(header.block.number, "block number")?);
        hash.push(header.block.hash.to_vec());
        parent.push(header.block.parent_hash.to_vec());
        let seconds = to_i64(header.timestamp, "block timestamp")?;
        time.push(
            DateTime::<Utc>::from_timestamp(seconds, 0).ok_or(IndexerError::OutOfRange {
                what: "block timestamp",
            })?,
        );
    }
    sqlx::query(
        "INSERT INTO indexer.blocks (chain_id, number, hash, parent_hash, timestamp)
         SELECT $1::bigint, * FROM UNNEST($2::bigint[], $3::bytea[], $4::bytea[], $5::timestamptz[])
         ON CONFLICT (chain_id, number) DO NOTHING",
    )
    .bind(chain_id)
    .bind(number)
    .bind(hash)
    .bind(parent)
    .bind(time)
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "INSERT INTO indexer.checkpoints (chain_id, contract, block_number, block_hash)
         SELECT $1::bigint, c, $3, $4 FROM UNNEST($2::bytea[]) AS c
         ON CONFLICT (chain_id, contract) DO UPDATE
         SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now()
         WHERE indexer.checkpoints.block_number < EXCLUDED.block_number",
    )
    .bind(chain_id)
    .bind(addresses(contracts))
    .bind(to_i64(to.number, "block number")?)
    .bind(to.hash.to_vec())
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "DELETE FROM indexer.blocks WHERE chain_id = $1
         AND number <= (SELECT max(number) FROM indexer.blocks WHERE chain_id = $1) - $2",
    )
    .bind(chain_id)
    .bind(to_i64(window, "reorg window")?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Tables with one row per log, where a rollback deletes (payments and credits cascade).
const EVENT_TABLES: [&str; 6] = [
    "batches",
    "deposits",
    "withdrawals",
    "pushes",
    "signer_changes",
    "governance",
];

/// Rolls the chain back to `fork` (a stored block that is still canonical): deletes every row and
/// window block above it and moves every checkpoint above it down to it. Returns the events
/// deleted.
pub(crate) async fn roll_back(
    pool: &PgPool,
    chain_id: i64,
    expected_head: &BlockRef,
    fork: &BlockRef,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    lock_and_check(&mut tx, chain_id, Some(expected_head)).await?;
    let fork_number = to_i64(fork.number, "block number")?;
    let mut deleted = 0u64;
    for table in EVENT_TABLES {
        let done = sqlx::query(&format!(
            "DELETE FROM indexer.{table} WHERE chain_id = $1 AND block_number > $2"
        ))
        .bind(chain_id)
        .bind(fork_number)
        .execute(&mut *tx)
        .await?;
        deleted = deleted.saturating_add(done.rows_affected());
    }
    sqlx::query("DELETE FROM indexer.blocks WHERE chain_id = $1 AND number > $2")
        .bind(chain_id)
        .bind(fork_number)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE indexer.checkpoints SET block_number = $2, block_hash = $3, updated_at = now()
         WHERE chain_id = $1 AND block_number > $2",
    )
    .bind(chain_id)
    .bind(fork_number)
    .bind(fork.hash.to_vec())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, U256};
    use settle_testkit::TestDb;

    use super::*;
    use crate::events::{BatchRow, EntryRow};

    const CHAIN_ID: i64 = 31_337;

    /// A block at `number` holding `batches` batches of one credit each.
    fn block(number: u64, parent: B256, batches: u64) -> (Header, Rows) {
        let hash = B256::left_padding_from(&number.to_be_bytes());
        let header = Header {
            block: BlockRef {
                number,
                hash,
                parent_hash: parent,
            },
            timestamp: 1_700_000_000,
        };
        let mut rows = Rows::default();
        for log_index in 0..batches {
            rows.batches.push(BatchRow {
                meta: Meta {
                    contract: Address::repeat_byte(0x5e),
                    block_number: number,
                    block_hash: hash,
                    log_index,
                    tx_hash: B256::repeat_byte(0x77),
                },
                batch_id: B256::left_padding_from(
                    &[number.to_be_bytes(), log_index.to_be_bytes()].concat(),
                ),
                signer: Address::repeat_byte(0x51),
                token: Address::ZERO,
                digest: B256::repeat_byte(0xd1),
                funder: Address::repeat_byte(0xf0),
                funding: 1,
                nonce: U256::from(log_index),
                total: U256::from(7u8),
                payments: Bytes::new(),
            });
            rows.credits.push(EntryRow {
                block_hash: hash,
                log_index,
                position: 0,
                key: Address::repeat_byte(0xa1),
                amount: 7,
            });
        }
        (header, rows)
    }

    async fn reltuples(pool: &PgPool) -> f32 {
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'indexer.batches'::regclass")
            .fetch_one(pool)
            .await
            .expect("reltuples")
    }

    #[tokio::test]
    async fn batches_get_statistics_once_they_change_by_the_analyze_threshold() {
        let db = TestDb::create().await.expect("database");
        migrate(db.pool()).await.expect("migrations");
        let contracts = [Address::repeat_byte(0x5e)];

        // 10 batches: under the threshold of 50, the table keeps no statistics.
        let (first, rows) = block(1, B256::ZERO, 10);
        let write = RangeWrite {
            expected_head: None,
            headers: &[first],
            rows: &rows,
            to: &first.block,
            window: 64,
        };
        write_range(db.pool(), CHAIN_ID, &contracts, &write)
            .await
            .expect("first range");
        assert_eq!(reltuples(db.pool()).await, -1.0);

        // 50 more in one range: analyzed inside the range, counting its own 50 rows.
        let (second, rows) = block(2, first.block.hash, 50);
        let write = RangeWrite {
            expected_head: Some(&first.block),
            headers: &[second],
            rows: &rows,
            to: &second.block,
            window: 64,
        };
        write_range(db.pool(), CHAIN_ID, &contracts, &write)
            .await
            .expect("second range");
        assert_eq!(reltuples(db.pool()).await, 60.0);
        let credits: i64 = sqlx::query_scalar("SELECT count(*) FROM indexer.credits")
            .fetch_one(db.pool())
            .await
            .expect("credits");
        assert_eq!(credits, 60);
    }
}
