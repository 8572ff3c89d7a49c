-- Submission: the relayer's own transactions and the nonce ledger of each sender key.

-- Batch life: signed -> submitted (a transaction carries it) -> included (mined, not yet deep enough)
-- -> settled (confirmed), or failed (reverted, typed error recorded) or expired (deadline passed unsettled;
-- its instructions went back to the queue).
ALTER TABLE relayer.batches DROP CONSTRAINT batches_status_check;
ALTER TABLE relayer.batches ADD CONSTRAINT batches_status_check
    CHECK (status IN ('signed', 'submitted', 'included', 'settled', 'failed', 'expired'));
ALTER TABLE relayer.batches
    ADD COLUMN tx_hash      bytea CHECK (octet_length(tx_hash) = 32),
    ADD COLUMN block_number bigint,
    ADD COLUMN block_hash   bytea CHECK (octet_length(block_hash) = 32),
    ADD COLUMN error        text,
    -- The sender key whose submitter drives the batch once it left 'signed'.
    ADD COLUMN sender       bytea CHECK (octet_length(sender) = 20);
CREATE INDEX batches_open ON relayer.batches (chain_id, contract, status)
    WHERE status IN ('signed', 'submitted', 'included');

-- The high-water mark of each sender's account nonce. A new transaction takes the lowest nonce at or
-- above the chain's that no live transaction holds (so a dropped transaction's nonce is reused: the
-- ledger rewinds instead of jamming), allocated in the transaction that records the row.
CREATE TABLE relayer.sender_nonces (
    chain_id bigint NOT NULL,
    sender   bytea  NOT NULL CHECK (octet_length(sender) = 20),
    next     bigint NOT NULL CHECK (next >= 0),
    PRIMARY KEY (chain_id, sender)
);

-- Every transaction the relayer signed: one row per attempt (a fee bump is a new attempt at the same nonce).
-- The signed bytes are stored before the first broadcast, so a crash in between resends the same transaction.
CREATE TABLE relayer.transactions (
    id           uuid        PRIMARY KEY,
    batch        uuid        NOT NULL REFERENCES relayer.batches (id),
    chain_id     bigint      NOT NULL,
    sender       bytea       NOT NULL CHECK (octet_length(sender) = 20),
    nonce        bigint      NOT NULL CHECK (nonce >= 0),
    hash         bytea       NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    raw          bytea       NOT NULL,
    gas_limit    bigint      NOT NULL CHECK (gas_limit > 0),
    max_fee      numeric(39, 0) NOT NULL CHECK (max_fee >= 0),
    priority_fee numeric(39, 0) NOT NULL CHECK (priority_fee >= 0),
    -- signed: stored, not yet sent; pending: sent; mined: in a block; replaced: superseded by a
    -- higher-fee attempt (still watched: it may be the one mined); dropped: gone from the pool, nonce freed.
    status       text        NOT NULL DEFAULT 'signed'
                 CHECK (status IN ('signed', 'pending', 'mined', 'replaced', 'dropped')),
    sent_block   bigint,
    mined_block  bigint,
    gas_used     bigint,
    effective_gas_price numeric(39, 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_live ON relayer.transactions (chain_id, sender, nonce)
    WHERE status IN ('signed', 'pending', 'replaced');
CREATE INDEX transactions_batch ON relayer.transactions (batch);
