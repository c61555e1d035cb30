-- What the extension's library gives its SQL, for a database where no library can be
-- loaded (sequin-sf installs the objects itself: crates/sidecar/src/install.rs). Same
-- names and arguments as the Rust functions of src/, so sql/capture.sql, worker.sql
-- and api.sql run unchanged on top of either. Run after sql/bootstrap.sql.
--
-- Differences a user can see, documented in the README ("On a managed Postgres"):
--   * create_credential refuses: secrets are sealed by sequin-sf with a key it holds
--     (`sequin-sf credential create`), so the database never sees them in clear;
--   * the org's objects and the fields of synced objects come from what sequin-sf last
--     read (_org_objects, _org_fields), not from a call to Salesforce made by SQL;
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

-- The fields of each synced object as sequin-sf last described them.
CREATE TABLE sequin_sf._org_fields (
    credential  text NOT NULL REFERENCES sequin_sf._credentials(name) ON DELETE CASCADE,
    object_name text NOT NULL,
    name        text NOT NULL,
    external_id boolean NOT NULL,
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (credential, object_name, name)
);

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

CREATE FUNCTION sequin_sf._describe_global(credential text)
RETURNS TABLE (name text, label text, custom boolean, queryable boolean, replicateable boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r sequin_sf._org_objects_read;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = _describe_global.credential) THEN
        RAISE EXCEPTION 'credential "%" does not exist', credential
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'check the credential with SELECT * FROM sequin_sf.credentials';
    END IF;
    SELECT * INTO r FROM sequin_sf._org_objects_read o WHERE o.credential = _describe_global.credential;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sequin-sf has not listed the objects of credential "%"''s org yet', credential
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'sequin-sf lists them within seconds of a new credential: check that it runs, then call again';
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
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sequin_sf._org_fields f
                    WHERE f.credential = _describe_fields.credential AND f.object_name = object) THEN
        RAISE EXCEPTION 'sequin-sf has not described % yet', object
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Beside the database, the fields an org has are read by sequin-sf, not by SQL.',
                  HINT = 'sequin-sf describes a sync''s objects within seconds of create_sync or add_collection: call again then';
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

-- Write capture in PL/pgSQL: the same trigger arguments and the same log rows as the C
-- capture (src/capture/mod.rs): inserts with the row's id only, updates with the
-- changed sent columns' new values and the full row before, deletes with the row
-- before; rows Salesforce would refuse raise _refuse_write's error. A value that reads
-- differently (as text) is a change. Changes sequin-sf applies itself run with
-- sequin_sf.applying = on; without the library that setting is not reserved, so it is
-- obeyed only in sessions of the role sequin-sf runs as. Runs as that role (the log is
-- not writable by application roles), with its search path pinned. Entries go
-- straight to the log (the C capture's batches are a cost saving this one does not
-- make), in the order src/capture/nested.rs explains: a statement run by the triggers
-- of a statement on a synced table is logged after that statement's own entries.
--
-- That order is kept with two transaction-local settings, restored by Postgres when a
-- savepoint rolls back: sequin_sf.capture_frames, the trigger depths of the statements
-- on synced tables that have started and not been captured (_capture_statement_starts
-- opens one), and sequin_sf.capture_held, the log entries of statements captured while
-- a shallower one was open. Every statement logs its entries at once; the first
-- statement around them with no synced statement around it moves the held entries
-- after its own (logs them again, in order, and deletes the first copies).
--
-- What an application's one-row statement costs is mostly what PL/pgSQL pays once
-- per transaction for each expression and statement it runs: the common case (a
-- statement the application ran itself, nothing held) runs as few as it can.
CREATE FUNCTION sequin_sf._capture_writes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
-- a synced table's columns may be named like a variable here (sent, rules...): the
-- statements below name columns through their table only
#variable_conflict use_variable
DECLARE
    sent text[];
    logged bigint;
    depth int;
    frames int[];
    nested boolean;
    held jsonb;
    deeper jsonb;
