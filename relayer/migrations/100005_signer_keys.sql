-- The relayer's signing keys per contract and role, and where each is in its rotation:
-- active (signs now) -> retiring (superseded; what it signed may still be in flight) -> retired (final).
CREATE TABLE relayer.signer_keys (
    chain_id     bigint      NOT NULL CHECK (chain_id > 0),
    contract     bytea       NOT NULL CHECK (octet_length(contract) = 20),
    -- The key's label on the token; the key itself never leaves it.
    label        text        NOT NULL CHECK (label <> ''),
    address      bytea       NOT NULL CHECK (octet_length(address) = 20),
    role         text        NOT NULL CHECK (role IN ('batch', 'sender')),
    status       text        NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The last time it became active (a rolled-back rotation activates a retiring key again).
    activated_at timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    PRIMARY KEY (chain_id, contract, address, role),
    CONSTRAINT signer_keys_retired_at CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);

-- At most one key signs for a contract in each role.
CREATE UNIQUE INDEX signer_keys_one_active ON relayer.signer_keys (chain_id, contract, role)
    WHERE status = 'active';
