-- Write capture and write-log bookkeeping: the per-sync write log, the capture triggers
-- on synced tables, the settings the writer reads, the functions the worker's writer
-- calls to read, claim and settle entries, and the user-facing await_writes/retry_writes.
--
-- Capture is set-based (statement triggers with transition tables) so a bulk UPDATE
-- costs one INSERT ... SELECT into the log, not one plpgsql call per row. Changes the
-- worker applies itself run with sequin_sf.applying = on and are never captured.
--
-- Log `values` and `previous` are keyed by column name (cheap to capture); the writer
-- maps columns to Salesforce field names through sequin_sf._columns when it sends.

-- Per-sync write settings (one row per sync schema; absent = defaults).
CREATE TABLE sequin_sf.write_settings (
    schema_name         text PRIMARY KEY,
    -- records per sObject Collections request (1..200)
    batch_size          integer NOT NULL DEFAULT 200 CHECK (batch_size BETWEEN 1 AND 200),
    -- how long a change may wait for its batch to fill before it is sent anyway
    max_batch_wait      interval NOT NULL DEFAULT '0 seconds'
                        CHECK (max_batch_wait >= '0 seconds' AND max_batch_wait <= '1 hour'),
    -- send updates with If-Unmodified-Since the row's prior system_modstamp
    conflict_detection  boolean NOT NULL DEFAULT false,
    -- settled log entries older than this are pruned
    write_log_retention interval NOT NULL DEFAULT '7 days'
                        CHECK (write_log_retention >= '0 seconds'),
    -- refuse unknown values of restricted picklists at write time
    check_picklists     boolean NOT NULL DEFAULT true,
    -- Salesforce object -> external id field used to make creates idempotent (upsert)
    external_id_fields  jsonb NOT NULL DEFAULT '{}'::jsonb
                        CHECK (jsonb_typeof(external_id_fields) = 'object'),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('sequin_sf.write_settings', '');

-- Raised by the capture trigger when a change touches a column Salesforce does not let
-- us write. Nothing of the statement is kept: the error aborts it.
CREATE FUNCTION sequin_sf._refuse_write(
    p_schema text, p_table text, p_op text, p_values jsonb, p_readonly jsonb,
    p_picklists jsonb
) RETURNS jsonb
LANGUAGE plpgsql AS $$
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

-- Creates <schema>._sync_write_log and the schema's capture function (idempotent).
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
    EXECUTE format($cmt$
        COMMENT ON TABLE %1$I._sync_write_log IS
        'Every change made to this schema''s synced tables, in order, and what Salesforce answered: state new -> pending -> succeeded | failed; api_result is the HTTP status, api_message Salesforce''s message. Failed entries can be re-queued with sequin_sf.retry_writes().'
        $cmt$, p_schema);

END
$install$;

-- (Re)installs capture on one synced table with explicit rules. Idempotent.
--   p_noncreateable / p_nonupdateable: {column: why Salesforce refuses it}
--   p_picklists: {column: [allowed values]} for restricted picklists ('{}' = no check)
--   p_local: columns never sent (NULL = those whose name starts with "_")
--
-- The trigger function is generated per table with the column rules written out as
-- plain SQL expressions, so capture costs a few C-level operations per row rather than
-- a walk over each row's jsonb (this is what keeps the trigger overhead low).
CREATE FUNCTION sequin_sf._install_write_triggers(
    p_table regclass, p_object text, p_noncreateable jsonb, p_nonupdateable jsonb,
    p_picklists jsonb, p_local text[] DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sch text;
    tbl text;
    fn text;
    fn_upd text;
    local_cols text[];
    sent_cols text[];
    ins_bad text;
    upd_bad text;
    unchanged text;
    noncreate jsonb := coalesce(p_noncreateable, '{}'::jsonb);
    nonupdate jsonb := coalesce(p_nonupdateable, '{}'::jsonb);
    picks jsonb := coalesce(p_picklists, '{}'::jsonb);
BEGIN
    SELECT n.nspname, c.relname INTO sch, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    PERFORM sequin_sf._install_write_log(sch);
    local_cols := coalesce(p_local, ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
           AND left(a.attname, 1) = '_'));
    IF NOT ('_row_id' = ANY (local_cols)) THEN
        local_cols := local_cols || '_row_id'::text;
    END IF;
    sent_cols := ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT (a.attname::text = ANY (local_cols))
         ORDER BY a.attnum);
    -- a row breaks the rules when it sets a refused column or an unknown picklist value
    SELECT string_agg(x, ' OR ') INTO ins_bad FROM (
        SELECT format('n.%I IS NOT NULL', c) AS x FROM unnest(sent_cols) c WHERE noncreate ? c
        UNION ALL
        SELECT format('(n.%1$I IS NOT NULL AND n.%1$I::text <> ALL (%2$L::text[]))', c,
                      ARRAY(SELECT jsonb_array_elements_text(picks -> c)))
          FROM unnest(sent_cols) c WHERE picks ? c) r;
    SELECT string_agg(x, ' OR ') INTO upd_bad FROM (
        SELECT format('NEW.%1$I IS DISTINCT FROM OLD.%1$I', c) AS x FROM unnest(sent_cols) c
         WHERE nonupdate ? c
        UNION ALL
        SELECT format('(NEW.%1$I IS DISTINCT FROM OLD.%1$I AND NEW.%1$I IS NOT NULL'
                      ' AND NEW.%1$I::text <> ALL (%2$L::text[]))', c,
                      ARRAY(SELECT jsonb_array_elements_text(picks -> c)))
          FROM unnest(sent_cols) c WHERE picks ? c) r;
    SELECT string_agg(format('CASE WHEN NEW.%1$I IS NOT DISTINCT FROM OLD.%1$I THEN %1$L END', c), ', ')
      INTO unchanged FROM unnest(sent_cols) c;
    fn := format('%I.%I', sch, '_sync_capture_' || p_table::oid);
    fn_upd := format('%I.%I', sch, '_sync_capture_' || p_table::oid || '_update');
    PERFORM sequin_sf._create_capture_function(fn, format($body$
        BEGIN
            IF current_setting('sequin_sf.applying', true) = 'on' THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO %2$I._sync_write_log (table_name, object_name, row_id, action, "values")
                -- "values" is read from the row when the writer picks the entry up
                -- (_write_fill_inserts): turning every inserted row into jsonb here
                -- would more than double the cost of a bulk INSERT
                SELECT %3$L, %4$L, n._row_id, 'insert',
                       CASE WHEN %9$s
                            THEN sequin_sf._refuse_write(%2$L, %3$L, 'INSERT',
                                     jsonb_strip_nulls(to_jsonb(n)) - %5$L::text[], %6$L, %8$L)
                       END
                  FROM _sf_new n;
            ELSE
                INSERT INTO %2$I._sync_write_log (table_name, object_name, row_id, action, api_id, previous)
                SELECT %3$L, %4$L, o._row_id, 'delete', o.id, to_jsonb(o)
                  FROM _sf_old o;
            END IF;
            RETURN NULL;
        END
        $body$, NULL, sch, tbl, p_object, local_cols, noncreate, nonupdate, picks,
              coalesce(ins_bad, 'false')));
    -- Updates are captured per row, which has OLD and NEW at hand. A statement trigger
    -- pairing the OLD and NEW transition tables by _row_id (hash join; a nested loop
    -- is quadratic and plpgsql keeps the first plan) was measured against this one
    -- (bench/trigger_overhead.py): 500-row UPDATEs ran ~25% faster with it, but one-row
    -- UPDATEs up to ~15% slower (the join plan's per-statement setup), so rows it is.
    PERFORM sequin_sf._create_capture_function(fn_upd, format($body$
        DECLARE
            chg jsonb := to_jsonb(NEW) - %4$L::text[] - ARRAY[%7$s];
        BEGIN
            IF chg = '{}'::jsonb THEN
                RETURN NULL;
            END IF;
            IF %8$s THEN
                PERFORM sequin_sf._refuse_write(%2$L, %3$L, 'UPDATE', chg, %5$L, %6$L);
            END IF;
            INSERT INTO %2$I._sync_write_log (table_name, object_name, row_id, action, api_id, previous, "values")
            VALUES (%3$L, %9$L, NEW._row_id, 'update', OLD.id, to_jsonb(OLD), chg);
            RETURN NULL;
        END
        $body$, NULL, sch, tbl, local_cols, nonupdate, picks,
              coalesce(unchanged, 'NULL::text'), coalesce(upd_bad, 'false'),
              p_object));
    PERFORM sequin_sf._remove_write_triggers(p_table);
    EXECUTE format('CREATE TRIGGER _sync_write_insert AFTER INSERT ON %s'
                   ' REFERENCING NEW TABLE AS _sf_new FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %s()', p_table, fn);
    -- the worker's own changes (sequin_sf.applying = on) skip the function call entirely
    EXECUTE format('CREATE TRIGGER _sync_write_update AFTER UPDATE ON %s FOR EACH ROW'
                   ' WHEN (current_setting(''sequin_sf.applying'', true) IS DISTINCT FROM ''on'')'
                   ' EXECUTE FUNCTION %s()', p_table, fn_upd);
    EXECUTE format('CREATE TRIGGER _sync_write_delete AFTER DELETE ON %s'
                   ' REFERENCING OLD TABLE AS _sf_old FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %s()', p_table, fn);
    EXECUTE format('CREATE TRIGGER _sync_write_truncate BEFORE TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sequin_sf._refuse_truncate()', p_table);
END
$$;

-- Creates (or replaces) a generated capture trigger function. The body holds text from
-- Salesforce (picklist values, names), so it is passed as a quoted literal, which no
-- text can end, never inside a fixed dollar-quote tag. The function runs as the
-- extension's owner, so that application roles need no rights on the write log (and
-- cannot forge entries), with search_path pinned so no role can stand in for what it calls.
CREATE FUNCTION sequin_sf._create_capture_function(p_name text, p_body text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql'
                   ' SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                   p_name, p_body);
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', p_name);
END
$$;

-- Stops capture on a table (the log stays).
CREATE FUNCTION sequin_sf._remove_write_triggers(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger
              WHERE tgrelid = p_table AND tgname IN ('_sync_write_insert', '_sync_write_update',
                                                     '_sync_write_delete', '_sync_write_truncate') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, p_table);
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
    local_cols text[];
    rel regclass := format('%I.%I', p_schema, p_table)::regclass;
BEGIN
    t := sequin_sf._synced_table(p_schema, p_table);
    SELECT coalesce((SELECT w.check_picklists FROM sequin_sf.write_settings w
                      WHERE w.schema_name = p_schema), true) INTO check_picks;
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
    local_cols := ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1 FROM sequin_sf._columns m
                            WHERE m.sync_name = t.sync_name AND m.object_name = t.object_name
                              AND m.column_name = a.attname));
    PERFORM sequin_sf._install_write_triggers(rel, t.object_name, noncreate, nonupdate, picks,
                                              local_cols);
