-- API keys: bearer tokens stored hashed, each with a role and an owner.
-- Versions: the api's migrations are numbered 3xxxxx (relayer 1xxxxx, indexer 2xxxxx).
CREATE SCHEMA IF NOT EXISTS api;

CREATE TABLE api.api_keys (
    id          uuid        PRIMARY KEY,
    -- The public part of the token (`settle_<prefix>_<secret>`), used to find the row.
    prefix      text        NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{12}$'),
    -- SHA-256 of the secret part; the secret itself is shown once and never stored.
    secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    role        text        NOT NULL CHECK (role IN ('integrator', 'merchant', 'auditor', 'admin')),
    -- An integrator's name, a merchant's EIP-55 address; free text for auditors and admins.
    owner       text        NOT NULL CHECK (owner <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
