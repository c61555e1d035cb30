-- Write capture: what runs inside the application's own transactions. Each synced
-- table gets statement-level triggers calling sequin_sf._capture_writes (Rust,
-- src/capture/), which reads the statement's transition tables and appends one entry
-- per changed row to <schema>._sync_write_log: inserts with the row's id only (their
-- values are read from the row when the writer picks them up), updates with the changed
-- columns' new values and the full row before, deletes with the full row before. A
-- transaction's entries beyond its first 100, and those of any statement changing more
-- than 100 rows, go in batches to <schema>._sync_write_batch instead, with their log ids
-- (outside savepoints, a transaction's batches are written as it commits:
-- src/capture/batch.rs); the worker unpacks them into the log before it reads it, so
-- they show in the log a moment later, in their order. Rows
-- refused by Salesforce's rules (read-only columns, restricted picklists) raise an error
-- at once (_refuse_write words it), as do TRUNCATE and operations the object does not
-- allow. Changes the worker applies itself run with sequin_sf.applying = on and are
-- never captured.
--
-- Log `values` and `previous` are keyed by column name (cheap to capture); the writer
-- maps columns to Salesforce field names through sequin_sf._columns when it sends.

-- Raised by the capture trigger (src/capture/rules.rs, which decides that a row breaks
-- a rule) when a change touches a column Salesforce does not let us write. Nothing of
-- the statement is kept: the error aborts it. The trigger calls it as the application's
-- role, hence the pinned search_path.
CREATE FUNCTION sequin_sf._refuse_write(
    p_schema text, p_table text, p_op text, p_values jsonb, p_readonly jsonb,
    p_picklists jsonb
) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col text;
    allowed jsonb;
BEGIN
    FOR col IN SELECT k FROM jsonb_object_keys(p_values) AS k ORDER BY k LOOP
        IF p_readonly ? col THEN
            RAISE EXCEPTION 'column "%" of %.% cannot be written: %', col, p_schema, p_table,
                p_readonly ->> col
                USING ERRCODE = 'generated_always',
                      HINT = format('Salesforce does not accept this field on %s; leave the column out of the %s.',
                                    lower(p_op), upper(p_op));
        END IF;
    END LOOP;
    FOR col IN SELECT k FROM jsonb_object_keys(p_values) AS k ORDER BY k LOOP
        allowed := p_picklists -> col;
        IF allowed IS NOT NULL AND jsonb_typeof(p_values -> col) <> 'null'
           AND NOT allowed @> jsonb_build_array(p_values -> col) THEN
            RAISE EXCEPTION 'value % is not allowed in column "%" of %.%: the Salesforce field is a restricted picklist',
                p_values -> col, col, p_schema, p_table
                USING ERRCODE = 'check_violation',
                      DETAIL = format('Allowed values: %s', allowed),
                      HINT = 'Use one of the allowed values, or turn the check off with sequin_sf.alter_write_settings(sync, check_picklists => false) if the picklist changed in Salesforce since the last describe.';
        END IF;
    END LOOP;
    RETURN p_values;
END
$$;

CREATE FUNCTION sequin_sf._refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sequin_sf.applying', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'TRUNCATE of synced table %.% is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
              DETAIL = 'Rows of a synced table mirror Salesforce records; TRUNCATE would bypass the write log, so Salesforce would keep the records and the table would silently disagree with it.',
              HINT = 'Use DELETE to delete the records in Salesforce too, or sequin_sf.remove_collection() to stop syncing the object.';
END
$$;

