-- Relayer intake: payment instructions, durable before they are acknowledged.
-- Versions: the relayer's migrations are numbered 1xxxxx, the indexer's 2xxxxx and the
-- api's 3xxxxx, so the parts share sqlx's migration table without colliding.
CREATE SCHEMA IF NOT EXISTS relayer;

CREATE TABLE relayer.instructions (
    id              uuid        PRIMARY KEY,
    -- Arrival order, also within one bulk submission.
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    integrator      text        NOT NULL,
    idempotency_key text        NOT NULL,
    -- keccak256 of the canonical request: same key + same hash is a replay, another hash a conflict.
    request_hash    bytea       NOT NULL CHECK (octet_length(request_hash) = 32),
    -- The on-chain payment id: keccak256(abi.encode(integrator, idempotency_key)).
    payment_id      bytea       NOT NULL UNIQUE CHECK (octet_length(payment_id) = 32),
    chain_id        bigint      NOT NULL CHECK (chain_id > 0),
    token           bytea       NOT NULL CHECK (octet_length(token) = 20),
    funder          bytea       NOT NULL CHECK (octet_length(funder) = 20),
    -- Token base units: an integer below 2^128.
    amount          numeric(39, 0) NOT NULL CHECK (amount > 0 AND amount < 340282366920938463463374607431768211456),
    status          text        NOT NULL DEFAULT 'accepted'
                    CHECK (status IN ('accepted', 'batched', 'signed', 'submitted', 'settled', 'cancelled', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instructions_idempotency UNIQUE (integrator, idempotency_key)
);

-- How each instruction splits; position 0 takes the rounding remainder.
CREATE TABLE relayer.instruction_legs (
    instruction_id uuid     NOT NULL REFERENCES relayer.instructions (id) ON DELETE CASCADE,
    position       smallint NOT NULL CHECK (position >= 0),
    payee          bytea    NOT NULL CHECK (octet_length(payee) = 20),
    share          integer  NOT NULL CHECK (share > 0 AND share <= 1000000),
    PRIMARY KEY (instruction_id, position)
);

-- Rolling per-integrator caps sum recent amounts per chain and token.
CREATE INDEX instructions_recent ON relayer.instructions (integrator, chain_id, token, created_at);
-- The batcher takes pending work per chain, token and funder in arrival order.
CREATE INDEX instructions_pending ON relayer.instructions (chain_id, seq) WHERE status = 'accepted';
