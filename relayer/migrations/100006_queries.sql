-- Reads for the API (relayer::query): listing per integrator, filtering by payee, and a feed of
-- instruction status changes that readers follow with a cursor.

-- An integrator's payments, newest first, paged by seq.
CREATE INDEX instructions_integrator_seq ON relayer.instructions (integrator, seq);
-- Payments that pay a given merchant.
CREATE INDEX instruction_legs_payee ON relayer.instruction_legs (payee);

-- Every status transition of an instruction, written by the trigger below in the transaction that
-- makes it, so no writer (batcher, submitter, cancel) has to remember to record it.
CREATE TABLE relayer.instruction_changes (
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id. A reader only takes changes below the oldest transaction still
    -- running (its snapshot's xmin): a change that commits late can then never land behind the
    -- reader's cursor, which a cursor on a timestamp or on seq alone would allow.
    xid            bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    instruction_id uuid        NOT NULL REFERENCES relayer.instructions (id) ON DELETE CASCADE,
    integrator     text        NOT NULL,
    old_status     text        NOT NULL,
    new_status     text        NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instruction_changes_feed ON relayer.instruction_changes (xid, seq);

CREATE FUNCTION relayer.record_instruction_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO relayer.instruction_changes (instruction_id, integrator, old_status, new_status)
    SELECT n.id, n.integrator, o.status, n.status
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status
    ORDER BY n.seq;
    RETURN NULL;
END;
$$;

-- One statement-level trigger with transition tables: a batch of 500 instructions is one INSERT.
CREATE TRIGGER instruction_status_changes AFTER UPDATE ON relayer.instructions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relayer.record_instruction_changes();