END
$$;

CREATE FUNCTION sequin_sf._readonly_reason(m sequin_sf._columns, p_op text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT m.active THEN format('field %s no longer exists in Salesforce', m.field_name)
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

-- ---------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------

CREATE FUNCTION sequin_sf._sync_schema(p_sync text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    sch text;
BEGIN
    SELECT schema_name INTO sch FROM sequin_sf._syncs WHERE name = p_sync;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', p_sync
            USING ERRCODE = 'undefined_object', HINT = 'Syncs are listed in sequin_sf.syncs.';
    END IF;
    RETURN sch;
END
$$;

-- external_id_fields is {"Object": "Field"}, each a synced object and one of its fields.
CREATE FUNCTION sequin_sf._check_external_id_fields(p_sync text, p_fields jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    IF p_fields IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_fields) <> 'object' THEN
        RAISE EXCEPTION 'external_id_fields must be a JSON object, got %', p_fields
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example ''{"Contact": "External_Id__c"}'': object API name -> external id field';
    END IF;
    FOR e IN SELECT key, value FROM jsonb_each(p_fields) LOOP
        IF jsonb_typeof(e.value) <> 'string' OR NOT EXISTS (
               SELECT 1 FROM sequin_sf._columns m
                WHERE m.sync_name = p_sync AND m.object_name = e.key
                  AND m.field_name = e.value #>> '{}' AND m.active) THEN
            RAISE EXCEPTION 'external_id_fields: % is not a field of a collection of sync "%"',
                            e.key || '.' || (e.value #>> '{}'), p_sync
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'name a synced object and its external id field as Salesforce spells them; SELECT collection, field_name FROM sequin_sf.columns lists them';
        END IF;
    END LOOP;
END
$$;

-- Changes a sync's write settings; NULL leaves a setting as it is.
CREATE FUNCTION sequin_sf.alter_write_settings(
    sync_name text,
    batch_size integer DEFAULT NULL,
    max_batch_wait interval DEFAULT NULL,
    conflict_detection boolean DEFAULT NULL,
    write_log_retention interval DEFAULT NULL,
    check_picklists boolean DEFAULT NULL,
    external_id_fields jsonb DEFAULT NULL
) RETURNS sequin_sf.write_settings
LANGUAGE plpgsql AS $$
DECLARE
    sch text := sequin_sf._sync_schema(sync_name);
    out sequin_sf.write_settings;
    t record;
BEGIN
    IF batch_size IS NOT NULL AND batch_size NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 200, got %', batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Salesforce takes at most 200 records per sObject Collections request.';
    END IF;
    PERFORM sequin_sf._check_interval('max_batch_wait', max_batch_wait, '0 seconds', '1 hour',
        'how long a change may wait for its batch to fill; 0 sends at once');
    PERFORM sequin_sf._check_interval('write_log_retention', write_log_retention, '1 second', '10 years',
        'settled log entries older than this are pruned; 7 days is the default');
    PERFORM sequin_sf._check_external_id_fields(sync_name, external_id_fields);
    INSERT INTO sequin_sf.write_settings AS w (schema_name) VALUES (sch)
        ON CONFLICT (schema_name) DO NOTHING;
    UPDATE sequin_sf.write_settings w
       SET batch_size = coalesce(alter_write_settings.batch_size, w.batch_size),
           max_batch_wait = coalesce(alter_write_settings.max_batch_wait, w.max_batch_wait),
           conflict_detection = coalesce(alter_write_settings.conflict_detection, w.conflict_detection),
           write_log_retention = coalesce(alter_write_settings.write_log_retention, w.write_log_retention),
           check_picklists = coalesce(alter_write_settings.check_picklists, w.check_picklists),
           external_id_fields = coalesce(alter_write_settings.external_id_fields, w.external_id_fields),
           updated_at = now()
     WHERE w.schema_name = sch
    RETURNING * INTO out;
    IF check_picklists IS NOT NULL THEN
        FOR t IN SELECT c.table_name FROM sequin_sf._collections c
                  WHERE c.sync_name = alter_write_settings.sync_name LOOP
            IF to_regclass(format('%I.%I', sch, t.table_name)) IS NOT NULL THEN
                PERFORM sequin_sf._install_capture(sch, t.table_name);
            END IF;
        END LOOP;
    END IF;
    RETURN out;
END
$$;

-- ---------------------------------------------------------------------------------
-- The writer's side (called by the background worker through SPI)
-- ---------------------------------------------------------------------------------

-- Unsettled entries in log order with their values keyed by Salesforce field names, and
-- the sync's settings, as one jsonb document:
--   {"settings": {...}, "marker_prefix": "...", "entries": [{log_id, row_id, table_name,
--    object, action, api_id, state, fields, unmapped, unmodified_since, ready, age}]}
CREATE FUNCTION sequin_sf._write_queue(p_schema text, p_limit integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    sync text;
    settings jsonb;
    entries jsonb;
    ready_n bigint;
    oldest float8;
BEGIN
    SELECT name INTO sync FROM sequin_sf._syncs WHERE schema_name = p_schema;
    IF sync IS NULL OR to_regclass(format('%I._sync_write_log', p_schema)) IS NULL THEN
        RETURN jsonb_build_object('entries', '[]'::jsonb);
    END IF;
    SELECT jsonb_build_object(
               'batch_size', coalesce(w.batch_size, 200),
               'max_batch_wait', extract(epoch FROM coalesce(w.max_batch_wait, '0 s')),
               'conflict_detection', coalesce(w.conflict_detection, false),
               'external_id_fields', coalesce(w.external_id_fields, '{}'),
               'retention', extract(epoch FROM coalesce(w.write_log_retention, '7 days')))
      INTO settings
      FROM (SELECT 1) one LEFT JOIN sequin_sf.write_settings w ON w.schema_name = p_schema;
    -- Cheap check first (the worker asks several times a second): is anything due, and
    -- has a batch filled or its oldest change waited long enough?
    EXECUTE format('SELECT count(*), extract(epoch FROM now() - min(inserted_at))'
                   '  FROM (SELECT inserted_at FROM %I._sync_write_log'
                   '         WHERE state IN (''new'', ''pending'')'
                   '           AND (next_attempt_at IS NULL OR next_attempt_at <= now())'
                   '         ORDER BY id LIMIT $1) r', p_schema)
      INTO ready_n, oldest USING (settings ->> 'batch_size')::int;
    IF ready_n = 0 OR (ready_n < (settings ->> 'batch_size')::int
                       AND oldest < (settings ->> 'max_batch_wait')::float8) THEN
        RETURN jsonb_build_object('settings', settings, 'entries', '[]'::jsonb);
    END IF;
    PERFORM sequin_sf._write_fill_inserts(p_schema, sync);
    EXECUTE format($q$
        SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.log_id), '[]'::jsonb) FROM (
          SELECT l.id AS log_id, l.row_id, l.table_name, l.object_name AS object, l.action,
                 l.api_id, l.state, l.attempts,
                 (SELECT coalesce(jsonb_object_agg(m.field_name, v.value), '{}'::jsonb)
                    FROM jsonb_each(l."values") v
                    JOIN sequin_sf._columns m
                      ON m.sync_name = $1 AND m.object_name = l.object_name
                     AND m.column_name = v.key) AS fields,
                 (SELECT coalesce(jsonb_agg(v.key), '[]'::jsonb)
                    FROM jsonb_each(l."values") v
                   WHERE NOT EXISTS (SELECT 1 FROM sequin_sf._columns m
                                      WHERE m.sync_name = $1 AND m.object_name = l.object_name
                                        AND m.column_name = v.key)) AS unmapped,
                 -- unchanged since the row last synced, or since our own last write
                 -- to the record succeeded (its new stamp has not been polled yet)
                 CASE WHEN $3 AND l.action = 'update' THEN
                     greatest((l.previous ->> 'system_modstamp')::timestamptz, w.last_ok)
                 END AS unmodified_since,
                 -- An insert's values are filled from its row by the statement before
                 -- this one, which has its own snapshot: an insert committed in between
                 -- is seen here unfilled and waits for the next round, never sent empty.
                 ((l.next_attempt_at IS NULL OR l.next_attempt_at <= now())
                  AND NOT (l.action = 'insert' AND l."values" IS NULL)) AS ready,
                 extract(epoch FROM now() - l.inserted_at) AS age
            FROM %1$I._sync_write_log l
            LEFT JOIN (SELECT s.api_id, max(s.settled_at) AS last_ok
                         FROM %1$I._sync_write_log s
                        WHERE $3 AND s.state = 'succeeded' AND s.api_id IS NOT NULL
                          AND s.action IN ('insert', 'update')
                        GROUP BY s.api_id) w ON w.api_id = l.api_id
           WHERE l.state IN ('new', 'pending')
           ORDER BY l.id
           LIMIT $2) e
        $q$, p_schema)
      INTO entries
      USING sync, p_limit, (settings ->> 'conflict_detection')::boolean;
    RETURN jsonb_build_object(
        'settings', settings,
        -- unique to this cluster, database and schema: external id markers of creates
        -- never collide with another sync writing to the same org
        -- and to this sync: a sync created again in the same schema has a new key
        'marker_prefix', 'sqsf-' || left(md5((SELECT system_identifier::text FROM pg_control_system())
                                             || current_database() || p_schema
                                             || (SELECT marker_key FROM sequin_sf._syncs
                                                  WHERE name = sync)), 10) || '-',
        'entries', entries);
END
$$;

-- Fills in the values of queued inserts from their rows, set-based per table: the
-- row's set columns that map to Salesforce fields. A row deleted meanwhile gets '{}':
-- its delete was committed before this statement's snapshot, so its delete entry is
-- queued too and cancels the insert. Only entries filled here are ever sent (see the
-- ready flag of _write_queue).
CREATE FUNCTION sequin_sf._write_fill_inserts(p_schema text, p_sync text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    unsent text[];
BEGIN
    FOR t IN EXECUTE format('SELECT DISTINCT table_name, object_name FROM %I._sync_write_log'
                            ' WHERE state IN (''new'', ''pending'') AND action = ''insert'''
                            ' AND "values" IS NULL', p_schema) LOOP
        IF to_regclass(format('%I.%I', p_schema, t.table_name)) IS NULL THEN
            -- nothing left to read the values from: say so instead of waiting forever
            EXECUTE format('UPDATE %I._sync_write_log SET state = ''failed'', settled_at = now(),'
                           ' api_message = $2 WHERE table_name = $1 AND action = ''insert'''
                           ' AND "values" IS NULL AND state = ''new''', p_schema)
              USING t.table_name,
                    format('not sent: table %s.%s was dropped (remove_collection or drop_sync) '
                           'before the insert was sent, so its values are gone', p_schema, t.table_name);
            CONTINUE;
        END IF;
        unsent := ARRAY(
            SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = format('%I.%I', p_schema, t.table_name)::regclass
               AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT EXISTS (SELECT 1 FROM sequin_sf._columns m
                                WHERE m.sync_name = p_sync AND m.object_name = t.object_name
                                  AND m.column_name = a.attname));
        EXECUTE format('UPDATE %1$I._sync_write_log l SET "values" = coalesce('
                       '   (SELECT jsonb_strip_nulls(to_jsonb(r)) - $1 FROM %1$I.%2$I r'
                       '     WHERE r._row_id = l.row_id), ''{}''::jsonb)'
                       ' WHERE l.table_name = $2 AND l.action = ''insert'' AND l."values" IS NULL'
                       '   AND l.state IN (''new'', ''pending'')',
                       p_schema, t.table_name)
          USING unsent, t.table_name;
    END LOOP;
END
$$;

-- Marks entries as sent (or about to be): a crash from here on leaves them 'pending',
-- which the writer reads as "possibly applied".
CREATE FUNCTION sequin_sf._write_claim(p_schema text, p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- the claim must be on disk before the request leaves, whatever the server's
    -- synchronous_commit: a lost claim would let a create be sent twice
    PERFORM set_config('synchronous_commit', 'on', true);
    EXECUTE format('UPDATE %I._sync_write_log SET state = ''pending'', claimed_at = now(),'
                   ' attempts = attempts + 1 WHERE id = ANY($1)', p_schema)
      USING p_ids;
END
$$;

-- Records the Ids of created records on their entries, which stay pending until they
-- are settled: a pending insert with an Id is known to have succeeded (see the writer's
-- split_claimed_creates). p_created: [{"log_ids": [..], "api_id": "..."}]
CREATE FUNCTION sequin_sf._write_record_created(p_schema text, p_created jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- as durable as the claim: a lost record of a create would make it "unknown"
    PERFORM set_config('synchronous_commit', 'on', true);
    EXECUTE format($q$
        UPDATE %I._sync_write_log l SET api_id = c.api_id
          FROM (SELECT x ->> 'api_id' AS api_id,
                       jsonb_array_elements_text(x -> 'log_ids')::bigint AS log_id
                  FROM jsonb_array_elements($1) x) c
         WHERE l.id = c.log_id AND l.state = 'pending' AND l.action = 'insert'
        $q$, p_schema)
      USING p_created;
END
$$;

-- Settles entries with the writer's outcomes and makes the tables agree with Salesforce.
-- p_outcomes: [{"log_ids":[..], "row_id":n, "table_name":"contact", "action":"insert",
--   "outcome":"succeeded"|"failed"|"retry", "api_id":"...", "status":201,
--   "message":"...", "retry_after":secs, "row_state":"failed"|"unknown"}]
-- Row changes run with sequin_sf.applying = on, so they are not captured again.
CREATE FUNCTION sequin_sf._write_settle(p_schema text, p_outcomes jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    ids bigint[];
    tbl text;
    row_id bigint;
    api text;
    other bigint;
BEGIN
    PERFORM set_config('sequin_sf.applying', 'on', true);
    -- a lost settlement would turn a known answer (and a created record's Id) into an
    -- unknown one after a crash
    PERFORM set_config('synchronous_commit', 'on', true);
    FOR o IN SELECT value FROM jsonb_array_elements(p_outcomes) LOOP
        ids := ARRAY(SELECT jsonb_array_elements_text(o -> 'log_ids')::bigint);
        tbl := o ->> 'table_name';
        row_id := (o ->> 'row_id')::bigint;
        api := o ->> 'api_id';
        IF o ->> 'outcome' = 'retry' THEN
            EXECUTE format(
                'UPDATE %I._sync_write_log SET state = ''new'', api_result = $2, api_message = $3,'
                ' next_attempt_at = now() + make_interval(secs => coalesce($4,'
                ' least(300, 2 ^ least(greatest(attempts - 1, 0), 9))))'
                ' WHERE id = ANY($1)', p_schema)
              USING ids, (o ->> 'status')::int, 'will retry: ' || (o ->> 'message'),
                    (o ->> 'retry_after')::float8;
            CONTINUE;
        END IF;
        EXECUTE format(
            'UPDATE %I._sync_write_log SET state = $2, api_result = $3, api_message = $4,'
            ' api_id = coalesce(api_id, $5), settled_at = now(), next_attempt_at = NULL'
            ' WHERE id = ANY($1)', p_schema)
          USING ids, o ->> 'outcome', (o ->> 'status')::int, o ->> 'message', api;
        IF to_regclass(format('%I.%I', p_schema, tbl)) IS NULL THEN
            CONTINUE;
        END IF;
        -- The entry is settled whatever happens to the row: a row that cannot be
        -- brought in line (say its Id is already held by another row, when an upsert
        -- matched a record that was synced meanwhile) must not hold the queue back.
        BEGIN
            IF o ->> 'outcome' = 'succeeded' THEN
                IF o ->> 'action' = 'insert' AND api IS NOT NULL THEN
                    EXECUTE format('SELECT _row_id FROM %I.%I WHERE id = $1 AND _row_id <> $2',
                                   p_schema, tbl) INTO other USING api, row_id;
                    IF other IS NULL THEN
                        EXECUTE format('UPDATE %I.%I SET id = $1, _write_state = NULL WHERE _row_id = $2',
                                       p_schema, tbl) USING api, row_id;
                    ELSE
                        -- an upsert matched a record the table already holds: the values
                        -- went to that record, so this row would only be its duplicate
                        EXECUTE format('DELETE FROM %I.%I WHERE _row_id = $1', p_schema, tbl)
                          USING row_id;
                        EXECUTE format('UPDATE %I._sync_write_log SET api_message = concat_ws(''; '', api_message, $2)'
                                       ' WHERE id = ANY($1)', p_schema)
                          USING ids, format('the record was already in %s.%s as row _row_id=%s; this row '
                                            'was merged into it (its values were sent to that record)',
                                            p_schema, tbl, other);
                    END IF;
                END IF;
            ELSIF o ->> 'action' = 'insert' THEN
                EXECUTE format('UPDATE %I.%I SET _write_state = $1 WHERE _row_id = $2', p_schema, tbl)
                  USING coalesce(o ->> 'row_state', 'failed'), row_id;
            ELSIF o ->> 'action' = 'update' THEN
                PERFORM sequin_sf._write_restore_update(p_schema, tbl, row_id, ids);
            ELSIF o ->> 'action' = 'delete' THEN
                PERFORM sequin_sf._write_restore_delete(p_schema, tbl, ids[1]);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            EXECUTE format('UPDATE %I._sync_write_log SET api_message = concat_ws(''; '', api_message, $2)'
                           ' WHERE id = ANY($1)', p_schema)
              USING ids, format('row _row_id=%s of %s.%s could not be updated to match: %s',
                                row_id, p_schema, tbl, SQLERRM);
            BEGIN
                EXECUTE format('UPDATE %I.%I SET _write_state = ''out_of_sync'' WHERE _row_id = $1',
                               p_schema, tbl) USING row_id;
            EXCEPTION WHEN OTHERS THEN
                NULL;  -- the message above already says what is wrong
            END;
        END;
        -- after the row was brought in line above (see _write_pass_on_id)
        IF o ->> 'outcome' = 'succeeded' AND o ->> 'action' = 'insert' AND api IS NOT NULL THEN
            PERFORM sequin_sf._write_pass_on_id(p_schema, tbl, row_id, api);
        END IF;
    END LOOP;
END
$$;

-- After a create succeeded: gives its Id to the row's later entries, captured while the
-- row had none. Called after the row itself got the Id (or was deleted): that statement
-- waited for every application transaction changing the row, so this statement's
-- snapshot sees all their entries, and any later change captures the Id itself.
CREATE FUNCTION sequin_sf._write_pass_on_id(p_schema text, p_table text, p_row bigint,
                                            p_api_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %I._sync_write_log SET api_id = $1 WHERE row_id = $2'
                   ' AND table_name = $3 AND api_id IS NULL'
                   ' AND state IN (''new'', ''pending'')', p_schema)
      USING p_api_id, p_row, p_table;
END
$$;

-- After a failed update: puts the changed columns back to the values the row had before
-- (the last state known from Salesforce), except columns a later, still queued change
-- of the row sets again. Polling brings any newer Salesforce values.
CREATE FUNCTION sequin_sf._write_restore_update(p_schema text, p_table text, p_row bigint,
                                                p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    prev jsonb;
    cols text[];
    sets text;
BEGIN
    -- Lock the row first: a change an application commits to it before the lock is
    -- granted is then queued in the log when the columns are chosen below (and is kept),
    -- and any later change waits for this restore.
    EXECUTE format('SELECT 1 FROM %I.%I WHERE _row_id = $1 FOR UPDATE', p_schema, p_table)
      USING p_row;
    EXECUTE format($q$
        SELECT (SELECT previous FROM %1$I._sync_write_log WHERE id = ANY($1) ORDER BY id LIMIT 1),
               ARRAY(SELECT DISTINCT k FROM %1$I._sync_write_log l, jsonb_object_keys(l."values") k
                      WHERE l.id = ANY($1)
                     EXCEPT
                     SELECT k FROM %1$I._sync_write_log l, jsonb_object_keys(l."values") k
                      WHERE l.row_id = $2 AND l.table_name = $3 AND l.id > $4
                        AND l.state IN ('new', 'pending'))
        $q$, p_schema)
      INTO prev, cols
      USING p_ids, p_row, p_table, (SELECT max(x) FROM unnest(p_ids) x);
    IF prev IS NULL OR cardinality(cols) = 0 THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%1$I = p.%1$I', c), ', ') INTO sets FROM unnest(cols) c;
    EXECUTE format('UPDATE %1$I.%2$I t SET %3$s FROM jsonb_populate_record(NULL::%1$I.%2$I, $1) p'
                   ' WHERE t._row_id = $2', p_schema, p_table, sets)
      USING prev, p_row;
END
$$;

-- After a failed delete: the row comes back as it was (unless the record is already back).
CREATE FUNCTION sequin_sf._write_restore_delete(p_schema text, p_table text, p_id bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    prev jsonb;
BEGIN
    EXECUTE format('SELECT previous FROM %I._sync_write_log WHERE id = $1', p_schema)
      INTO prev USING p_id;
    IF prev IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('INSERT INTO %1$I.%2$I OVERRIDING SYSTEM VALUE'
                   ' SELECT * FROM jsonb_populate_record(NULL::%1$I.%2$I, $1)'
                   ' ON CONFLICT DO NOTHING', p_schema, p_table)
      USING prev;
END
$$;

-- Removes settled entries older than the retention; returns how many went.
CREATE FUNCTION sequin_sf._prune_writes(p_schema text, p_retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF to_regclass(format('%I._sync_write_log', p_schema)) IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('DELETE FROM %I._sync_write_log WHERE state IN (''succeeded'', ''failed'')'
                   ' AND settled_at < now() - $1', p_schema)
      USING p_retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------------
-- User-facing
-- ---------------------------------------------------------------------------------

-- Re-queues failed writes (all of a sync, or the given log ids) as new entries, so the
-- log keeps each failed attempt. A failed insert is re-sent with the row as it is now,
-- so fixing the row and retrying is enough. Returns how many entries were re-queued.
-- Creates whose outcome is unknown (sent, no answer: api_result NULL) may already exist
-- in Salesforce: they are re-sent only when named in ids, never by a blanket retry.
CREATE FUNCTION sequin_sf.retry_writes(sync_name text DEFAULT NULL, ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s record;
    n bigint := 0;
    k bigint;
    skipped bigint;
BEGIN
    IF ids IS NOT NULL AND cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'retry_writes: ids is empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'pass NULL to retry every failed write, or the _sync_write_log ids to retry';
    END IF;
    IF sync_name IS NOT NULL THEN
        PERFORM sequin_sf._sync_schema(sync_name);
    END IF;
    FOR s IN SELECT y.name, y.schema_name FROM sequin_sf._syncs y
              WHERE (retry_writes.sync_name IS NULL OR y.name = retry_writes.sync_name)
                AND to_regclass(format('%I._sync_write_log', y.schema_name)) IS NOT NULL LOOP
        EXECUTE format($q$
            WITH failed AS (
                SELECT l.* FROM %1$I._sync_write_log l
                 WHERE l.state = 'failed' AND ($1 IS NULL OR l.id = ANY($1))
                   AND NOT ($1 IS NULL AND l.action = 'insert' AND l.api_result IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM %1$I._sync_write_log r WHERE r.retry_of = l.id)
                 ORDER BY l.id
            ), requeued AS (
                INSERT INTO %1$I._sync_write_log
                       (table_name, object_name, row_id, action, api_id, previous, "values", retry_of)
                SELECT f.table_name, f.object_name, f.row_id, f.action, f.api_id, f.previous,
                       CASE WHEN f.action = 'insert'
                            THEN coalesce(sequin_sf._row_insert_values($2, f.table_name, f.row_id), f."values")
                            ELSE f."values" END,
                       f.id
                  FROM failed f ORDER BY f.id
                RETURNING 1
            ) SELECT count(*) FROM requeued
            $q$, s.schema_name)
          INTO k USING ids, s.schema_name;
        n := n + k;
        IF ids IS NULL THEN
            EXECUTE format('SELECT count(*) FROM %1$I._sync_write_log l WHERE l.state = ''failed'''
                           ' AND l.action = ''insert'' AND l.api_result IS NULL'
                           ' AND NOT EXISTS (SELECT 1 FROM %1$I._sync_write_log r WHERE r.retry_of = l.id)',
                           s.schema_name) INTO skipped;
            IF skipped > 0 THEN
                RAISE NOTICE 'retry_writes: % create(s) of sync "%" with an unknown outcome were not re-sent',
                             skipped, s.name
                    USING DETAIL = 'They were sent but no answer came back, so the records may exist in Salesforce already; sending them again could duplicate them.',
                          HINT = format('Check Salesforce, then retry the missing ones by id: SELECT id FROM %I._sync_write_log WHERE state = ''failed'' AND action = ''insert'' AND api_result IS NULL', s.schema_name);
            END IF;
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- The values an insert of the row would send now: its set, mapped, createable columns.
CREATE FUNCTION sequin_sf._row_insert_values(p_schema text, p_table text, p_row bigint)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    vals jsonb;
BEGIN
    t := sequin_sf._synced_table(p_schema, p_table);
    EXECUTE format('SELECT jsonb_strip_nulls(to_jsonb(r)) FROM %I.%I r WHERE r._row_id = $1',
                   p_schema, p_table)
      INTO vals USING p_row;
    IF vals IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT coalesce(jsonb_object_agg(v.key, v.value), '{}'::jsonb)
              FROM jsonb_each(vals) v
              JOIN sequin_sf._columns m
                ON m.sync_name = t.sync_name AND m.object_name = t.object_name
               AND m.column_name = v.key
             WHERE m.createable AND m.active AND NOT m.calculated);
END
$$;

-- Waits until every write committed before the call is settled (or the timeout
-- passes), then reports this session's writes settled since its previous call.
CREATE FUNCTION sequin_sf.await_writes(timeout interval DEFAULT '60 seconds',
                                       sync_name text DEFAULT NULL)
RETURNS TABLE (succeeded bigint, failed bigint, unsettled bigint)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
    marks jsonb := coalesce(nullif(current_setting('sequin_sf.awaited_upto', true), ''), '{}')::jsonb;
    upto jsonb := '{}';
    top bigint;
    left_ bigint;
    deadline timestamptz := clock_timestamp() + timeout;
    nap float8 := 0.01;
    started timestamptz := (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid());
    ok bigint;
    bad bigint;
    open_ bigint;
    mine boolean;
BEGIN
    IF timeout IS NULL OR timeout < interval '0' OR timeout > interval '1 day' THEN
        RAISE EXCEPTION 'await_writes: timeout must be between 0 and 1 day, got %', coalesce(timeout::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example sequin_sf.await_writes(''30 seconds'')';
    END IF;
    IF sync_name IS NOT NULL THEN
        PERFORM sequin_sf._sync_schema(sync_name);
    END IF;
    succeeded := 0; failed := 0; unsettled := 0;
    FOR s IN SELECT y.schema_name FROM sequin_sf._syncs y
              WHERE (await_writes.sync_name IS NULL OR y.name = await_writes.sync_name)
                AND to_regclass(format('%I._sync_write_log', y.schema_name)) IS NOT NULL LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I._sync_write_log'
                       ' WHERE state = ''new'' AND xmin::text = pg_current_xact_id_if_assigned()::xid::text)',
                       s.schema_name) INTO mine;
        IF mine THEN
            RAISE EXCEPTION 'await_writes() cannot wait for changes of its own transaction'
                USING ERRCODE = 'active_sql_transaction',
                      HINT = 'COMMIT the changes first, then call sequin_sf.await_writes().';
        END IF;
        EXECUTE format('SELECT coalesce(max(id), 0) FROM %I._sync_write_log', s.schema_name) INTO top;
        upto := upto || jsonb_build_object(s.schema_name, top);
        LOOP
            EXECUTE format('SELECT count(*) FROM %I._sync_write_log WHERE state IN (''new'', ''pending'')'
                           ' AND id <= $1', s.schema_name) INTO left_ USING top;
            EXIT WHEN left_ = 0 OR clock_timestamp() >= deadline;
            PERFORM pg_sleep(nap);
            nap := least(nap * 2, 0.2);
        END LOOP;
        EXECUTE format($q$
            SELECT count(*) FILTER (WHERE state = 'succeeded'),
                   count(*) FILTER (WHERE state = 'failed'),
                   count(*) FILTER (WHERE state IN ('new', 'pending'))
              FROM %I._sync_write_log
             WHERE session_pid = pg_backend_pid() AND inserted_at >= $1
               AND id > $2 AND id <= $3
            $q$, s.schema_name)
          INTO ok, bad, open_
          USING started, coalesce((marks ->> s.schema_name)::bigint, 0), top;
        succeeded := succeeded + ok;
        failed := failed + bad;
        unsettled := unsettled + open_;
    END LOOP;
    IF unsettled > 0 THEN
        RAISE NOTICE 'await_writes: % write(s) still unsettled after %', unsettled, timeout
            USING HINT = 'See the state and api_message columns of the _sync_write_log table, and sequin_sf.sync_status.last_error.';
    ELSE
        -- settled writes are reported once; unsettled ones again by the next call
        PERFORM set_config('sequin_sf.awaited_upto', (marks || upto)::text, false);
    END IF;
    RETURN NEXT;
END
$$;

-- One row per sync: how its write-back is doing.
CREATE FUNCTION sequin_sf.write_status()
RETURNS TABLE (sync_name text, schema_name text, queued bigint, in_flight bigint,
               waiting_to_retry bigint, failed_24h bigint, succeeded_24h bigint,
               oldest_queued_at timestamptz, last_failure text, last_failure_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT y.name, y.schema_name FROM sequin_sf._syncs y ORDER BY y.name LOOP
        sync_name := s.name;
        schema_name := s.schema_name;
        IF to_regclass(format('%I._sync_write_log', s.schema_name)) IS NULL THEN
            queued := 0; in_flight := 0; waiting_to_retry := 0; failed_24h := 0;
            succeeded_24h := 0; oldest_queued_at := NULL; last_failure := NULL;
            last_failure_at := NULL;
        ELSE
            EXECUTE format($q$
                SELECT count(*) FILTER (WHERE state = 'new'),
                       count(*) FILTER (WHERE state = 'pending'),
                       count(*) FILTER (WHERE state = 'new' AND next_attempt_at > now()),
                       count(*) FILTER (WHERE state = 'failed' AND settled_at > now() - interval '24 hours'),
                       count(*) FILTER (WHERE state = 'succeeded' AND settled_at > now() - interval '24 hours'),
                       min(inserted_at) FILTER (WHERE state IN ('new', 'pending'))
                  FROM %1$I._sync_write_log
                $q$, s.schema_name)
              INTO queued, in_flight, waiting_to_retry, failed_24h, succeeded_24h, oldest_queued_at;
            EXECUTE format('SELECT api_message, settled_at FROM %I._sync_write_log'
                           ' WHERE state = ''failed'' ORDER BY id DESC LIMIT 1', s.schema_name)
              INTO last_failure, last_failure_at;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION sequin_sf.await_writes(interval, text) IS
    'Waits until every write committed before the call is settled (or the timeout passes); returns this session''s writes settled since its previous call: succeeded, failed, still unsettled.';
COMMENT ON FUNCTION sequin_sf.retry_writes(text, bigint[]) IS
    'Re-queues failed writes (of one sync, or the given _sync_write_log ids) as new entries; a failed insert is re-sent with the row as it is now. Returns how many were re-queued.';
COMMENT ON FUNCTION sequin_sf.alter_write_settings(text, integer, interval, boolean, interval, boolean, jsonb) IS
    'Changes a sync''s write settings (NULL keeps a setting): batch_size 1-200, max_batch_wait, conflict_detection (If-Unmodified-Since), write_log_retention, check_picklists, external_id_fields {"Object": "ExtId__c"}.';
COMMENT ON FUNCTION sequin_sf.write_status() IS
    'Per sync: writes queued, in flight, waiting to retry, failed and succeeded in the last 24 h, the oldest queued change and the last failure.';
