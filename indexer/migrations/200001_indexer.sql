-- Indexer: the chain's mirror. Versions: the relayer's migrations are numbered 1xxxxx, the
-- indexer's 2xxxxx and the api's 3xxxxx, so the parts share sqlx's migration table.
--
-- Every event row is keyed by (chain_id, block_hash, log_index): the same log can never be stored
-- twice, and a row from an orphaned block never collides with its canonical replacement. A reorg
-- deletes the rows above the fork point by block_number, in the same transaction that moves the
-- checkpoints back.
CREATE SCHEMA IF NOT EXISTS indexer;

CREATE DOMAIN indexer.address AS bytea CHECK (octet_length(VALUE) = 20);
CREATE DOMAIN indexer.hash32 AS bytea CHECK (octet_length(VALUE) = 32);
-- A Solidity uint256: an integer in [0, 2^256).
CREATE DOMAIN indexer.uint256 AS numeric(78, 0) CHECK (
    VALUE >= 0
    AND VALUE < 115792089237316195423570985008687907853269984665640564039457584007913129639936
);

-- The reorg window: the last indexed blocks (dense near the chain's head, plus the last block of
-- every range), pruned to the window size. The fork point after a reorg is the highest of these
-- whose hash the chain still has.
CREATE TABLE indexer.blocks (
    chain_id    bigint         NOT NULL CHECK (chain_id > 0),
    number      bigint         NOT NULL CHECK (number >= 0),
    hash        indexer.hash32 NOT NULL,
    parent_hash indexer.hash32 NOT NULL,
    timestamp   timestamptz    NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- How far each contract is indexed: written in the same transaction as the rows of the range.
CREATE TABLE indexer.checkpoints (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    updated_at   timestamptz     NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, contract)
);

-- BatchSettled.
CREATE TABLE indexer.batches (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    batch_id     indexer.hash32  NOT NULL,
    signer       indexer.address NOT NULL,
    token        indexer.address NOT NULL,
    digest       indexer.hash32  NOT NULL,
    funder       indexer.address NOT NULL,
    -- 0: drawn from the funder's deposited balance; 1: pulled from outside (transferFrom or msg.value).
    funding      smallint        NOT NULL CHECK (funding BETWEEN 0 AND 255),
    nonce        indexer.uint256 NOT NULL,
    total        indexer.uint256 NOT NULL,
    -- The signed packed payments, exactly as in the event.
    payments     bytea           NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX batches_block ON indexer.batches (chain_id, block_number);
CREATE INDEX batches_batch_id ON indexer.batches (batch_id);
CREATE INDEX batches_funder ON indexer.batches (chain_id, contract, token, funder) WHERE funding = 0;

-- One row per payment packed in a BatchSettled event, in order.
CREATE TABLE indexer.payments (
    chain_id   bigint          NOT NULL,
    block_hash indexer.hash32  NOT NULL,
    log_index  bigint          NOT NULL,
    position   integer         NOT NULL CHECK (position >= 0),
    payment_id indexer.hash32  NOT NULL,
    amount     indexer.uint256 NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index, position),
    FOREIGN KEY (chain_id, block_hash, log_index)
        REFERENCES indexer.batches (chain_id, block_hash, log_index) ON DELETE CASCADE
);
CREATE INDEX payments_payment_id ON indexer.payments (payment_id);

-- One row per payee of a BatchSettled event (its `credits`: address + uint128 each), in order.
CREATE TABLE indexer.credits (
    chain_id   bigint          NOT NULL,
    block_hash indexer.hash32  NOT NULL,
    log_index  bigint          NOT NULL,
    position   integer         NOT NULL CHECK (position >= 0),
    payee      indexer.address NOT NULL,
    amount     indexer.uint256 NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index, position),
    FOREIGN KEY (chain_id, block_hash, log_index)
        REFERENCES indexer.batches (chain_id, block_hash, log_index) ON DELETE CASCADE
);
CREATE INDEX credits_payee ON indexer.credits (payee);

