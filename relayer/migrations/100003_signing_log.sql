-- Append-only, hash-chained record of every signature the relayer's keys make.
CREATE TABLE relayer.signing_log (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    signer      bytea       NOT NULL CHECK (octet_length(signer) = 20),
    digest      bytea       NOT NULL CHECK (octet_length(digest) = 32),
    purpose     text        NOT NULL CHECK (purpose IN ('batch', 'transaction')),
    reference   text        NOT NULL,
    signed_at_us bigint     NOT NULL,
    prev_hash   bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    entry_hash  bytea       NOT NULL CHECK (octet_length(entry_hash) = 32)
);

-- Rows are never changed or removed by the application; the hash chain shows it if anyone does.
CREATE FUNCTION relayer.signing_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'relayer.signing_log is append-only';
END;
$$;
CREATE TRIGGER signing_log_append_only BEFORE UPDATE OR DELETE ON relayer.signing_log
    FOR EACH ROW EXECUTE FUNCTION relayer.signing_log_append_only();
