-- The PostgreSQL schema, the same tables as SQLite's (migrations/0001-0003) in one step.
-- Codes and tokens are kept only as digests (hash); times are Unix seconds. A digest of a
-- time-keyed secret starts with its minting millisecond, so the primary key indexes grow
-- at their end. Only the grant indexes (revoking a grant) are added: expiry is purged by a
-- scan once a minute rather than paying for an index on every insert.
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE users (
    username TEXT PRIMARY KEY,
    subject TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    claims TEXT NOT NULL
);

CREATE TABLE codes (
    hash BYTEA PRIMARY KEY,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    taken BOOLEAN NOT NULL DEFAULT false,
    expires_at BIGINT NOT NULL
);
CREATE INDEX codes_grant ON codes (grant_id);

CREATE TABLE access_tokens (
    hash BYTEA PRIMARY KEY,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);

CREATE TABLE refresh_tokens (
    hash BYTEA PRIMARY KEY,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    taken BOOLEAN NOT NULL DEFAULT false,
    expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

CREATE TABLE nonces (
    client_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, nonce)
);

CREATE TABLE consents (
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    PRIMARY KEY (subject, client_id)
);

CREATE TABLE revoked_grants (
    grant_id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id BYTEA PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    sid TEXT,
    subject TEXT,
    last_used BIGINT NOT NULL
);
CREATE INDEX sessions_sid ON sessions (sid);
CREATE INDEX sessions_subject ON sessions (subject);

-- The clients that took part in a session (for back-channel logout).
CREATE TABLE session_clients (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

-- The PEM is sealed with the data key (AES-256-GCM); `rotated_at` NULL: the key signs,
-- else it is only published in the JWKS.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    sealed_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);

-- The single-use marks of parked authorizations that were used.
CREATE TABLE parked_used (
    hash BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Change counters, bumped by triggers, so every node sees a client changed by another node
-- or by the command line with one cheap read.
CREATE TABLE change_counters (
    name TEXT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO change_counters (name, n) VALUES ('clients', 0), ('signing_keys', 0);
CREATE FUNCTION oidc_flow_bump_counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_counters SET n = n + 1 WHERE name = TG_ARGV[0];
    RETURN NULL;
END
$$;
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION oidc_flow_bump_counter('clients');
CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION oidc_flow_bump_counter('signing_keys');
