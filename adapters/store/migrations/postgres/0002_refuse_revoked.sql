-- Raises SQLSTATE OF001 when one of `grants` was revoked, so that storing tokens and the
-- check that their grant is alive go in one pipelined transaction: the error aborts it,
-- and its COMMIT becomes a rollback.
CREATE FUNCTION oidc_flow_refuse_revoked(grants TEXT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM revoked_grants WHERE grant_id = ANY(grants)) THEN
        RAISE EXCEPTION 'a grant was revoked' USING ERRCODE = 'OF001';
    END IF;
END
$$;
