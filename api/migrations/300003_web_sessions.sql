-- Browser sessions of the web UI (api/src/web): a key entered once at /ui/login opens a session.
-- Only the SHA-256 of the session token is stored; the token itself lives in an HttpOnly cookie.
-- A session dies with its key: revoking the key (or deleting it) ends every session it opened.
CREATE TABLE api.web_sessions (
    token_hash bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    key_id     uuid        NOT NULL REFERENCES api.api_keys (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_sessions_key ON api.web_sessions (key_id);
