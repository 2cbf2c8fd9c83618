-- The PL/Proxy functions and their wrappers are created by the installing superuser (plproxy is
-- an untrusted language, so only a superuser creates functions in it); annals_owner owns them,
-- like everything else Annals installs.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
              WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_proxy'::regnamespace)
                AND p.proowner <> 'annals_owner'::regrole LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO annals_owner', f);
    END LOOP;
END
$$;