-- A synced table may not take part in inheritance or partitioning: a change made
-- through a parent (or to a child's rows through a synced parent) fires no capture on
-- the table whose rows it changes, so it would never reach Salesforce. Checked after
-- every CREATE TABLE and ALTER TABLE (a lookup in pg_inherits for the tables the
-- command touched); definer's rights, as the catalog it reads is the extension's.
CREATE FUNCTION sequin_sf._refuse_inheritance() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    synced regclass;
    other regclass;
BEGIN
    SELECT t.oid::regclass, CASE WHEN t.oid = i.inhrelid THEN i.inhparent ELSE i.inhrelid END::regclass
      INTO synced, other
      FROM pg_event_trigger_ddl_commands() d
      JOIN pg_inherits i ON d.objid IN (i.inhrelid, i.inhparent)
      JOIN sequin_sf._collections c ON c.table_oid IN (i.inhrelid, i.inhparent)
      JOIN pg_class t ON t.oid = c.table_oid
     WHERE d.classid = 'pg_catalog.pg_class'::regclass
     LIMIT 1;
    IF synced IS NOT NULL THEN
        RAISE EXCEPTION 'synced table % cannot take part in inheritance or partitioning (with %)', synced, other
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Changes made through a parent table, or to the rows of a child, do not fire the synced table''s write capture, so they would never reach Salesforce.',
                  HINT = 'Keep synced tables on their own; copy rows into a table of your own, or use a view over the synced table.';
    END IF;
END
$$;

-- begin: extension only (event triggers need a superuser: sql/plain/finish.sql tries)
CREATE EVENT TRIGGER sequin_sf_refuse_inheritance ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION sequin_sf._refuse_inheritance();
-- end: extension only

-- Revokes every privilege on a relation that was granted to anyone but its owner.
CREATE FUNCTION sequin_sf._revoke_grants(p_rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT DISTINCT a.grantee
               FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
              WHERE c.oid = p_rel AND a.grantee <> c.relowner LOOP
        IF g.grantee = 0 THEN
            EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', p_rel);
        ELSE
            EXECUTE format('REVOKE ALL ON %s FROM %I', p_rel, g.grantee::regrole::text);
        END IF;
    END LOOP;
END
$$;

-- Creates <schema>._sync_write_log and _sync_write_batch (idempotent).
CREATE FUNCTION sequin_sf._install_write_log(p_schema text) RETURNS void
LANGUAGE plpgsql
-- "already exists, skipping" notices on every reinstall say nothing useful
SET client_min_messages = warning
AS $install$
BEGIN
    -- No CHECK constraints on action and state, though only the values noted are ever
    -- written (by the capture triggers and the writer, nothing else): Postgres reads
    -- and plans a table's CHECK expressions afresh for every statement that inserts
    -- into it, which was a fifth of what capturing a one-row change cost.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS %1$I._sync_write_log (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name      text NOT NULL,
            object_name     text NOT NULL,
            row_id          bigint NOT NULL,
            action          text NOT NULL,  -- insert | update | delete
            api_id          text,
            state           text NOT NULL DEFAULT 'new',  -- new | pending | succeeded | failed
            previous        jsonb,
            "values"        jsonb,
            api_result      integer,
            api_message     text,
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            claimed_at      timestamptz,
            retry_of        bigint,
            session_pid     integer DEFAULT pg_backend_pid(),
            inserted_at     timestamptz NOT NULL DEFAULT now(),
            settled_at      timestamptz
        )$ddl$, p_schema);
    -- Only the capture triggers (running as the extension's owner) and the worker write
    -- the log: take back whatever default privileges of the schema handed out.
    PERFORM sequin_sf._revoke_grants(format('%I._sync_write_log', p_schema)::regclass);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS _sync_write_log_unsettled ON %1$I._sync_write_log (id)'
        ' WHERE state IN (''new'', ''pending'')', p_schema);
    -- A statement changing many rows logs them here, one row per thousand entries with
    -- the log ids they were given from the log's own sequence (src/capture/log.rs); the
    -- worker expands them into the log before it reads it (_write_expand_batches).
    -- Nothing else reads them: a batch's entries are the log's, only not yet unpacked.
    -- The rows before of updates and deletes are kept as heap tuples and become the
    -- log's jsonb when unpacked: building jsonb was most of what a large UPDATE's
    -- capture cost the application.
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS %1$I._sync_write_batch (
            id          bigint PRIMARY KEY,  -- the log id of its first entry
            table_name  text NOT NULL,
            object_name text NOT NULL,
            action      text NOT NULL,
            ids         bigint[] NOT NULL,   -- the entries' log ids, in order
            row_ids     bigint[] NOT NULL,
            api_ids     text[],
            row_type    jsonb,               -- the table's columns, for previous_rows
            previous_rows bytea[],           -- rows before, as heap tuples (src/capture/kept.rs)
            "values"    jsonb[],
            session_pid integer DEFAULT pg_backend_pid(),
            inserted_at timestamptz NOT NULL DEFAULT now()
        )$ddl$, p_schema);
    -- stored as they are: a batch lives until the worker's next round, and compressing
    -- it costs the application's statement more than writing it
    EXECUTE format('ALTER TABLE %I._sync_write_batch ALTER COLUMN ids SET STORAGE EXTERNAL,'
                   ' ALTER COLUMN row_ids SET STORAGE EXTERNAL, ALTER COLUMN api_ids SET STORAGE EXTERNAL,'
                   ' ALTER COLUMN previous_rows SET STORAGE EXTERNAL, ALTER COLUMN "values" SET STORAGE EXTERNAL',
                   p_schema);
    PERFORM sequin_sf._revoke_grants(format('%I._sync_write_batch', p_schema)::regclass);
    EXECUTE format($cmt$
        COMMENT ON TABLE %1$I._sync_write_batch IS
        'Entries of statements that changed many rows, waiting for the worker to unpack them into _sync_write_log (they already have their log ids). Read the log, not this table.'
        $cmt$, p_schema);
    EXECUTE format($cmt$
        COMMENT ON TABLE %1$I._sync_write_log IS
        'Every change made to this schema''s synced tables, in order, and what Salesforce answered: state new -> pending -> succeeded | failed; api_result is the HTTP status, api_message Salesforce''s message. Failed entries can be re-queued with sequin_sf.retry_writes().'
        $cmt$, p_schema);

