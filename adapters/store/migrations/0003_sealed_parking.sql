-- Parked authorizations are sealed into the browser's form (oidc_flow::parking) and no
-- longer stored; what the store keeps is the single-use mark of each one that was used.
DROP TABLE pending_authorizations;

CREATE TABLE parked_used (
    hash BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
