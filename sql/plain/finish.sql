-- Run by sequin-sf after sql/api.sql, when it installs the objects without the
-- extension (crates/sidecar/src/install.rs), and again by `sequin-sf install` on
-- objects it installed before: what the extension's script does with a superuser's
-- rights, tried and said when the role cannot.

-- Refusing inheritance for synced tables needs an event trigger, which only a superuser
-- may create (on RDS and Cloud SQL, their admin roles can). Without it, a table made a
-- child or parent of a synced table is not refused: the README says so.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'sequin_sf_refuse_inheritance') THEN
        RETURN;
    END IF;
    CREATE EVENT TRIGGER sequin_sf_refuse_inheritance ON ddl_command_end
        WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
        EXECUTE FUNCTION sequin_sf._refuse_inheritance();
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'sequin_sf: the role % may not create event triggers, so inheritance and partitioning of synced tables are not refused', current_user
        USING HINT = 'Keep synced tables out of inheritance and partitioning; a superuser (or rds_superuser, cloudsqlsuperuser) can run sequin-sf install once to add the check.';
END
$$;
