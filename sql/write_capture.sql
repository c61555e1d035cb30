-- Write capture: the per-sync write log, the capture triggers on synced tables, and the
-- settings the writer reads. Loaded into schema sequin_sf by CREATE EXTENSION.
--
-- Capture is set-based (statement triggers with transition tables) so a bulk UPDATE
-- costs one INSERT ... SELECT into the log, not one plpgsql call per row. Changes the
-- worker applies itself run with sequin_sf.applying = on and are never captured.

-- Per-sync write settings (one row per sync schema; absent = defaults).
CREATE TABLE sequin_sf.write_settings (
    schema_name         text PRIMARY KEY,
    sync_name           text,
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
                      HINT = 'Use one of the allowed values, or turn the check off with sequin_sf.alter_sync_settings(sync, check_picklists => false) if the picklist changed in Salesforce since the last describe.';
        END IF;
    END LOOP;
    RETURN p_values;
END
$$;

-- True when every restricted-picklist column present in p_values holds an allowed value.
CREATE FUNCTION sequin_sf._picklists_ok(p_values jsonb, p_picklists jsonb, p_cols text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM unnest(p_cols) AS c
         WHERE p_values ? c
           AND jsonb_typeof(p_values -> c) <> 'null'
           AND NOT (p_picklists -> c) @> jsonb_build_array(p_values -> c))
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

-- Creates <schema>._sync_write_log and the schema's capture function (idempotent).
CREATE FUNCTION sequin_sf._install_write_log(p_schema text) RETURNS void
LANGUAGE plpgsql AS $install$
BEGIN
    EXECUTE format($ddl$
        CREATE TABLE IF NOT EXISTS %1$I._sync_write_log (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name      text NOT NULL,
            object_name     text NOT NULL,
            row_id          bigint NOT NULL,
            action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
            api_id          text,
            state           text NOT NULL DEFAULT 'new'
                            CHECK (state IN ('new', 'pending', 'succeeded', 'failed')),
            previous        jsonb,
            "values"        jsonb,
            api_result      integer,
            api_message     text,
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            claimed_at      timestamptz,
            inserted_at     timestamptz NOT NULL DEFAULT now(),
            settled_at      timestamptz
        )$ddl$, p_schema);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS _sync_write_log_unsettled ON %1$I._sync_write_log (id)'
        ' WHERE state IN (''new'', ''pending'')', p_schema);
    EXECUTE format($cmt$
        COMMENT ON TABLE %1$I._sync_write_log IS
        'Every change made to this schema''s synced tables, in order, and what Salesforce answered: state new -> pending -> succeeded | failed; api_result is the HTTP status, api_message Salesforce''s message. Failed entries can be re-queued with sequin_sf.retry_writes().'
        $cmt$, p_schema);

    -- One function per schema so its INSERTs name the log table statically (plans are
    -- cached per table); the trigger arguments carry each table's rules:
    --   0 object API name, 1 {column: reason} not createable, 2 {column: reason} not
    --   updateable, 3 {column: [allowed values]} restricted picklists, 4 local columns.
    EXECUTE format($fn$
        CREATE OR REPLACE FUNCTION %1$I._sync_capture() RETURNS trigger
        LANGUAGE plpgsql AS $body$
        DECLARE
            obj        text := TG_ARGV[0];
            noncreate  jsonb := TG_ARGV[1]::jsonb;
            nonupdate  jsonb := TG_ARGV[2]::jsonb;
            picklists  jsonb := TG_ARGV[3]::jsonb;
            local_cols text[] := TG_ARGV[4]::text[];
            ro_keys    text[];
            pick_cols  text[];
        BEGIN
            IF current_setting('sequin_sf.applying', true) = 'on' THEN
                RETURN NULL;
            END IF;
            pick_cols := ARRAY(SELECT jsonb_object_keys(picklists));
            IF TG_OP = 'INSERT' THEN
                ro_keys := ARRAY(SELECT jsonb_object_keys(noncreate));
                INSERT INTO %1$I._sync_write_log (table_name, object_name, row_id, action, "values")
                SELECT TG_TABLE_NAME, obj, v._row_id, 'insert',
                       CASE WHEN v.vals ?| ro_keys
                              OR (v.vals ?| pick_cols AND NOT sequin_sf._picklists_ok(v.vals, picklists, pick_cols))
                            THEN sequin_sf._refuse_write(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, v.vals, noncreate, picklists)
                            ELSE v.vals END
                  FROM (SELECT n._row_id, jsonb_strip_nulls(to_jsonb(n)) - local_cols AS vals
                          FROM _sf_new n) v
                 ORDER BY v._row_id;
            ELSIF TG_OP = 'UPDATE' THEN
                ro_keys := ARRAY(SELECT jsonb_object_keys(nonupdate));
                INSERT INTO %1$I._sync_write_log (table_name, object_name, row_id, action, api_id, previous, "values")
                SELECT TG_TABLE_NAME, obj, d._row_id, 'update', d.id, d.prev,
                       CASE WHEN d.chg ?| ro_keys
                              OR (d.chg ?| pick_cols AND NOT sequin_sf._picklists_ok(d.chg, picklists, pick_cols))
                            THEN sequin_sf._refuse_write(TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, d.chg, nonupdate, picklists)
                            ELSE d.chg END
                  FROM (SELECT o._row_id, o.id, j.prev,
                               (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
                                  FROM jsonb_each(j.cur) e
                                 WHERE e.value IS DISTINCT FROM j.prev -> e.key) AS chg
                          FROM _sf_old o
                          JOIN _sf_new n ON n._row_id = o._row_id,
                               LATERAL (SELECT to_jsonb(o) AS prev, to_jsonb(n) - local_cols AS cur) j) d
                 WHERE d.chg <> '{}'::jsonb
                 ORDER BY d._row_id;
            ELSE
                INSERT INTO %1$I._sync_write_log (table_name, object_name, row_id, action, api_id, previous)
                SELECT TG_TABLE_NAME, obj, o._row_id, 'delete', o.id, to_jsonb(o)
                  FROM _sf_old o
                 ORDER BY o._row_id;
            END IF;
            RETURN NULL;
        END
        $body$
        $fn$, p_schema);