END
$install$;

-- begin: extension only
-- The trigger function of a table's capture of one operation, as the clause CREATE
-- TRIGGER ... EXECUTE FUNCTION takes: the C capture (src/capture/), given the object,
-- the operation's rules and the columns sent as arguments. Beside the database
-- sql/plain/library.sql defines it instead, generating a PL/pgSQL function per table.
CREATE FUNCTION sequin_sf._capture_function(
    p_table regclass, p_op text, p_object text, p_rules jsonb, p_picklists jsonb, p_sent text[]
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('sequin_sf._capture_writes(%L, %L, %L%s)', p_object, p_rules, p_picklists,
                  (SELECT coalesce(string_agg(format(', %L', c), ''), '')
                     FROM unnest(p_sent) c WHERE c <> '_row_id'))
$$;
-- end: extension only

-- (Re)installs capture on one synced table with explicit rules. Idempotent.
--   p_noncreateable / p_nonupdateable: {column: why Salesforce refuses it}
--   p_picklists: {column: [allowed values]} for restricted picklists ('{}' = no check)
--   p_sent: the columns that map to Salesforce fields, the only ones sent (NULL = those
--           whose name does not start with "_"); a column added to the table later is
--           not sent until capture is installed again with it
--   p_refused_ops: {"INSERT"|"UPDATE"|"DELETE": why Salesforce refuses it for the object}
--
-- Capture is the function _capture_function names for each operation, called once per
-- statement with the statement's transition tables.
CREATE FUNCTION sequin_sf._install_write_triggers(
    p_table regclass, p_object text, p_noncreateable jsonb, p_nonupdateable jsonb,
    p_picklists jsonb, p_sent text[] DEFAULT NULL, p_refused_ops jsonb DEFAULT '{}'
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sch text;
    sent_cols text[];
    op text;
    picks jsonb := coalesce(p_picklists, '{}'::jsonb);
BEGIN
    SELECT n.nspname INTO sch
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    PERFORM sequin_sf._install_write_log(sch);
    sent_cols := coalesce(p_sent, ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
           AND left(a.attname, 1) <> '_'));
    PERFORM sequin_sf._remove_write_triggers(p_table);
    EXECUTE format('CREATE TRIGGER _sync_write_insert AFTER INSERT ON %s'
                   ' REFERENCING NEW TABLE AS _sf_new FOR EACH STATEMENT EXECUTE FUNCTION %s',
                   p_table, sequin_sf._capture_function(p_table, 'INSERT', p_object,
                                                        coalesce(p_noncreateable, '{}'), picks, sent_cols));
    EXECUTE format('CREATE TRIGGER _sync_write_update AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS _sf_old NEW TABLE AS _sf_new FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %s',
                   p_table, sequin_sf._capture_function(p_table, 'UPDATE', p_object,
                                                        coalesce(p_nonupdateable, '{}'), picks, sent_cols));
    EXECUTE format('CREATE TRIGGER _sync_write_delete AFTER DELETE ON %s'
                   ' REFERENCING OLD TABLE AS _sf_old FOR EACH STATEMENT EXECUTE FUNCTION %s',
                   p_table, sequin_sf._capture_function(p_table, 'DELETE', p_object, '{}', '{}', sent_cols));
    -- marks the statement as started, so that statements its triggers run are logged
    -- after it (src/capture/nested.rs)
    EXECUTE format('CREATE TRIGGER _sync_write_start BEFORE INSERT OR UPDATE OR DELETE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sequin_sf._capture_statement_starts()',
                   p_table);
    EXECUTE format('CREATE TRIGGER _sync_write_truncate BEFORE TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sequin_sf._refuse_truncate()', p_table);
    -- capture fires in sessions with session_replication_role = replica too (a common
    -- way to skip triggers in bulk loads): a change that escaped it would never be sent
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER _sync_write_insert,'
                   ' ENABLE ALWAYS TRIGGER _sync_write_update, ENABLE ALWAYS TRIGGER _sync_write_delete,'
                   ' ENABLE ALWAYS TRIGGER _sync_write_truncate, ENABLE ALWAYS TRIGGER _sync_write_start',
                   p_table);
    -- operations Salesforce does not allow on the object at all: refused before any row
    -- changes (one check per statement, nothing for the operations it allows)
    FOR op IN SELECT key FROM jsonb_each_text(coalesce(p_refused_ops, '{}')) LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE %s ON %s FOR EACH STATEMENT'
                       ' WHEN (current_setting(''sequin_sf.applying'', true) IS DISTINCT FROM ''on'')'
                       ' EXECUTE FUNCTION sequin_sf._refuse_object_write(%L, %L)',
                       '_sync_write_refuse_' || lower(op), op, p_table, p_object,
                       p_refused_ops ->> op);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', p_table,
                       '_sync_write_refuse_' || lower(op));
    END LOOP;