BEGIN
    IF coalesce(current_setting('sequin_sf.applying', true), '') = 'on'
       AND pg_has_role(session_user, sequin_sf._runner(), 'MEMBER') THEN
        RETURN NULL;
    END IF;
    -- the table's own log, found through the search path so that the statements below
    -- are static and their plans kept (Postgres compiles a trigger function once per
    -- trigger; the path is restored as the function returns)
    PERFORM set_config('search_path', format('pg_catalog, %I, pg_temp', TG_TABLE_SCHEMA), true);
    sent := TG_ARGV[3:TG_NARGS - 1];
    IF TG_OP = 'INSERT' THEN
        IF TG_ARGV[1] <> '{}' OR TG_ARGV[2] <> '{}' THEN
            -- a row sets a column it may not, or a picklist value not allowed: the values
            -- it sets are built for the error only
            PERFORM sequin_sf._refuse_write(
                        TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT',
                        (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(x.j) e
                          WHERE e.key = ANY (sent) AND e.value <> 'null'),
                        TG_ARGV[1]::jsonb, TG_ARGV[2]::jsonb)
               FROM (SELECT to_jsonb(n.*) AS j FROM _sf_new n) x
              WHERE jsonb_strip_nulls(x.j) ?| ARRAY(SELECT k FROM jsonb_object_keys(TG_ARGV[1]::jsonb) k
                                                     WHERE k = ANY (sent))
                 OR EXISTS (SELECT 1 FROM jsonb_each(TG_ARGV[2]::jsonb) p
                             WHERE p.key = ANY (sent) AND (x.j -> p.key) <> 'null'
                               AND NOT p.value @> jsonb_build_array(x.j -> p.key));
        END IF;
        INSERT INTO _sync_write_log (table_name, object_name, row_id, action)
        SELECT TG_TABLE_NAME, TG_ARGV[0], n._row_id, 'insert' FROM _sf_new n;
    ELSIF TG_OP = 'UPDATE' THEN
        -- OLD and NEW rows sit at the same position of the two transition tables: paired
        -- by unnesting the two in step (a join on their positions would be planned once,
        -- for the first statement's row count, and kept)
        WITH pairs AS (
                SELECT p.pos, p.before, p.after,
                       (SELECT jsonb_object_agg(k, p.after -> k) FROM unnest(sent) k
                         WHERE (p.before ->> k) IS DISTINCT FROM (p.after ->> k)) AS changed
                  FROM unnest((SELECT array_agg(to_jsonb(o.*)) FROM _sf_old o),
                              (SELECT array_agg(to_jsonb(n.*)) FROM _sf_new n))
                       WITH ORDINALITY AS p(before, after, pos)),
             checked AS MATERIALIZED (
                SELECT p.*,
                       CASE WHEN (p.before -> '_row_id') IS DISTINCT FROM (p.after -> '_row_id')
                            THEN sequin_sf._row_id_changed(TG_TABLE_NAME, (p.before ->> '_row_id')::bigint,
                                                          (p.after ->> '_row_id')::bigint) END AS moved,
                       CASE WHEN p.changed ?| ARRAY(SELECT jsonb_object_keys(TG_ARGV[1]::jsonb)
                                                    UNION SELECT jsonb_object_keys(TG_ARGV[2]::jsonb))
                            THEN sequin_sf._refuse_write(TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE',
                                                         p.changed, TG_ARGV[1]::jsonb, TG_ARGV[2]::jsonb) END AS refused
                  FROM pairs p)
        INSERT INTO _sync_write_log (table_name, object_name, row_id, action, api_id, previous, "values")
        SELECT TG_TABLE_NAME, TG_ARGV[0], (c.after ->> '_row_id')::bigint, 'update', c.before ->> 'id',
               c.before, c.changed
          FROM checked c WHERE c.changed IS NOT NULL AND c.moved IS NULL
         ORDER BY c.pos;
    ELSE
        INSERT INTO _sync_write_log (table_name, object_name, row_id, action, api_id, previous)
        SELECT TG_TABLE_NAME, TG_ARGV[0], o._row_id, 'delete', to_jsonb(o.*) ->> 'id', to_jsonb(o.*)
          FROM _sf_old o;
    END IF;
    GET DIAGNOSTICS logged = ROW_COUNT;
    -- One event of this statement is captured: the statement ends with its last (a MERGE
    -- or INSERT ... ON CONFLICT fires a BEFORE and an AFTER STATEMENT trigger per
    -- operation). Any shallower statement still open makes it nested.
    depth := pg_trigger_depth();
    frames := coalesce(nullif(current_setting('sequin_sf.capture_frames', true), ''), '{}')::int[];
    IF depth = 1 AND frames = '{1}' AND coalesce(current_setting('sequin_sf.capture_held', true), '') IN ('', '[]') THEN
        -- the application's own statement, nothing held: the common case ends here
        PERFORM set_config('sequin_sf.capture_frames', '{}', true);
    ELSE
        frames := frames[1:coalesce(array_position(frames, depth), cardinality(frames) + 1) - 1]
                  || frames[coalesce(array_position(frames, depth), cardinality(frames)) + 1:];
        nested := coalesce((SELECT min(f) FROM unnest(frames) f) < depth, false);
        held := coalesce(nullif(current_setting('sequin_sf.capture_held', true), ''), '[]')::jsonb;
        -- what statements run by its triggers left comes after its own entries, once
        -- all its operations are captured
        deeper := '[]';
        IF held <> '[]' AND NOT depth = ANY (frames) THEN
            SELECT coalesce(jsonb_agg(h ORDER BY i) FILTER (WHERE (h ->> 'depth')::int > depth), '[]'),
                   coalesce(jsonb_agg(h ORDER BY i) FILTER (WHERE (h ->> 'depth')::int <= depth), '[]')
              INTO deeper, held
              FROM jsonb_array_elements(held) WITH ORDINALITY AS x(h, i);
        END IF;
        IF nested THEN
            -- its own (the session's last `logged` entries of the log), then what its
            -- own triggers' statements left, handed to the statement around it
            held := held
                 || coalesce((SELECT jsonb_agg(jsonb_build_object(
                                         'depth', depth, 'schema', TG_TABLE_SCHEMA,
                                         'id', l.id) ORDER BY l.id)
                                FROM (SELECT g.id FROM _sync_write_log g WHERE g.session_pid = pg_backend_pid()
                                       ORDER BY g.id DESC LIMIT logged) l), '[]')
                 || coalesce((SELECT jsonb_agg(jsonb_set(h, '{depth}', to_jsonb(depth)) ORDER BY i)
                                FROM jsonb_array_elements(deeper) WITH ORDINALITY AS x(h, i)), '[]');
        ELSIF deeper <> '[]' THEN
            PERFORM sequin_sf._log_after(deeper);
        END IF;
        PERFORM set_config('sequin_sf.capture_frames', frames::text, true);
        PERFORM set_config('sequin_sf.capture_held', held::text, true);
    END IF;
    IF logged > 0 AND current_setting('sequin_sf.captured', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('sequin_sf.captured', 'on', true);
    END IF;
    RETURN NULL;
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
