-- What the extension's library gives its SQL, for a database where no library can be
-- loaded (sequin-sf installs the objects itself: crates/sidecar/src/install.rs). Same
-- names and arguments as the Rust functions of src/ (and as capture.sql's
-- _capture_function, which names the C capture), so sql/capture.sql, worker.sql and
-- api.sql run unchanged on top of either. Run after sql/bootstrap.sql.
--
-- Differences a user can see, documented in the README ("On a managed Postgres"):
--   * create_credential refuses: secrets are sealed by sequin-sf with a key it holds
--     (`sequin-sf credential create`), so the database never sees them in clear;
--   * the org's objects and the fields of synced objects come from what sequin-sf last
--     read (_org_objects, _org_fields), not from a call to Salesforce made by SQL;
--   * capture is a PL/pgSQL function generated for each synced table and operation, in
--     the table's schema (_sync_capture_<op>_<table oid>);
--   * a statement's entries are logged when it ends; those of statements its own
--     triggers ran, logged before, are then moved after them (logged again with new
--     ids), where the C capture logs the outer statement's first as they happen.

-- The release of these objects, where the extension would have pg_extension.extversion.
CREATE TABLE sequin_sf._release (
    version      text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now(),
    installed_by text NOT NULL DEFAULT current_user
);

COMMENT ON TABLE sequin_sf._release IS
    'The release of the sequin_sf objects installed by sequin-sf (no extension in this database).';

-- The org's objects as sequin-sf last listed them, per credential (global describe).
CREATE TABLE sequin_sf._org_objects (
    credential    text NOT NULL REFERENCES sequin_sf._credentials(name) ON DELETE CASCADE,
    name          text NOT NULL,
    label         text NOT NULL,
    custom        boolean NOT NULL,
    queryable     boolean NOT NULL,
    replicateable boolean NOT NULL,
    PRIMARY KEY (credential, name)
);

-- When each credential's objects were listed (a credential with no row: not yet).
CREATE TABLE sequin_sf._org_objects_read (
    credential text PRIMARY KEY REFERENCES sequin_sf._credentials(name) ON DELETE CASCADE,
    read_at    timestamptz NOT NULL,
    error      text
);

-- The fields of each synced object as last described: by the sync, whenever it reads
-- the object's describe (set-up, a change), and by sequin-sf once for an object no sync
-- has described yet (a paused sync's). _record_org_fields writes them.
CREATE TABLE sequin_sf._org_fields (
    credential  text NOT NULL REFERENCES sequin_sf._credentials(name) ON DELETE CASCADE,
    object_name text NOT NULL,
    name        text NOT NULL,
    external_id boolean NOT NULL,
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (credential, object_name, name)
);

-- Records a describe of `object` read through `credential` (fields: [{name,
-- external_id}]), replacing what was recorded of it.
CREATE FUNCTION sequin_sf._record_org_fields(p_credential text, p_object text, p_fields jsonb)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM sequin_sf._org_fields f
     WHERE f.credential = p_credential AND f.object_name = p_object
       AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(p_fields) AS x(name text) WHERE x.name = f.name);
    -- (the credential may have been dropped meanwhile: then nothing is recorded)
    INSERT INTO sequin_sf._org_fields AS f (credential, object_name, name, external_id)
    SELECT p_credential, p_object, x.name, x.external_id
      FROM jsonb_to_recordset(p_fields) AS x(name text, external_id boolean)
     WHERE EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = p_credential)
    ON CONFLICT (credential, object_name, name)
       DO UPDATE SET external_id = EXCLUDED.external_id, read_at = now();
$$;