END
$$;

-- Raised before an INSERT, UPDATE or DELETE that Salesforce does not allow on the
-- object at all (TG_ARGV: the object, why).
CREATE FUNCTION sequin_sf._refuse_object_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% is not allowed: %', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[1]
        USING ERRCODE = 'feature_not_supported',
              DETAIL = format('Salesforce''s describe of %s says its records cannot be %s through the API, so the change could never be written back.',
                              TG_ARGV[0], CASE TG_OP WHEN 'INSERT' THEN 'created'
                                                     WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END),
              HINT = 'The table mirrors Salesforce read-only for this operation; change the records in Salesforce.';
END
$$;

-- Stops capture on a table (the log stays).
CREATE FUNCTION sequin_sf._remove_write_triggers(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    f regprocedure;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger
              WHERE tgrelid = p_table AND tgname IN ('_sync_write_insert', '_sync_write_update',
                                                     '_sync_write_delete', '_sync_write_truncate',
                                                     '_sync_write_refuse_insert',
                                                     '_sync_write_refuse_update',
                                                     '_sync_write_refuse_delete',
                                                     '_sync_write_start') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, p_table);
    END LOOP;
    -- the capture functions generated beside the database (sql/plain/library.sql) that
    -- no trigger of the schema uses any more: this table's, and those of tables dropped
    -- since (a function and its trigger are made in one transaction, so another
    -- install's are never seen apart)
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = p_table)
                AND p.proname ~ '^_sync_capture_[a-z]+_[0-9]+$'
                AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid) LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END
$$;

