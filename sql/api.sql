-- sequin_sf management functions (plpgsql). The Rust helpers they call
-- (_seal_secrets, _describe_global, _near_names, _snake_case) are created before this
-- file runs.

-- Statements calling create_credential carry secrets: never let an error log them.
CREATE FUNCTION sequin_sf._hide_statement() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('log_min_error_statement', 'panic', true);
EXCEPTION WHEN insufficient_privilege THEN
    NULL;  -- a role that cannot change it cannot write credentials either
END
$$;

CREATE FUNCTION sequin_sf.create_credential(
    name text,
    kind text,
    login_url text DEFAULT 'https://login.salesforce.com',
    client_id text DEFAULT NULL,
    client_secret text DEFAULT NULL,
    refresh_token text DEFAULT NULL,
    username text DEFAULT NULL,
    password text DEFAULT NULL,
    private_key text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    missing text[] := '{}';
BEGIN
    PERFORM sequin_sf._hide_statement();
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION 'credential name % is not valid', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1 to 63 letters, digits, "_", "." or "-"';
    END IF;
    IF kind IS NULL OR kind NOT IN ('refresh_token', 'password', 'client_credentials', 'jwt_bearer') THEN
        RAISE EXCEPTION 'credential kind % is not supported', coalesce(quote_literal(kind), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'kind is one of refresh_token, password, client_credentials, jwt_bearer';
    END IF;
    IF login_url IS NULL OR login_url !~ '^https?://[^/\s]+' THEN
        RAISE EXCEPTION 'login_url % is not an http(s) URL', coalesce(quote_literal(login_url), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example https://login.salesforce.com, https://test.salesforce.com or your My Domain URL';
    END IF;
    IF client_id IS NULL THEN missing := array_append(missing, 'client_id'); END IF;
    IF kind IN ('refresh_token', 'password', 'client_credentials') AND client_secret IS NULL THEN
        missing := array_append(missing, 'client_secret');
    END IF;
    IF kind = 'refresh_token' AND refresh_token IS NULL THEN missing := array_append(missing, 'refresh_token'); END IF;
    IF kind IN ('password', 'jwt_bearer') AND username IS NULL THEN missing := array_append(missing, 'username'); END IF;
    IF kind = 'password' AND password IS NULL THEN missing := array_append(missing, 'password'); END IF;
    IF kind = 'jwt_bearer' AND private_key IS NULL THEN missing := array_append(missing, 'private_key'); END IF;
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'a % credential needs %', kind, array_to_string(missing, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass them by name, e.g. client_id => ''...''';
    END IF;
    IF EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = create_credential.name) THEN
        RAISE EXCEPTION 'credential "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'drop it first with sequin_sf.drop_credential(name) or choose another name';
    END IF;
    INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, username, secret)
    VALUES (name, kind, rtrim(login_url, '/'), client_id, username,
            sequin_sf._seal_secrets(client_secret, refresh_token, password, private_key));
    RETURN name;
END
$$;

CREATE FUNCTION sequin_sf.drop_credential(name text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(s.name, ', ') INTO users FROM sequin_sf._syncs s WHERE s.credential = drop_credential.name;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'credential "%" is used by sync(s) %', name, users
            USING ERRCODE = 'dependent_objects_still_exist', HINT = 'drop those syncs first';
    END IF;
    DELETE FROM sequin_sf._credentials c WHERE c.name = drop_credential.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credential "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

-- The org's objects a sync can mirror (queryable), custom objects included.
CREATE FUNCTION sequin_sf.available_collections(credential text)
RETURNS TABLE (name text, label text, custom boolean, replicateable boolean)
LANGUAGE sql AS $$
    SELECT d.name, d.label, d.custom, d.replicateable
    FROM sequin_sf._describe_global(credential) d
    WHERE d.queryable
    ORDER BY d.name
$$;

-- Checks every requested object exists in the org (one login + one global describe)
-- and returns them with Salesforce's spelling.
CREATE FUNCTION sequin_sf._resolve_collections(credential text, wanted text[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    names text[];
    w text;
    found text;
    out text[] := '{}';
    near text[];
BEGIN
    SELECT array_agg(d.name) INTO names FROM sequin_sf._describe_global(credential) d WHERE d.queryable;
    FOREACH w IN ARRAY wanted LOOP
        SELECT n INTO found FROM unnest(names) n WHERE lower(n) = lower(w);
        IF found IS NULL THEN
            near := sequin_sf._near_names(w, coalesce(names, '{}'));
            RAISE EXCEPTION 'Salesforce object "%" does not exist in the org of credential "%" (or is not queryable)', w, credential
                USING ERRCODE = 'undefined_object',
                      HINT = CASE WHEN cardinality(near) > 0
                                  THEN 'did you mean ' || array_to_string(near, ', ') || '? '
                                  ELSE '' END
                             || 'SELECT name FROM sequin_sf.available_collections(''' || credential || ''') lists them';
        END IF;
        IF NOT found = ANY (out) THEN
            out := out || found;
        END IF;
    END LOOP;
    RETURN out;
END
$$;

CREATE FUNCTION sequin_sf._check_sync(sync text) RETURNS sequin_sf._syncs LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs;
BEGIN
    SELECT * INTO s FROM sequin_sf._syncs WHERE name = sync;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', sync
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM sequin_sf.syncs lists them';
    END IF;
    RETURN s;
END
$$;

CREATE FUNCTION sequin_sf._add_collections(sync text, objects text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o text;
    t text;
BEGIN
    FOREACH o IN ARRAY objects LOOP
        t := sequin_sf._snake_case(o);
        IF t LIKE '\_%' THEN
            RAISE EXCEPTION 'object "%" would map to table "%", which is reserved', o, t
                USING ERRCODE = 'invalid_name';
        END IF;
        INSERT INTO sequin_sf._collections (sync_name, object_name, table_name)
        VALUES (sync, o, t);
    END LOOP;
END
$$;

CREATE FUNCTION sequin_sf.create_sync(
    name text,
    credential text,
    collections text[],
    schema_name text DEFAULT 'salesforce',
    rate_limit_requests int DEFAULT 28800,
    rate_limit_interval interval DEFAULT '24 hours',
    max_concurrent_requests int DEFAULT 1,
    -- also emit an "inserted" event per backfilled row (slower initial load)
    backfill_events boolean DEFAULT false,
    -- collections with at least this many rows are backfilled with a Bulk 2.0 query job
    bulk_threshold bigint DEFAULT 50000)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    objects text[];
    new_schema boolean;
BEGIN
    IF name IS NULL OR name !~ '^[a-z_][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'sync name % is not valid', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1 to 48 lower-case letters, digits and "_", starting with a letter or "_"';
    END IF;
    IF EXISTS (SELECT 1 FROM sequin_sf._syncs s WHERE s.name = create_sync.name) THEN
        RAISE EXCEPTION 'sync "%" already exists', name USING ERRCODE = 'duplicate_object',
            HINT = 'use add_collection to mirror more objects, or drop_sync first';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = credential) THEN
        RAISE EXCEPTION 'credential "%" does not exist', credential USING ERRCODE = 'undefined_object',
            HINT = 'create it with sequin_sf.create_credential(...)';
    END IF;
    IF collections IS NULL OR cardinality(collections) = 0 THEN
        RAISE EXCEPTION 'a sync needs at least one collection' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'for example collections => ARRAY[''Contact'', ''Account'']';
    END IF;
    IF schema_name IS NULL OR schema_name !~ '^[a-z_][a-z0-9_]{0,62}$' OR schema_name IN ('sequin_sf', 'public', 'pg_catalog', 'information_schema') THEN
        RAISE EXCEPTION 'schema_name % cannot hold a sync', coalesce(quote_literal(schema_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use a dedicated lower-case schema name such as salesforce';
    END IF;
    IF EXISTS (SELECT 1 FROM sequin_sf._syncs s WHERE s.schema_name = create_sync.schema_name) THEN
        RAISE EXCEPTION 'schema "%" already holds another sync', schema_name USING ERRCODE = 'duplicate_schema',
            HINT = 'give each sync its own schema_name';
    END IF;
    IF rate_limit_requests IS NULL OR rate_limit_requests < 1 OR rate_limit_interval IS NULL
       OR rate_limit_interval <= interval '0' OR max_concurrent_requests IS NULL OR max_concurrent_requests < 1 THEN
        RAISE EXCEPTION 'rate limits must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Logs in and checks the objects now, so a bad credential or a typo fails here.
    objects := sequin_sf._resolve_collections(credential, collections);
    new_schema := NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = schema_name);
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
    IF bulk_threshold IS NULL OR bulk_threshold < 1 THEN
        RAISE EXCEPTION 'bulk_threshold must be a positive row count' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO sequin_sf._syncs (name, credential, schema_name, created_schema, rate_limit_requests,
                                  rate_limit_interval, max_concurrent_requests, backfill_events,
                                  bulk_threshold)
    VALUES (name, credential, schema_name, new_schema, rate_limit_requests, rate_limit_interval,
            max_concurrent_requests, coalesce(backfill_events, false), bulk_threshold);
    PERFORM sequin_sf._create_sync_objects(name, schema_name);
    PERFORM sequin_sf._add_collections(name, objects);
    RETURN name;
END
$$;

-- Tuning knobs beyond create_sync's; NULL leaves a setting as it is.
CREATE FUNCTION sequin_sf.alter_sync(
    name text,
    poll_overlap interval DEFAULT NULL,
    describe_interval interval DEFAULT NULL,
    deleted_interval interval DEFAULT NULL,
    event_retention interval DEFAULT NULL,
    org_usage_ceiling real DEFAULT NULL,
    bulk_threshold bigint DEFAULT NULL,
    backfill_events boolean DEFAULT NULL,
    rate_limit_requests int DEFAULT NULL,
    rate_limit_interval interval DEFAULT NULL,
    max_concurrent_requests int DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sequin_sf._check_sync(name);
    UPDATE sequin_sf._syncs s SET
        poll_overlap = coalesce(alter_sync.poll_overlap, s.poll_overlap),
        describe_interval = coalesce(alter_sync.describe_interval, s.describe_interval),
        deleted_interval = coalesce(alter_sync.deleted_interval, s.deleted_interval),
        event_retention = coalesce(alter_sync.event_retention, s.event_retention),
        org_usage_ceiling = coalesce(alter_sync.org_usage_ceiling, s.org_usage_ceiling),
        bulk_threshold = coalesce(alter_sync.bulk_threshold, s.bulk_threshold),
        backfill_events = coalesce(alter_sync.backfill_events, s.backfill_events),
        rate_limit_requests = coalesce(alter_sync.rate_limit_requests, s.rate_limit_requests),
        rate_limit_interval = coalesce(alter_sync.rate_limit_interval, s.rate_limit_interval),
        max_concurrent_requests = coalesce(alter_sync.max_concurrent_requests, s.max_concurrent_requests)
    WHERE s.name = alter_sync.name;
END
$$;

CREATE FUNCTION sequin_sf.add_collection(sync text, collection text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs;
    objects text[];
BEGIN
    s := sequin_sf._check_sync(sync);
    objects := sequin_sf._resolve_collections(s.credential, ARRAY[collection]);
    IF EXISTS (SELECT 1 FROM sequin_sf._collections c WHERE c.sync_name = sync AND c.object_name = objects[1]) THEN
        RAISE EXCEPTION 'sync "%" already mirrors %', sync, objects[1] USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM sequin_sf._add_collections(sync, objects);
END
$$;

-- Lets the write path detach its capture from a table about to be dropped.
CREATE FUNCTION sequin_sf._remove_capture_if_loaded(target_schema text, target_table text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regprocedure('sequin_sf._remove_capture(text,text)') IS NOT NULL THEN
        EXECUTE 'SELECT sequin_sf._remove_capture($1, $2)' USING target_schema, target_table;
    END IF;
END
$$;

CREATE FUNCTION sequin_sf.remove_collection(sync text, collection text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs;
    c sequin_sf._collections;
BEGIN
    s := sequin_sf._check_sync(sync);
    SELECT * INTO c FROM sequin_sf._collections x WHERE x.sync_name = sync AND lower(x.object_name) = lower(collection);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not mirror "%"', sync, collection USING ERRCODE = 'undefined_object',
            HINT = 'SELECT collection FROM sequin_sf.sync_status WHERE sync_name = ''' || sync || ''' lists them';
    END IF;
    PERFORM set_config('sequin_sf.applying', 'on', true);
    PERFORM sequin_sf._remove_capture_if_loaded(s.schema_name, c.table_name);
    EXECUTE format('DROP TABLE IF EXISTS %I.%I', s.schema_name, c.table_name);
    DELETE FROM sequin_sf._collections x WHERE x.sync_name = sync AND x.object_name = c.object_name;
END
$$;

CREATE FUNCTION sequin_sf.pause_sync(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sequin_sf._check_sync(name);
    UPDATE sequin_sf._syncs s SET paused = true WHERE s.name = pause_sync.name;
END
$$;

CREATE FUNCTION sequin_sf.resume_sync(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sequin_sf._check_sync(name);
    UPDATE sequin_sf._syncs s SET paused = false WHERE s.name = resume_sync.name;
END
$$;

-- Drops the sync's tables, event stream and publication (and its schema when
-- create_sync created it and nothing else lives there).
CREATE FUNCTION sequin_sf.drop_sync(name text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs;
    t text;
BEGIN
    s := sequin_sf._check_sync(name);
    PERFORM set_config('sequin_sf.applying', 'on', true);
    FOR t IN SELECT c.table_name FROM sequin_sf._collections c WHERE c.sync_name = s.name LOOP
        PERFORM sequin_sf._remove_capture_if_loaded(s.schema_name, t);
        EXECUTE format('DROP TABLE IF EXISTS %I.%I CASCADE', s.schema_name, t);
    END LOOP;
    -- the write path's per-table capture functions (named _sync_capture*)
    FOR t IN SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = s.schema_name::regnamespace AND p.proname LIKE '\_sync\_capture%' LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || t || ' CASCADE';
    END LOOP;
    EXECUTE format('DROP TABLE IF EXISTS %I._sync_events', s.schema_name);
    EXECUTE format('DROP TABLE IF EXISTS %I._sync_write_log CASCADE', s.schema_name);
    EXECUTE format('DROP FUNCTION IF EXISTS %I._sync_capture() CASCADE', s.schema_name);
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', 'sequin_sf_' || s.name);
    DELETE FROM sequin_sf._syncs x WHERE x.name = s.name;
    IF s.created_schema AND NOT EXISTS (
        SELECT 1 FROM pg_class WHERE relnamespace = s.schema_name::regnamespace
        UNION ALL SELECT 1 FROM pg_proc WHERE pronamespace = s.schema_name::regnamespace) THEN
        EXECUTE format('DROP SCHEMA %I', s.schema_name);
    END IF;
END
$$;
