-- sequin_sf management functions (plpgsql). The Rust helpers they call
-- (_seal_credential_secrets, _describe_global, _near_names, _snake_case) are created before this
-- file runs.

-- Statements calling create_credential carry secrets: never let an error log them.
CREATE FUNCTION sequin_sf._hide_statement() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('log_min_error_statement', 'panic', true);
EXCEPTION WHEN insufficient_privilege THEN
    NULL;  -- a role that cannot change it cannot write credentials either
END
$$;

-- Reads a secrets file on the server. Reading server files is a superuser's right (or
-- pg_read_server_files'): create_credential runs as the extension's owner, so the role
-- that logged in is checked here, or any management role could read any server file.
CREATE FUNCTION sequin_sf._read_secrets_file(path text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    body text;
    doc jsonb;
    extra text[];
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user)
       AND NOT pg_catalog.pg_has_role(session_user, 'pg_read_server_files', 'MEMBER') THEN
        RAISE EXCEPTION 'reading secrets_file needs a superuser or a member of pg_read_server_files'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'ask the DBA to create the credential, or pass the secrets as arguments';
    END IF;
    BEGIN
        body := pg_catalog.pg_read_file(path);
        doc := body::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'secrets_file %: %', path, SQLERRM
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'give the path of a JSON object such as {"client_secret": "...", "refresh_token": "..."}, readable by the postgres user';
    END;
    IF jsonb_typeof(doc) <> 'object' THEN
        RAISE EXCEPTION 'secrets_file % does not hold a JSON object', path
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example {"client_secret": "...", "refresh_token": "..."}';
    END IF;
    extra := ARRAY(SELECT k FROM jsonb_object_keys(doc) k
                    WHERE k NOT IN ('client_secret', 'refresh_token', 'password', 'private_key'));
    IF cardinality(extra) > 0 THEN
        RAISE EXCEPTION 'secrets_file % has unknown keys: %', path, array_to_string(extra, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the keys are client_secret, refresh_token, password and private_key';
    END IF;
    RETURN doc;
END
$$;

-- A secret given as an argument, or else from the secrets file; never both.
CREATE FUNCTION sequin_sf._secret_from(arg text, doc jsonb, key text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF doc ? key AND arg IS NOT NULL THEN
        RAISE EXCEPTION '% is given both as an argument and in secrets_file', key
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give each secret once';
    END IF;
    RETURN coalesce(arg, doc ->> key);
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
    private_key text DEFAULT NULL,
    -- a JSON file on the database server holding any of client_secret, refresh_token,
    -- password, private_key: secrets read from it never appear in statement text
    secrets_file text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    missing text[] := '{}';
    from_file jsonb;
BEGIN
    PERFORM sequin_sf._hide_statement();
    IF secrets_file IS NOT NULL THEN
        from_file := sequin_sf._read_secrets_file(secrets_file);
        client_secret := sequin_sf._secret_from(client_secret, from_file, 'client_secret');
        refresh_token := sequin_sf._secret_from(refresh_token, from_file, 'refresh_token');
        password := sequin_sf._secret_from(password, from_file, 'password');
        private_key := sequin_sf._secret_from(private_key, from_file, 'private_key');
    END IF;
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
    -- plain http only to this machine (the emulator): a token must not cross a network
    -- in clear text
    IF login_url IS NULL OR NOT (login_url ~ '^https://[^/\s]+'
                                 OR login_url ~ '^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/|$)') THEN
        RAISE EXCEPTION 'login_url % is not an https URL', coalesce(quote_literal(login_url), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example https://login.salesforce.com, https://test.salesforce.com or your My Domain URL; plain http is accepted only for 127.0.0.1, localhost and [::1]';
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
            sequin_sf._seal_credential_secrets(name, client_secret, refresh_token, password, private_key));
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
    IF sync IS NULL THEN
        RAISE EXCEPTION 'the sync name must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'SELECT name FROM sequin_sf.syncs lists them';
    END IF;
    SELECT * INTO s FROM sequin_sf._syncs WHERE name = sync;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not exist', sync
            USING ERRCODE = 'undefined_object', HINT = 'SELECT name FROM sequin_sf.syncs lists them';
    END IF;
    RETURN s;
END
$$;

-- A sync creates its tables only under names nobody uses: a relation of the name that
-- this extension did not create is the user's, and is never replaced.
CREATE FUNCTION sequin_sf._refuse_taken_name(target_schema text, target_table text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                          WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                          WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index' ELSE 'relation' END
      INTO kind
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = target_schema AND c.relname = target_table;
    IF FOUND THEN
        RAISE EXCEPTION 'a % named %.% already exists and was not created by sequin_sf', kind,
                        target_schema, target_table
            USING ERRCODE = 'duplicate_table',
                  DETAIL = 'sequin_sf never replaces or alters a relation it did not create.',
                  HINT = 'Give the sync another schema_name, or rename or move that relation yourself.';
    END IF;
END
$$;

-- The schema of a new sync: created by create_sync, or an existing one owned by a
-- superuser. The worker runs as a superuser and writes to the sync's tables; the owner
-- of a schema can drop and recreate any table in it (with triggers of its own), so a
-- schema owned by an ordinary role would let that role run code with the worker's rights.
CREATE FUNCTION sequin_sf._check_sync_schema(target_schema text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    owner_name text;
    owner_super boolean;
BEGIN
    SELECT r.rolname, r.rolsuper INTO owner_name, owner_super
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = target_schema;
    IF FOUND AND NOT owner_super THEN
        RAISE EXCEPTION 'schema "%" is owned by role "%", which is not a superuser', target_schema, owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The sync''s background worker runs as a superuser; the owner of the schema could replace its tables with ones whose triggers would run with those rights.',
                  HINT = 'Use a schema name that does not exist yet (create_sync creates it), or ALTER SCHEMA ... OWNER TO a superuser first.';
    END IF;
END
$$;

-- One rule per setting, shared by create_sync and alter_sync (NULL = not being set).
CREATE FUNCTION sequin_sf._check_sync_settings(
    poll_overlap interval, describe_interval interval, deleted_interval interval,
    event_retention interval, org_usage_ceiling real, bulk_threshold bigint,
    rate_limit_requests int, rate_limit_interval interval, max_concurrent_requests int)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sequin_sf._check_interval('poll_overlap', poll_overlap, '0 seconds', '1 hour',
        'the overlap re-reads recent changes so none is missed; 30 seconds is the default');
    PERFORM sequin_sf._check_interval('describe_interval', describe_interval, '1 second', '7 days',
        'each check of an object''s fields costs an API request; 10 minutes is the default');
    PERFORM sequin_sf._check_interval('deleted_interval', deleted_interval, '1 second', '1 day',
        'each check for hard deletes costs an API request; 1 minute is the default');
    PERFORM sequin_sf._check_interval('event_retention', event_retention, '1 second', '10 years',
        'events older than this are pruned; 7 days is the default');
    PERFORM sequin_sf._check_interval('rate_limit_interval', rate_limit_interval, '1 second', '31 days',
        'the window rate_limit_requests applies to; 24 hours is the default');
    IF org_usage_ceiling IS NOT NULL AND NOT (org_usage_ceiling > 0 AND org_usage_ceiling <= 1) THEN
        RAISE EXCEPTION 'org_usage_ceiling must be above 0 and at most 1, got %', org_usage_ceiling
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'it is the share of the org''s daily API requests this sync never pushes usage past, e.g. 0.8';
    END IF;
    IF bulk_threshold IS NOT NULL AND bulk_threshold < 1 THEN
        RAISE EXCEPTION 'bulk_threshold must be a positive row count, got %', bulk_threshold
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'collections with at least this many rows are backfilled through the Bulk API; 50000 is the default';
    END IF;
    IF rate_limit_requests IS NOT NULL AND rate_limit_requests < 1 THEN
        RAISE EXCEPTION 'rate_limit_requests must be at least 1, got %', rate_limit_requests
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the API requests this sync may make per rate_limit_interval; 28800 per 24 hours is the default';
    END IF;
    IF max_concurrent_requests IS NOT NULL AND max_concurrent_requests NOT BETWEEN 1 AND 25 THEN
        RAISE EXCEPTION 'max_concurrent_requests must be between 1 and 25, got %', max_concurrent_requests
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Salesforce allows 25 long-running requests at once per production org, shared by all integrations';
    END IF;
END
$$;

CREATE FUNCTION sequin_sf._check_interval(setting text, value interval, low interval,
                                          high interval, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NOT NULL AND (value < low OR value > high) THEN
        RAISE EXCEPTION '% must be between % and %, got %', setting, low, high, value
            USING ERRCODE = 'invalid_parameter_value', HINT = what;
    END IF;
END
$$;

CREATE FUNCTION sequin_sf._add_collections(sync text, objects text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    o text;
    t text;
    sch text := (SELECT s.schema_name FROM sequin_sf._syncs s WHERE s.name = sync);
BEGIN
    FOREACH o IN ARRAY objects LOOP
        t := sequin_sf._snake_case(o);
        IF t LIKE '\_%' THEN
            RAISE EXCEPTION 'object "%" would map to table "%", which is reserved', o, t
                USING ERRCODE = 'invalid_name';
        END IF;
        PERFORM sequin_sf._refuse_taken_name(sch, t);
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
    IF rate_limit_requests IS NULL OR rate_limit_interval IS NULL OR max_concurrent_requests IS NULL
       OR bulk_threshold IS NULL THEN
        RAISE EXCEPTION 'rate_limit_requests, rate_limit_interval, max_concurrent_requests and bulk_threshold must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'leave an argument out to get its default';
    END IF;
    PERFORM sequin_sf._check_sync_settings(NULL, NULL, NULL, NULL, NULL, bulk_threshold,
                                           rate_limit_requests, rate_limit_interval,
                                           max_concurrent_requests);
    PERFORM sequin_sf._check_sync_schema(schema_name);
    PERFORM sequin_sf._refuse_taken_name(schema_name, '_sync_events');
    PERFORM sequin_sf._refuse_taken_name(schema_name, '_sync_write_log');
    -- Logs in and checks the objects now, so a bad credential or a typo fails here.
    objects := sequin_sf._resolve_collections(credential, collections);
    new_schema := NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = schema_name);
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
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
    PERFORM sequin_sf._check_sync_settings(poll_overlap, describe_interval, deleted_interval,
                                           event_retention, org_usage_ceiling, bulk_threshold,
                                           rate_limit_requests, rate_limit_interval,
                                           max_concurrent_requests);
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
    PERFORM sequin_sf._drop_collection_table(s.schema_name, c);
    DELETE FROM sequin_sf._collections x WHERE x.sync_name = sync AND x.object_name = c.object_name;
END
$$;

-- Drops a collection's table if it is the one the sync created (its oid was recorded
-- then); a relation of that name that is not says so and stays. Dropping fires no
-- capture, so nothing needs switching off.
CREATE FUNCTION sequin_sf._drop_collection_table(target_schema text, c sequin_sf._collections)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rel regclass := to_regclass(format('%I.%I', target_schema, c.table_name));
BEGIN
    IF rel IS NULL THEN
        RETURN;
    END IF;
    IF c.table_oid IS DISTINCT FROM rel::oid THEN
        RAISE NOTICE 'not dropping %: it is not the table sequin_sf created for %', rel, c.object_name
            USING HINT = 'It was created by someone else; drop it yourself if it is no longer needed.';
        RETURN;
    END IF;
    PERFORM sequin_sf._remove_capture_if_loaded(target_schema, c.table_name);
    RAISE NOTICE 'dropping table % (collection %)', rel, c.object_name;
    EXECUTE format('DROP TABLE %s CASCADE', rel);
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
    c sequin_sf._collections;
    t text;
BEGIN
    s := sequin_sf._check_sync(name);
    FOR c IN SELECT * FROM sequin_sf._collections x WHERE x.sync_name = s.name LOOP
        PERFORM sequin_sf._drop_collection_table(s.schema_name, c);
    END LOOP;
    -- the write path's per-table capture functions (named _sync_capture*)
    FOR t IN SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = s.schema_name::regnamespace AND p.proname LIKE '\_sync\_capture%' LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || t || ' CASCADE';
    END LOOP;
    RAISE NOTICE 'dropping %._sync_events, %._sync_write_log and publication %', s.schema_name,
                 s.schema_name, 'sequin_sf_' || s.name;
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

-- ---------------------------------------------------------------------------------
-- Privileges: who may read and call what (the one place that decides it)
-- ---------------------------------------------------------------------------------
--
-- * PUBLIC: reads sequin_sf.columns and the status views without their error text
--   (which can quote Salesforce's answers about records), and calls await_writes.
-- * A management role, which the DBA names with sequin_sf.grant_management(role): every
--   function below, the full views, credentials (never the secrets) and write settings.
-- * Everything else (the internal tables and the functions whose names start with "_")
--   is for the extension's owner, the background worker and the functions below.
--
-- The management functions and await_writes run as the extension's owner (SECURITY
-- DEFINER) so that their callers need no rights on internal tables; each pins
-- search_path, so nothing a caller creates can stand in for what they call.

CREATE FUNCTION sequin_sf._management_functions() RETURNS regprocedure[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(p.oid::regprocedure ORDER BY p.proname)
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'sequin_sf'::regnamespace
       AND p.proname IN ('create_credential', 'drop_credential', 'available_collections',
                         'create_sync', 'alter_sync', 'add_collection', 'remove_collection',
                         'pause_sync', 'resume_sync', 'drop_sync', 'alter_write_settings',
                         'retry_writes', 'await_writes', 'write_status')
$$;

-- Lets a role manage syncs: run the management functions and read the full views.
CREATE FUNCTION sequin_sf.grant_management(role_name name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f regprocedure;
BEGIN
    IF role_name IS NULL OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(quote_ident(role_name), 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'CREATE ROLE it first';
    END IF;
    FOREACH f IN ARRAY sequin_sf._management_functions() LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, role_name);
    END LOOP;
    EXECUTE format('GRANT SELECT ON sequin_sf.syncs, sequin_sf.sync_status, sequin_sf.credentials,'
                   ' sequin_sf.write_settings TO %I', role_name);
END
$$;

CREATE FUNCTION sequin_sf.revoke_management(role_name name) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f regprocedure;
BEGIN
    FOREACH f IN ARRAY sequin_sf._management_functions() LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', f, role_name);
    END LOOP;
    EXECUTE format('REVOKE SELECT ON sequin_sf.syncs, sequin_sf.sync_status, sequin_sf.credentials,'
                   ' sequin_sf.write_settings FROM %I', role_name);
END
$$;

COMMENT ON FUNCTION sequin_sf.grant_management(name) IS
    'Lets a role create and manage credentials and syncs (the management functions) and read the full status views. Superusers only.';

-- Sets the privileges above on the extension's objects (at install and by upgrades).
CREATE FUNCTION sequin_sf._apply_privileges() RETURNS void
LANGUAGE plpgsql AS $privileges$
DECLARE
    f regprocedure;
    v text;
BEGIN
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA sequin_sf FROM PUBLIC;
    REVOKE ALL ON ALL TABLES IN SCHEMA sequin_sf FROM PUBLIC;
    FOREACH f IN ARRAY sequin_sf._management_functions() LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
    GRANT EXECUTE ON FUNCTION sequin_sf.await_writes(interval, text) TO PUBLIC;
    GRANT USAGE ON SCHEMA sequin_sf TO PUBLIC;
    GRANT SELECT ON sequin_sf.columns TO PUBLIC;
    FOREACH v IN ARRAY ARRAY['syncs', 'sync_status'] LOOP
        EXECUTE format('GRANT SELECT (%s) ON sequin_sf.%I TO PUBLIC',
                       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                          FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = format('sequin_sf.%I', v)::regclass
                           AND a.attnum > 0 AND a.attname <> 'last_error'), v);
    END LOOP;
END
$privileges$;

SELECT sequin_sf._apply_privileges();