-- Deposited.
CREATE TABLE indexer.deposits (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    token        indexer.address NOT NULL,
    funder       indexer.address NOT NULL,
    depositor    indexer.address NOT NULL,
    amount       indexer.uint256 NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX deposits_block ON indexer.deposits (chain_id, block_number);
CREATE INDEX deposits_account ON indexer.deposits (chain_id, contract, token, funder);

-- Withdrawn.
CREATE TABLE indexer.withdrawals (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    token        indexer.address NOT NULL,
    account      indexer.address NOT NULL,
    recipient    indexer.address NOT NULL,
    amount       indexer.uint256 NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX withdrawals_block ON indexer.withdrawals (chain_id, block_number);
CREATE INDEX withdrawals_account ON indexer.withdrawals (chain_id, contract, token, account);

-- PushedOut (the credit left the contract) and PushFailed (it stayed credited).
CREATE TABLE indexer.pushes (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    kind         text            NOT NULL CHECK (kind IN ('pushed_out', 'push_failed')),
    token        indexer.address NOT NULL,
    account      indexer.address NOT NULL,
    amount       indexer.uint256 NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX pushes_block ON indexer.pushes (chain_id, block_number);
CREATE INDEX pushes_account ON indexer.pushes (chain_id, contract, token, account);

-- SignerSet.
CREATE TABLE indexer.signer_changes (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    signer       indexer.address NOT NULL,
    authorised   boolean         NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX signer_changes_block ON indexer.signer_changes (chain_id, block_number);

-- Every other event of the contract (TokenConfigured, GuardianSet, NonceInvalidated,
-- PushPreferenceSet, Upgraded, OwnershipTransferred, Paused, Unpaused, Initialized,
-- EIP712DomainChanged), and any event the ABI does not know ('Unknown', raw topics and data):
-- its name and its fields as JSON, integers as decimal strings and bytes as 0x-hex.
CREATE TABLE indexer.governance (
    chain_id     bigint          NOT NULL CHECK (chain_id > 0),
    contract     indexer.address NOT NULL,
    block_number bigint          NOT NULL CHECK (block_number >= 0),
    block_hash   indexer.hash32  NOT NULL,
    log_index    bigint          NOT NULL CHECK (log_index >= 0),
    tx_hash      indexer.hash32  NOT NULL,
    name         text            NOT NULL,
    args         jsonb           NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX governance_block ON indexer.governance (chain_id, block_number);
CREATE INDEX governance_name ON indexer.governance (chain_id, contract, name);

-- Internal balances rebuilt from events alone, with the contract's semantics:
--   + Deposited amount to the funder;
--   - BatchSettled total from the funder when funding = 0 (deposit funding; a pull never touches
--     internal balances);
--   + every credit to its payee (the contract credits, then a push removes it again);
--   - PushedOut amount from the account (PushFailed leaves the credit in place);
--   - Withdrawn amount from the account.
-- Must equal SplitSettlement.balanceOf(token, account) at the indexed block.
CREATE VIEW indexer.balances AS
SELECT chain_id, contract, token, account, sum(delta)::numeric(78, 0) AS balance
FROM (
    SELECT chain_id, contract, token, funder AS account, amount::numeric AS delta
    FROM indexer.deposits
    UNION ALL
    SELECT chain_id, contract, token, funder, -total::numeric
    FROM indexer.batches
    WHERE funding = 0
    UNION ALL
    SELECT b.chain_id, b.contract, b.token, c.payee, c.amount::numeric
    FROM indexer.credits c
    JOIN indexer.batches b USING (chain_id, block_hash, log_index)
    UNION ALL
    SELECT chain_id, contract, token, account, -amount::numeric
    FROM indexer.pushes
    WHERE kind = 'pushed_out'
    UNION ALL
    SELECT chain_id, contract, token, account, -amount::numeric
    FROM indexer.withdrawals
) AS deltas
GROUP BY chain_id, contract, token, account;
