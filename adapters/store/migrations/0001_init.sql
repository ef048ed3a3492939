-- Codes and tokens are stored only as SHA-256 digests (hash). Times are Unix seconds.
-- The hot tables keep rows in rowid order, so consecutive inserts fill the same page and a
-- commit writes few pages; the digest (random) is a small unique index. Only the grant index
-- (needed to revoke a grant) is added; expiry is purged by a scan once a minute rather than
-- paying for an index on every insert.
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
    hash BLOB NOT NULL UNIQUE,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX codes_grant ON codes (grant_id);

CREATE TABLE access_tokens (
    hash BLOB NOT NULL UNIQUE,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);

CREATE TABLE refresh_tokens (
    hash BLOB NOT NULL UNIQUE,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

CREATE TABLE nonces (
    client_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
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
    expires_at INTEGER NOT NULL
);

CREATE TABLE pending_authorizations (
    id BLOB PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    id BLOB PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    pem TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
