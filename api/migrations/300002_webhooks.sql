-- Webhooks: integrators' endpoints, the events sent to them and a log of every delivery attempt.

CREATE TABLE api.webhook_endpoints (
    id          uuid        PRIMARY KEY,
    integrator  text        NOT NULL CHECK (integrator <> ''),
    url         text        NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    -- The HMAC-SHA256 key of the `Settle-Signature` header. Signing needs the key itself, so it is
    -- stored as issued (unlike API keys, which are only compared and are stored hashed).
    secret      text        NOT NULL CHECK (secret <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_integrator ON api.webhook_endpoints (integrator, created_at);

-- How far the delivery worker has read the relayer's feed of status changes (one row).
CREATE TABLE api.webhook_feed (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    xid       bigint  NOT NULL,
    seq       bigint  NOT NULL
);
INSERT INTO api.webhook_feed (singleton, xid, seq) VALUES (true, 0, 0);

-- One event per status change of a payment whose integrator has an endpoint. The body is fixed when
-- the event is made, so every attempt sends the same bytes.
CREATE TABLE api.webhook_events (
    id             uuid        PRIMARY KEY,
    type           text        NOT NULL CHECK (type IN ('payment.status_changed')),
    integrator     text        NOT NULL,
    payment        uuid        NOT NULL,
    payment_status text        NOT NULL,
    body           text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- An event on its way to one endpoint: pending (next_attempt_at says when) -> delivered, or failed
-- after the last attempt.
CREATE TABLE api.webhook_deliveries (
    id               uuid        PRIMARY KEY,
    seq              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    event            uuid        NOT NULL REFERENCES api.webhook_events (id),
    endpoint         uuid        NOT NULL REFERENCES api.webhook_endpoints (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_status_code integer,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (event, endpoint),
    CONSTRAINT webhook_deliveries_pending CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT webhook_deliveries_delivered CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due ON api.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON api.webhook_deliveries (endpoint, seq);

-- Every attempt: the HTTP status the endpoint answered, or why there was none.
CREATE TABLE api.webhook_attempts (
    delivery    uuid        NOT NULL REFERENCES api.webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt > 0),
    status_code integer,
    error       text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery, attempt)
);
