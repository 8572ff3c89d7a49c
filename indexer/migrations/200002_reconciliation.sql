-- Reconciliation: what the relayer meant to settle, what the indexer saw, what the chain holds.
CREATE TABLE indexer.reconciliation_runs (
    id               uuid            PRIMARY KEY,
    chain_id         bigint          NOT NULL CHECK (chain_id > 0),
    contract         indexer.address NOT NULL,
    -- The indexed block the comparison was made at (balances are read there on chain).
    checkpoint_block bigint          NOT NULL CHECK (checkpoint_block >= 0),
    started_at       timestamptz     NOT NULL,
    finished_at      timestamptz     NOT NULL,
    findings         integer         NOT NULL CHECK (findings >= 0)
);
CREATE INDEX reconciliation_runs_recent ON indexer.reconciliation_runs (chain_id, contract, started_at DESC);

CREATE TABLE indexer.reconciliation_findings (
    run_id     uuid    NOT NULL REFERENCES indexer.reconciliation_runs (id) ON DELETE CASCADE,
    position   integer NOT NULL CHECK (position >= 0),
    kind       text    NOT NULL CHECK (kind IN ('missing_onchain', 'unexpected_onchain', 'amount_mismatch',
                                                'duplicate_payment', 'balance_mismatch')),
    batch_id   indexer.hash32,
    payment_id indexer.hash32,
    token      indexer.address,
    account    indexer.address,
    expected   text,
    actual     text,
    detail     text    NOT NULL,
    PRIMARY KEY (run_id, position)
);