-- Whether an org's object list read at `read_at` is worth reading again when SQL asks
-- for it (sequin-sf lists each org daily otherwise): the one threshold both sides use.
CREATE FUNCTION sequin_sf._org_list_stale(read_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT read_at < now() - interval '1 minute'
$$;

-- The advisory lock (two keys) with which SQL asks sequin-sf to list a credential's
-- org again: held shared by the asking transaction, seen by sequin-sf in pg_locks.
CREATE FUNCTION sequin_sf._org_list_ask_keys(credential text, OUT key1 integer, OUT key2 integer)
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtext('sequin_sf org list asked'), hashtext(credential)
$$;

-- The role sequin-sf runs as (and installed with): the owner of this schema.
CREATE FUNCTION sequin_sf._runner() RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT nspowner FROM pg_namespace WHERE nspname = 'sequin_sf'
$$;

CREATE FUNCTION sequin_sf._seal_credential_secrets(
    credential text, client_secret text, refresh_token text, password text, private_key text
) RETURNS bytea
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sequin_sf runs beside this database: credentials are created with sequin-sf, which seals their secrets with its own key'
        USING ERRCODE = 'feature_not_supported',
              DETAIL = 'The database holds only the ciphertext; a secret passed to SQL would reach its logs and WAL in clear.',
              HINT = format('Run: sequin-sf credential create %s --kind ... (secrets from SEQUIN_SF_CLIENT_SECRET, SEQUIN_SF_REFRESH_TOKEN, SEQUIN_SF_PASSWORD, SEQUIN_SF_PRIVATE_KEY_FILE); see the README, "On a managed Postgres".',
                            coalesce(credential, 'NAME'));
END
$$;

-- sequin-sf reads an org's objects and fields within a pass of a new credential or
-- collection (a fraction of a second while it runs). What SQL asks of them right after
-- waits for that read, up to 30 s, where it can come: not when no sequin-sf is
-- connected to this database, nor for a credential or collection of this very
-- transaction (sequin-sf cannot see it before the commit), nor in a transaction whose
-- snapshot would not show it (REPEATABLE READ, SERIALIZABLE). Whether `ready` (a query
-- giving a boolean, $1 and $2 the arguments) holds, at once or after the wait.
CREATE FUNCTION sequin_sf._await_org_read(ready text, a text, b text, of_this_transaction boolean)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done boolean;
BEGIN
    EXECUTE ready INTO done USING a, b;
    IF done OR of_this_transaction OR current_setting('transaction_isolation') <> 'read committed'
       OR NOT EXISTS (SELECT 1 FROM pg_stat_activity s
                       WHERE s.datname = current_database() AND s.application_name = 'sequin-sf'
                         AND s.pid <> pg_backend_pid()) THEN
        RETURN coalesce(done, false);
    END IF;
    FOR i IN 1..150 LOOP
        PERFORM pg_sleep(0.2);
        EXECUTE ready INTO done USING a, b;
        IF done THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

CREATE FUNCTION sequin_sf._describe_global(credential text)
RETURNS TABLE (name text, label text, custom boolean, queryable boolean, replicateable boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r sequin_sf._org_objects_read;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = _describe_global.credential) THEN
        RAISE EXCEPTION 'credential "%" does not exist', credential
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'check the credential with SELECT * FROM sequin_sf.credentials';
    END IF;
    -- (age of a row's xmin: 0 or less for a row this transaction wrote)
    PERFORM sequin_sf._await_org_read(
        'SELECT EXISTS (SELECT 1 FROM sequin_sf._org_objects_read o WHERE o.credential = $1)',
        credential, NULL,
        (SELECT age(c.xmin) <= 0 FROM sequin_sf._credentials c WHERE c.name = _describe_global.credential));
    SELECT * INTO r FROM sequin_sf._org_objects_read o WHERE o.credential = _describe_global.credential;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sequin-sf has not listed the objects of credential "%"''s org yet', credential
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'sequin-sf lists them within seconds of a new credential: check that it runs, then call again';
    END IF;
    -- a list over a minute old: sequin-sf is asked for a fresh one, which is waited for
    -- as the first (what was read stays the answer if it does not come)
    IF sequin_sf._org_list_stale(r.read_at) THEN
        PERFORM pg_advisory_xact_lock_shared(k.key1, k.key2)
           FROM sequin_sf._org_list_ask_keys(credential) k;
        IF sequin_sf._await_org_read(
               'SELECT NOT sequin_sf._org_list_stale(o.read_at) FROM sequin_sf._org_objects_read o'
               ' WHERE o.credential = $1', credential, NULL, false) THEN
            SELECT * INTO r FROM sequin_sf._org_objects_read o WHERE o.credential = _describe_global.credential;
        END IF;
    END IF;
    IF r.error IS NOT NULL THEN
        RAISE EXCEPTION 'sequin-sf could not list the objects of credential "%"''s org: %', credential, r.error
            USING ERRCODE = 'connection_failure',
                  HINT = 'check login_url, client_id and the secrets; recreate the credential with sequin-sf credential create after sequin_sf.drop_credential(...)';
    END IF;
    RETURN QUERY SELECT o.name, o.label, o.custom, o.queryable, o.replicateable
                   FROM sequin_sf._org_objects o WHERE o.credential = _describe_global.credential;
END
$$;

CREATE FUNCTION sequin_sf._describe_fields(credential text, object text)
RETURNS TABLE (name text, external_id boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT sequin_sf._await_org_read(
               'SELECT EXISTS (SELECT 1 FROM sequin_sf._org_fields f WHERE f.credential = $1 AND f.object_name = $2)',
               credential, object,
               EXISTS (SELECT 1 FROM sequin_sf._collections c JOIN sequin_sf._syncs s ON s.name = c.sync_name
                        WHERE s.credential = _describe_fields.credential AND c.object_name = object
                          AND age(c.xmin) <= 0)) THEN
        RAISE EXCEPTION 'sequin-sf has not described % yet', object
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Beside the database, the fields an org has are read by sequin-sf, not by SQL.',
                  HINT = 'sequin-sf describes a sync''s objects within a second of create_sync or add_collection committing (it was waited for where it could come): check that sequin-sf runs, or call again after the commit';
    END IF;
    RETURN QUERY SELECT f.name, f.external_id FROM sequin_sf._org_fields f
                  WHERE f.credential = _describe_fields.credential AND f.object_name = object;
END
$$;

-- Levenshtein distance, case-insensitive (sync_core::naming::edit_distance).
CREATE FUNCTION sequin_sf._edit_distance(a text, b text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    la int := length(a);
    lb int := length(b);
    prev int[];
    cur int[];
    i int;
    j int;
BEGIN
    a := lower(a);
    b := lower(b);
    prev := ARRAY(SELECT generate_series(0, lb));
    FOR i IN 1..la LOOP
        cur := ARRAY[i];
        FOR j IN 1..lb LOOP
            cur := cur || least(prev[j + 1] + 1, cur[j] + 1,
                                prev[j] + CASE WHEN substr(a, i, 1) = substr(b, j, 1) THEN 0 ELSE 1 END);
        END LOOP;
        prev := cur;
    END LOOP;
    RETURN prev[lb + 1];
END
$$;

-- Up to three names close to `wanted` (sync_core::naming::near_names).
CREATE FUNCTION sequin_sf._near_names(wanted text, candidates text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(c ORDER BY d, c COLLATE "C"), '{}')
      FROM (SELECT c, d FROM (
                SELECT c, sequin_sf._edit_distance(lower(wanted), lower(c)) AS d
                  FROM unnest(candidates) c) x
             WHERE d <= greatest(octet_length(lower(wanted)) / 3, 2)
                OR (octet_length(lower(wanted)) >= 3 AND strpos(lower(c), lower(wanted)) > 0)
             ORDER BY d, c COLLATE "C"
             LIMIT 3) near
$$;

-- sync_core::writes::MAX_COLLECTION_RECORDS
CREATE FUNCTION sequin_sf._max_collection_records() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT 200 $$;

-- The table (or column) name for an API name (sync_core::naming::snake_case, with
-- fit_identifier: a name past 63 bytes is cut and given the low 32 bits of its FNV-1a
-- hash, which only the low 32 bits of each step decide).
CREATE FUNCTION sequin_sf._snake_case(api_name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n int := length(api_name);
    out text := '';
    c text;
    prev text;
    nxt text;
    i int;
    h bigint := x'84222325'::bigint;
    b int;
    bytes bytea;
    cut int;
BEGIN
    FOR i IN 1..n LOOP
        c := substr(api_name, i, 1);
        IF c ~ '^[A-Z]$' THEN
            prev := CASE WHEN i > 1 THEN substr(api_name, i - 1, 1) END;
            nxt := CASE WHEN i < n THEN substr(api_name, i + 1, 1) END;
            IF prev IS NOT NULL AND prev <> '_'
               AND (prev ~ '^[a-z0-9]$' OR (prev ~ '^[A-Z]$' AND coalesce(nxt ~ '^[a-z]$', false)))
               AND right(out, 1) IS DISTINCT FROM '_' THEN
                out := out || '_';
            END IF;
        END IF;
        out := out || translate(c, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
    END LOOP;
    IF octet_length(out) <= 63 THEN
        RETURN out;
    END IF;
    bytes := convert_to(out, 'UTF8');
    FOR b IN SELECT get_byte(bytes, k) FROM generate_series(0, length(bytes) - 1) k LOOP
        h := ((h # b) * 435) % 4294967296;  -- 0x1b3: the FNV prime's low 32 bits
    END LOOP;
    cut := 54;
    WHILE get_byte(bytes, cut) & 192 = 128 LOOP
        cut := cut - 1;  -- back to the start of a character
    END LOOP;
    RETURN convert_from(substring(bytes FROM 1 FOR cut), 'UTF8') || '_' || lpad(to_hex(h), 8, '0');
END
$$;

-- An UPDATE gave a row another _row_id (src/capture/mod.rs words it the same).
CREATE FUNCTION sequin_sf._row_id_changed(p_table text, p_old bigint, p_new bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'an UPDATE of % may not change _row_id (from % to %)', p_table,
        coalesce(p_old::text, 'NULL'), coalesce(p_new::text, 'NULL')
        USING ERRCODE = 'feature_not_supported',
              HINT = '_row_id is the row''s local key: sequin_sf ties the row''s write-log entries and its Salesforce record to it. Leave it out of the UPDATE (SET _row_id = DEFAULT gives a new one), and out of BEFORE triggers.';
END
$$;

-- Write capture in PL/pgSQL: a trigger function generated for each synced table and
-- operation by _capture_function, with the table's columns and Salesforce's rules for
-- them written into it; the same log rows as the C capture (src/capture/mod.rs):
-- inserts with the row's id only, updates with the changed sent columns' new values
-- and the full row before, deletes with the row before; rows Salesforce would refuse
-- raise _refuse_write's error. A value that reads differently (as text) is a change.
--
-- Why generated: what an application's one-row statement costs here is what PL/pgSQL
-- pays per statement for each expression and query it runs. A function written for one
-- table runs one query per statement, over the rows' own columns; one function for
-- every table had to read the rules from its arguments and the rows as jsonb, about
-- half of its cost in a pgbench profile (figures: README, "Writing back").
--
-- Changes sequin-sf applies itself run with sequin_sf.applying = on; without the library
-- that setting is not reserved, so it is obeyed only in sessions of the role sequin-sf
-- runs as. The function runs as that role (the log is not writable by application
-- roles), with its search path pinned and every name qualified. Entries go straight to
-- the log (the C capture's batches are a cost saving this one does not make), in the
-- order src/capture/nested.rs explains: a statement run by the triggers of a statement
-- on a synced table is logged after that statement's own entries (_capture_nested).
--
-- The functions live in the table's schema, named for the operation and the table's
-- oid; removing a table's capture (reinstalling it, remove_collection) drops those of
-- the schema no trigger uses any more (capture.sql, _remove_write_triggers).
CREATE FUNCTION sequin_sf._capture_function(
    p_table regclass, p_op text, p_object text, p_rules jsonb, p_picklists jsonb, p_sent text[]
) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sch text;
    tbl text;
    fn text := format('_sync_capture_%s_%s', lower(p_op), p_table::oid);
    sent text[];
    has_id boolean;
    body text;
BEGIN
    SELECT n.nspname, c.relname INTO sch, tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table;
    -- the sent columns the table has (a rule or a column named but gone is nothing to check)
    sent := ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attname <> '_row_id' AND a.attname = ANY (p_sent)
                   ORDER BY a.attnum);
    has_id := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_table AND a.attname = 'id'
                                                     AND NOT a.attisdropped);
    body := CASE p_op
        WHEN 'INSERT' THEN sequin_sf._capture_insert_sql(sch, tbl, p_object, sent, p_rules, p_picklists)
        WHEN 'UPDATE' THEN sequin_sf._capture_update_sql(sch, tbl, p_object, sent, has_id, p_rules, p_picklists)
        ELSE sequin_sf._capture_delete_sql(sch, tbl, p_object, has_id) END;
    EXECUTE format($f$CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L$f$, sch, fn,
        format($b$
-- capture of %s on %I.%I, made by sequin_sf._capture_function: do not edit (made again
-- whenever the table's capture is installed)
DECLARE
    logged bigint;
BEGIN
    IF coalesce(current_setting('sequin_sf.applying', true), '') = 'on'
       AND pg_has_role(session_user, sequin_sf._runner(), 'MEMBER') THEN
        RETURN NULL;
    END IF;
%s
    GET DIAGNOSTICS logged = ROW_COUNT;
    -- One event of this statement is captured. The application's own statement with
    -- nothing held ends here; else _capture_nested keeps the order.
    IF pg_trigger_depth() = 1 AND current_setting('sequin_sf.capture_frames', true) = '{1}'
       AND coalesce(current_setting('sequin_sf.capture_held', true), '') IN ('', '[]') THEN
        PERFORM set_config('sequin_sf.capture_frames', '{}', true);
    ELSE
        PERFORM sequin_sf._capture_nested(logged, %L);
    END IF;
    IF logged > 0 AND current_setting('sequin_sf.captured', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('sequin_sf.captured', 'on', true);
    END IF;
    RETURN NULL;
END
$b$, p_op, sch, tbl, body, sch));
    EXECUTE format('REVOKE ALL ON FUNCTION %I.%I() FROM PUBLIC', sch, fn);
    RETURN format('%I.%I()', sch, fn);
END
$$;

-- The condition under which a new row (`_n`) holds a value Salesforce refuses on
-- insert: a column of `rules` set, a picklist column set to a value not allowed. NULL:
-- nothing to check.
CREATE FUNCTION sequin_sf._capture_insert_refusal(sent text[], rules jsonb, picklists jsonb)
RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(c, ' OR ') FROM (
        SELECT format('_n.%I IS NOT NULL', k) AS c FROM jsonb_object_keys(rules) k WHERE k = ANY (sent)
        UNION ALL
        SELECT format('(_n.%1$I IS NOT NULL AND NOT %2$L::jsonb @> jsonb_build_array(to_jsonb(_n.%1$I)))',
                      p.key, p.value)
          FROM jsonb_each(picklists) p WHERE p.key = ANY (sent)) x
$$;

CREATE FUNCTION sequin_sf._capture_insert_sql(
    sch text, tbl text, object text, sent text[], rules jsonb, picklists jsonb
) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    refused text := sequin_sf._capture_insert_refusal(sent, rules, picklists);
BEGIN
    RETURN format($s$    INSERT INTO %I._sync_write_log (table_name, object_name, row_id, action)
    SELECT %L, %L, _n._row_id, 'insert' FROM _sf_new _n%s;$s$, sch, tbl, object,
        CASE WHEN refused IS NOT NULL THEN format($w$
     WHERE CASE WHEN %s
                THEN sequin_sf._refuse_write(%L, %L, 'INSERT',
                         (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(_n.*)) e
                           WHERE e.key = ANY (%L::text[]) AND e.value <> 'null'),
                         %L, %L) IS NOT NULL
                ELSE true END$w$, refused, sch, tbl, sent, rules, picklists) ELSE '' END);
END
$$;

-- An update pairs each row before with the row after at the same position of the two
-- transition tables (unnested in step: a join on positions would be planned once, for
-- the first statement's row count, and kept).
CREATE FUNCTION sequin_sf._capture_update_sql(
    sch text, tbl text, object text, sent text[], has_id boolean, rules jsonb, picklists jsonb
) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed text;
    ruled text[] := ARRAY(SELECT k FROM jsonb_object_keys(rules) k WHERE k = ANY (sent)
                          UNION SELECT k FROM jsonb_object_keys(picklists) k WHERE k = ANY (sent));
BEGIN
    SELECT coalesce(string_agg(format(
               'CASE WHEN (p.o).%1$I::text IS DISTINCT FROM (p.n).%1$I::text'
               ' THEN jsonb_build_object(%1$L, (p.n).%1$I) ELSE ''{}'' END', c), E'\n                    || '),
               '''{}''::jsonb')
      INTO changed FROM unnest(sent) c;
    RETURN format($s$    WITH pairs AS MATERIALIZED (
            SELECT p.o, p.n, %1$s AS changed,
                   CASE WHEN (p.o)._row_id IS DISTINCT FROM (p.n)._row_id
                        THEN sequin_sf._row_id_changed(%2$L, (p.o)._row_id, (p.n)._row_id) END AS moved
              FROM (SELECT unnest(ARRAY(SELECT ROW(_o.*)::%3$I.%2$I FROM _sf_old _o)) AS o,
                           unnest(ARRAY(SELECT ROW(_n.*)::%3$I.%2$I FROM _sf_new _n)) AS n) p)
    INSERT INTO %3$I._sync_write_log (table_name, object_name, row_id, action, api_id, previous, "values")
    SELECT %2$L, %4$L, (c.n)._row_id, 'update', %5$s, to_jsonb(c.o), c.changed
      FROM pairs c
     WHERE c.changed <> '{}' AND c.moved IS NULL%6$s;$s$,
        changed, tbl, sch, object, CASE WHEN has_id THEN '(c.o).id::text' ELSE 'NULL' END,
        CASE WHEN cardinality(ruled) > 0 THEN format($w$
       AND CASE WHEN c.changed ?| %L::text[]
                THEN sequin_sf._refuse_write(%L, %L, 'UPDATE', c.changed, %L, %L) IS NOT NULL
                ELSE true END$w$, ruled, sch, tbl, rules, picklists) ELSE '' END);
END
$$;

CREATE FUNCTION sequin_sf._capture_delete_sql(sch text, tbl text, object text, has_id boolean)
RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT format($s$    INSERT INTO %I._sync_write_log (table_name, object_name, row_id, action, api_id, previous)
    SELECT %L, %L, _o._row_id, 'delete', %s, to_jsonb(_o.*) FROM _sf_old _o;$s$,
        sch, tbl, object, CASE WHEN has_id THEN '_o.id::text' ELSE 'NULL' END)
$$;

-- The end of a capture that is not the common case (see above): its statement nested in
-- another on a synced table, or entries held. The order is kept with two
-- transaction-local settings, restored by Postgres when a savepoint rolls back:
-- sequin_sf.capture_frames, the trigger depths of the statements on synced tables that
-- have started and not been captured (_capture_statement_starts opens one), and
-- sequin_sf.capture_held, the log entries of statements captured while a shallower one
-- was open. Every statement logs its entries at once; the first statement around them
-- with no synced statement around it moves the held entries after its own (_log_after).
-- A MERGE or INSERT ... ON CONFLICT fires a BEFORE and an AFTER STATEMENT trigger per
-- operation: the statement ends with its last.
CREATE FUNCTION sequin_sf._capture_nested(logged bigint, log_schema text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    depth int := pg_trigger_depth();
    frames int[] := coalesce(nullif(current_setting('sequin_sf.capture_frames', true), ''), '{}')::int[];
    held jsonb := coalesce(nullif(current_setting('sequin_sf.capture_held', true), ''), '[]')::jsonb;
    deeper jsonb := '[]';
    mine jsonb;
BEGIN
    frames := frames[1:coalesce(array_position(frames, depth), cardinality(frames) + 1) - 1]
              || frames[coalesce(array_position(frames, depth), cardinality(frames)) + 1:];
    -- what statements run by its triggers left comes after its own entries, once all
    -- its operations are captured
    IF held <> '[]' AND NOT depth = ANY (frames) THEN
        SELECT coalesce(jsonb_agg(h ORDER BY i) FILTER (WHERE (h ->> 'depth')::int > depth), '[]'),
               coalesce(jsonb_agg(h ORDER BY i) FILTER (WHERE (h ->> 'depth')::int <= depth), '[]')
          INTO deeper, held
          FROM jsonb_array_elements(held) WITH ORDINALITY AS x(h, i);
    END IF;
    IF coalesce((SELECT min(f) FROM unnest(frames) f) < depth, false) THEN
        -- nested: its own entries (the session's last `logged` in the log), then what its
        -- own triggers' statements left, handed to the statement around it
        EXECUTE format('SELECT coalesce(jsonb_agg(jsonb_build_object(''depth'', $1, ''schema'', $2, ''id'', l.id)'
                       ' ORDER BY l.id), ''[]'') FROM (SELECT g.id FROM %I._sync_write_log g'
                       ' WHERE g.session_pid = pg_backend_pid() ORDER BY g.id DESC LIMIT $3) l', log_schema)
           INTO mine USING depth, log_schema, logged;
        held := held || mine
             || coalesce((SELECT jsonb_agg(jsonb_set(h, '{depth}', to_jsonb(depth)) ORDER BY i)
                            FROM jsonb_array_elements(deeper) WITH ORDINALITY AS x(h, i)), '[]');
    ELSIF deeper <> '[]' THEN
        PERFORM sequin_sf._log_after(deeper);
    END IF;
    PERFORM set_config('sequin_sf.capture_frames', frames::text, true);
    PERFORM set_config('sequin_sf.capture_held', held::text, true);
END
$$;

-- Moves held log entries (each {"schema", "id"}) after everything logged so far, in
-- the order given: logged again with new ids, the first copies deleted. The held list
-- is a setting the session could write itself, so it is trusted for nothing: only
-- entries this session logged in this transaction and not yet sent move (an
-- application can reorder its own changes, as it could by ordering its statements),
-- and the schema is quoted as a name.
CREATE FUNCTION sequin_sf._log_after(entries jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e jsonb;
BEGIN
    FOR e IN SELECT h FROM jsonb_array_elements(entries) WITH ORDINALITY AS x(h, i) ORDER BY i LOOP
        IF to_regclass(format('%I._sync_write_log', e ->> 'schema')) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format('WITH moved AS (DELETE FROM %I._sync_write_log WHERE id = $1'
                       ' AND session_pid = pg_backend_pid() AND inserted_at = now() AND state = ''new'''
                       ' RETURNING table_name, object_name, row_id, action, api_id, previous, "values")'
                       ' INSERT INTO %1$I._sync_write_log'
                       ' (table_name, object_name, row_id, action, api_id, previous, "values")'
                       ' SELECT * FROM moved', e ->> 'schema')
          USING (e ->> 'id')::bigint;
    END LOOP;
END
$$;

-- BEFORE STATEMENT on a synced table: opens the statement's frame (see above). Runs as
-- the application, with its search path (it writes only the session's own setting, so
-- what it names is qualified rather than the path pinned: one setting fewer to change
-- per statement); the role sequin-sf runs as is read from the catalog, as any role may.
CREATE FUNCTION sequin_sf._capture_statement_starts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(pg_catalog.current_setting('sequin_sf.applying', true), '') OPERATOR(pg_catalog.=) 'on'
       AND pg_catalog.pg_has_role(session_user, (SELECT n.nspowner FROM pg_catalog.pg_namespace n
                                                  WHERE n.nspname OPERATOR(pg_catalog.=) 'sequin_sf'), 'MEMBER') THEN
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.set_config('sequin_sf.capture_frames',
                                  pg_catalog.array_append(coalesce(nullif(pg_catalog.current_setting('sequin_sf.capture_frames', true), ''),
                                                                   '{}')::pg_catalog.int4[],
                                                          pg_catalog.pg_trigger_depth())::text, true);
    RETURN NULL;
END
$$;

-- Whether this transaction captured changes of synced tables (await_writes cannot wait
-- for its own).
CREATE FUNCTION sequin_sf._captured_in_transaction() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('sequin_sf.captured', true), '') = 'on'
$$;

-- Batches are written only by the C capture: beside the database there are none.
CREATE FUNCTION sequin_sf._batch_rows_json(row_type text, rows bytea[]) RETURNS text[]
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(rows) > 0 THEN
        RAISE EXCEPTION 'sequin_sf: a write batch of the C capture cannot be read without the extension''s library'
            USING HINT = 'Unpack the batches where the extension is installed (its worker does), then run sequin-sf.';
    END IF;
    RETURN '{}';
END
$$;
