-- The guard of a transaction that stores tokens or revokes grants, in one statement: it
-- takes the transaction-scoped advisory lock of every grant in `touched` (sorted by key,
-- so two transactions cannot deadlock), then raises SQLSTATE OF001 if a grant in `stored`
-- was revoked. Its checks run after its locks, each with a fresh snapshot (a VOLATILE
-- function under READ COMMITTED), so a revocation another node committed while this one
-- waited is seen. The error aborts the transaction, and its COMMIT becomes a rollback.
CREATE FUNCTION oidc_flow_guard_grants(lock_class INTEGER, touched TEXT[], stored TEXT[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    key INTEGER;
BEGIN
    FOR key IN SELECT DISTINCT hashtext(g) FROM unnest(touched) AS g ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(lock_class, key);
    END LOOP;
    IF EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = ANY(stored)) THEN
        RAISE EXCEPTION 'a grant was revoked' USING ERRCODE = 'OF001';
    END IF;
END
$$;
