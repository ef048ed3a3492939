-- Stores a request's access and refresh tokens in one statement (no BEGIN and COMMIT to
-- send): the grant guard of 0002 first (the grants' locks, then the refusal if one was
-- revoked), then the rows, given as parallel arrays.
CREATE FUNCTION oidc_flow_store_tokens(
    lock_class INTEGER,
    grants TEXT[],
    access_hash BYTEA[], access_grant TEXT[], access_data TEXT[], access_expires BIGINT[],
    refresh_hash BYTEA[], refresh_grant TEXT[], refresh_data TEXT[], refresh_expires BIGINT[]
) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM oidc_flow_guard_grants(lock_class, grants, grants);
    INSERT INTO access_tokens (hash, grant_id, data, expires_at)
        SELECT * FROM unnest(access_hash, access_grant, access_data, access_expires);
    INSERT INTO refresh_tokens (hash, grant_id, data, expires_at)
        SELECT * FROM unnest(refresh_hash, refresh_grant, refresh_data, refresh_expires);
END
$$;
