-- Signed batches: persisted, with their signature, before anything is sent.
CREATE TABLE relayer.batches (
    id          uuid        PRIMARY KEY,
    -- The on-chain batchId.
    batch_id    bytea       NOT NULL UNIQUE CHECK (octet_length(batch_id) = 32),
    chain_id    bigint      NOT NULL CHECK (chain_id > 0),
    contract    bytea       NOT NULL CHECK (octet_length(contract) = 20),
    token       bytea       NOT NULL CHECK (octet_length(token) = 20),
    funder      bytea       NOT NULL CHECK (octet_length(funder) = 20),
    funding     smallint    NOT NULL CHECK (funding IN (0, 1)),
    signer      bytea       NOT NULL CHECK (octet_length(signer) = 20),
    nonce       numeric(78, 0) NOT NULL CHECK (nonce >= 0),
    deadline    bigint      NOT NULL,
    payees      bytea[]     NOT NULL,
    payments    bytea       NOT NULL,
    total       numeric(78, 0) NOT NULL CHECK (total > 0),
    digest      bytea       NOT NULL CHECK (octet_length(digest) = 32),
    signature   bytea       NOT NULL CHECK (octet_length(signature) = 65),
    status      text        NOT NULL DEFAULT 'signed'
                CHECK (status IN ('signed', 'submitted', 'settled', 'failed', 'expired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- A signer never signs two batches with one nonce on one contract.
    CONSTRAINT batches_signer_nonce UNIQUE (chain_id, contract, signer, nonce)
);

-- The next batch nonce per signer and contract, allocated in the transaction that records the batch.
CREATE TABLE relayer.batch_nonces (
    chain_id bigint         NOT NULL,
    contract bytea          NOT NULL,
    signer   bytea          NOT NULL,
    next     numeric(78, 0) NOT NULL CHECK (next >= 0),
    PRIMARY KEY (chain_id, contract, signer)
);

ALTER TABLE relayer.instructions ADD COLUMN batch uuid REFERENCES relayer.batches (id);
ALTER TABLE relayer.instructions ADD COLUMN position integer;
CREATE INDEX instructions_batch ON relayer.instructions (batch);