-- The sync and object behind a synced table, or an error naming what is missing.
CREATE FUNCTION sequin_sf._synced_table(p_schema text, p_table text,
                                        OUT sync_name text, OUT object_name text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT s.name, c.object_name INTO sync_name, object_name
      FROM sequin_sf._syncs s
      JOIN sequin_sf._collections c ON c.sync_name = s.name
     WHERE s.schema_name = p_schema AND c.table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table %.% is not a synced table', p_schema, p_table
            USING ERRCODE = 'undefined_table',
                  HINT = 'Synced tables are listed in sequin_sf.sync_status.';
    END IF;
END
$$;

-- Installs (or refreshes) capture on a synced table from its column mapping in
-- sequin_sf._columns. Called by whatever creates the table, and again after describe
-- changes its columns. Columns that map to no Salesforce field are never sent.
CREATE FUNCTION sequin_sf._install_capture(p_schema text, p_table text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    check_picks boolean;
    noncreate jsonb;
    nonupdate jsonb;
    picks jsonb;
    sent_cols text[];
    refused jsonb;
    rel regclass := format('%I.%I', p_schema, p_table)::regclass;
BEGIN
    t := sequin_sf._synced_table(p_schema, p_table);
    check_picks := (sequin_sf._write_settings_of(p_schema)).check_picklists;
    SELECT coalesce(jsonb_object_agg(m.column_name, sequin_sf._readonly_reason(m, 'create'))
                      FILTER (WHERE NOT m.createable OR NOT m.active OR m.calculated), '{}'),
           coalesce(jsonb_object_agg(m.column_name, sequin_sf._readonly_reason(m, 'update'))
                      FILTER (WHERE NOT m.updateable OR NOT m.active OR m.calculated), '{}'),
           coalesce(jsonb_object_agg(m.column_name, to_jsonb(m.picklist_values))
                      FILTER (WHERE check_picks AND m.active AND m.restricted_picklist
                                AND m.sf_type = 'picklist' AND m.picklist_values IS NOT NULL), '{}')
      INTO noncreate, nonupdate, picks
      FROM sequin_sf._columns m
     WHERE m.sync_name = t.sync_name AND m.object_name = t.object_name;
    -- the columns that map to fields: a column someone adds to the table is not sent
    sent_cols := ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND EXISTS (SELECT 1 FROM sequin_sf._columns m
                        WHERE m.sync_name = t.sync_name AND m.object_name = t.object_name
                          AND m.column_name = a.attname));
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'INSERT', CASE WHEN c.createable = false
                              THEN format('Salesforce does not allow creating %s records', c.object_name) END,
               'UPDATE', CASE WHEN c.updateable = false
                              THEN format('Salesforce does not allow updating %s records', c.object_name) END,
               'DELETE', CASE WHEN c.deletable = false
                              THEN format('Salesforce does not allow deleting %s records', c.object_name) END))
      INTO refused
      FROM sequin_sf._collections c
     WHERE c.sync_name = t.sync_name AND c.object_name = t.object_name;
    PERFORM sequin_sf._install_write_triggers(rel, t.object_name, noncreate, nonupdate, picks,
                                              sent_cols, refused);
END
$$;

CREATE FUNCTION sequin_sf._readonly_reason(m sequin_sf._columns, p_op text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT m.active AND m.note IS NOT NULL THEN
            format('column %s no longer follows field %s: %s', m.column_name, m.field_name, m.note)
        WHEN NOT m.active THEN format('field %s no longer exists in Salesforce', m.field_name)
        WHEN m.sf_type = 'base64' THEN
            format('%s holds the path Salesforce serves the file from; the sync does not send files',
                   m.column_name)
        WHEN m.field_name = 'Id' THEN 'the Salesforce Id is assigned by Salesforce'
        WHEN m.calculated THEN format('%s is a formula field, computed by Salesforce', m.field_name)
        WHEN m.sf_type IN ('address', 'location') THEN
            format('%s is a compound field; write its component columns instead', m.field_name)
        ELSE format('Salesforce does not allow %s of field %s',
                    CASE p_op WHEN 'create' THEN 'setting on create' ELSE 'updates' END,
                    m.field_name)
    END
$$;

CREATE FUNCTION sequin_sf._remove_capture(p_schema text, p_table text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(format('%I.%I', p_schema, p_table)) IS NOT NULL THEN
        PERFORM sequin_sf._remove_write_triggers(format('%I.%I', p_schema, p_table)::regclass);
    END IF;
END
$$;