END
$install$;

-- (Re)installs capture on one synced table with explicit rules. Idempotent.
--   p_noncreateable / p_nonupdateable: {column: why Salesforce refuses it}
--   p_picklists: {column: [allowed values]} for restricted picklists ('{}' = no check)
CREATE FUNCTION sequin_sf._install_write_triggers(
    p_table regclass, p_object text, p_noncreateable jsonb, p_nonupdateable jsonb,
    p_picklists jsonb
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sch text;
    tbl text;
    local_cols text[];
    args text;
BEGIN
    SELECT n.nspname, c.relname INTO sch, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    PERFORM sequin_sf._install_write_log(sch);
    -- Columns of our own (_row_id, _write_state, ...) are never sent.
    local_cols := ARRAY(
        SELECT a.attname::text FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
           AND left(a.attname, 1) = '_');
    args := format('%L, %L, %L, %L, %L', p_object, p_noncreateable::text,
                   p_nonupdateable::text, coalesce(p_picklists, '{}'::jsonb)::text, local_cols::text);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_insert ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_update ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_delete ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_truncate ON %s', p_table);
    EXECUTE format('CREATE TRIGGER _sync_write_insert AFTER INSERT ON %s'
                   ' REFERENCING NEW TABLE AS _sf_new FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %I._sync_capture(%s)', p_table, sch, args);
    EXECUTE format('CREATE TRIGGER _sync_write_update AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS _sf_old NEW TABLE AS _sf_new FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %I._sync_capture(%s)', p_table, sch, args);
    EXECUTE format('CREATE TRIGGER _sync_write_delete AFTER DELETE ON %s'
                   ' REFERENCING OLD TABLE AS _sf_old FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION %I._sync_capture(%s)', p_table, sch, args);
    EXECUTE format('CREATE TRIGGER _sync_write_truncate BEFORE TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sequin_sf._refuse_truncate()', p_table);
END
$$;

-- Stops capture on a table (the log stays).
CREATE FUNCTION sequin_sf._remove_write_triggers(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_insert ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_update ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_delete ON %s', p_table);
    EXECUTE format('DROP TRIGGER IF EXISTS _sync_write_truncate ON %s', p_table);
END
$$;
