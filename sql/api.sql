-- The user-facing API, and who may use it: management functions (credentials, syncs,
-- collections, settings), the write-back API (write settings, retry_writes,
-- await_writes, write_status), and at the end the privileges. The Rust helpers they call
-- (_seal_credential_secrets, _describe_global, _describe_fields, _near_names, _snake_case) are created
-- before this file runs.

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

-- Checks a credential's settings and stores it with its sealed secrets; one rule for
-- create_credential (sealed by the extension's library) and `sequin-sf credential
-- create` (sealed by sequin-sf with its own key). `secrets_given`: the names of the
-- secret parts given.
CREATE FUNCTION sequin_sf._store_credential(
    name text, kind text, login_url text, client_id text, username text,
    secrets_given text[], sealed bytea)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    missing text[] := '{}';
BEGIN
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
    -- plain http only to this machine (the emulator) or to hosts a superuser listed in
    -- sequin_sf.plain_http_hosts: a token must not cross a network in clear text
    IF login_url IS NULL OR NOT (
           login_url ~ '^https://[^/\s]+'
           OR substring(login_url FROM '^http://(\[[^]]+\]|[^/:\s]+)(:[0-9]+)?(/|$)')
              = ANY (ARRAY['127.0.0.1', 'localhost', '[::1]']
                     || string_to_array(replace(coalesce(current_setting('sequin_sf.plain_http_hosts', true), ''), ' ', ''), ','))) THEN
        RAISE EXCEPTION 'login_url % is not an https URL', coalesce(quote_literal(login_url), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example https://login.salesforce.com, https://test.salesforce.com or your My Domain URL; plain http is accepted only for 127.0.0.1, localhost, [::1] and the hosts in sequin_sf.plain_http_hosts';
    END IF;
    IF client_id IS NULL THEN missing := array_append(missing, 'client_id'); END IF;
    IF kind IN ('refresh_token', 'password', 'client_credentials') AND NOT 'client_secret' = ANY (secrets_given) THEN
        missing := array_append(missing, 'client_secret');
    END IF;
    IF kind = 'refresh_token' AND NOT 'refresh_token' = ANY (secrets_given) THEN missing := array_append(missing, 'refresh_token'); END IF;
    IF kind IN ('password', 'jwt_bearer') AND username IS NULL THEN missing := array_append(missing, 'username'); END IF;
    IF kind = 'password' AND NOT 'password' = ANY (secrets_given) THEN missing := array_append(missing, 'password'); END IF;
    IF kind = 'jwt_bearer' AND NOT 'private_key' = ANY (secrets_given) THEN missing := array_append(missing, 'private_key'); END IF;
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'a % credential needs %', kind, array_to_string(missing, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass them by name, e.g. client_id => ''...''';
    END IF;
    IF EXISTS (SELECT 1 FROM sequin_sf._credentials c WHERE c.name = _store_credential.name) THEN
        RAISE EXCEPTION 'credential "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'drop it first with sequin_sf.drop_credential(name) or choose another name';
    END IF;
    INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, username, secret)
    VALUES (name, kind, rtrim(login_url, '/'), client_id, username, sealed);
    RETURN name;
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
    RETURN sequin_sf._store_credential(
        name, kind, login_url, client_id, username,
        array_remove(ARRAY[CASE WHEN client_secret IS NOT NULL THEN 'client_secret' END,
                           CASE WHEN refresh_token IS NOT NULL THEN 'refresh_token' END,
                           CASE WHEN password IS NOT NULL THEN 'password' END,
                           CASE WHEN private_key IS NOT NULL THEN 'private_key' END], NULL),
        sequin_sf._seal_credential_secrets(name, client_secret, refresh_token, password, private_key));
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
-- superuser or by the role the syncs run as (the owner of schema sequin_sf: a
-- superuser with the extension, sequin-sf's role beside the database). The syncs write
-- to the sync's tables with that role's rights; the owner of a schema can drop and
-- recreate any table in it (with triggers of its own), so a schema owned by anyone
-- else would let them run code with those rights.
CREATE FUNCTION sequin_sf._check_sync_schema(target_schema text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    owner_name text;
    owner_super boolean;
    owner_oid oid;
    runner oid := (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'sequin_sf');
BEGIN
    SELECT r.rolname, r.rolsuper, r.oid INTO owner_name, owner_super, owner_oid
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
     WHERE n.nspname = target_schema;
    IF FOUND AND NOT owner_super AND owner_oid <> runner THEN
        RAISE EXCEPTION 'schema "%" is owned by role "%", which is not a superuser%', target_schema, owner_name,
                        CASE WHEN (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = runner) THEN ''
                             ELSE format(' nor %s, the role the syncs run as', runner::regrole) END
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The syncs write to the sync''s tables with their role''s rights; the owner of the schema could replace its tables with ones whose triggers would run with those rights.',
                  HINT = 'Use a schema name that does not exist yet (create_sync creates it), or ALTER SCHEMA ... OWNER TO a superuser (or the role the syncs run as) first.';
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

-- The Change Data Capture settings of alter_sync (NULL: unchanged).
CREATE FUNCTION sequin_sf._check_change_events(change_events text, pubsub_endpoint text,
                                               reconcile_interval interval) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    host text;
BEGIN
    IF change_events IS NOT NULL AND change_events NOT IN ('auto', 'channel', 'off') THEN
        RAISE EXCEPTION 'change_events must be ''auto'', ''channel'' or ''off'', got %', quote_literal(change_events)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''auto'' subscribes to the change events of the objects selected for Change Data Capture in Salesforce Setup; ''channel'' creates a channel of the sync''s own for its collections (the Salesforce user needs Customize Application); ''off'' polls every collection. Collections without events are polled';
    END IF;
    PERFORM sequin_sf._check_interval('reconcile_interval', reconcile_interval, '1 minute', '7 days',
        'how often collections on change events are polled as a safety net');
    IF nullif(btrim(pubsub_endpoint), '') IS NULL THEN
        RETURN;
    END IF;
    IF pubsub_endpoint !~ '^(https?://)?[A-Za-z0-9.\[\]:-]+:[0-9]{1,5}/?$' THEN
        RAISE EXCEPTION 'pubsub_endpoint % is not of the form https://host:port', quote_literal(pubsub_endpoint)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Salesforce''s is https://api.pubsub.salesforce.com:7443; pass '''' to go back to it';
    END IF;
    -- the session token travels with every call: never in clear text beyond this machine
    host := substring(pubsub_endpoint FROM '^http://([^/]+):[0-9]+/?$');
    IF host IS NOT NULL AND host NOT IN ('127.0.0.1', 'localhost', '[::1]') THEN
        RAISE EXCEPTION 'pubsub_endpoint % would send the Salesforce session in clear text', quote_literal(pubsub_endpoint)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use https://; plain http:// is accepted only for 127.0.0.1 (an emulator)';
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

-- The per-sync objects that do not depend on describe: the event stream and the
-- publication logical-replication consumers subscribe to.
CREATE FUNCTION sequin_sf._create_sync_objects(sync text, target_schema text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I._sync_events (
        seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_id       text NOT NULL,
        upstream_id         text NOT NULL,
        upstream_updated_at timestamptz,
        event               text NOT NULL CHECK (event IN (''inserted'', ''updated'', ''deleted'')),
        data                jsonb,
        previous_data       jsonb,
        inserted_at         timestamptz NOT NULL DEFAULT now()
    )', target_schema);
    EXECUTE format('CREATE INDEX ON %I._sync_events (inserted_at)', target_schema);
    BEGIN
        EXECUTE format('CREATE PUBLICATION %I FOR TABLES IN SCHEMA %I', 'sequin_sf_' || sync, target_schema);
    EXCEPTION WHEN insufficient_privilege THEN
        -- beside the database, sequin-sf's role is no superuser, which a publication of
        -- a whole schema needs: it publishes the sync's tables one by one instead
        EXECUTE format('CREATE PUBLICATION %I', 'sequin_sf_' || sync);
        PERFORM sequin_sf._publish_tables(target_schema);
    END;
END
$$;

-- Adds the tables of a sync's schema its publication lacks, where the publication
-- lists tables (made by a role that may not publish a whole schema); nothing where it
-- publishes the schema. Called as the sync creates tables. Only the tables sequin_sf
-- made (the collections' and the write log's, batches, events): a user's own table in
-- the schema is not ours to publish (and, not owned by the role, could not be).
CREATE FUNCTION sequin_sf._publish_tables(target_schema text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pub oid;
    t regclass;
BEGIN
    SELECT p.oid INTO pub FROM pg_catalog.pg_publication p
      JOIN sequin_sf._syncs s ON p.pubname = 'sequin_sf_' || s.name
     WHERE s.schema_name = target_schema;
    IF pub IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace n WHERE n.pnpubid = pub) THEN
        RETURN;
    END IF;
    FOR t IN SELECT c.oid::regclass FROM pg_catalog.pg_class c
              WHERE c.relnamespace = target_schema::regnamespace AND c.relkind = 'r'
                AND (c.oid IN (SELECT k.table_oid FROM sequin_sf._collections k
                                 JOIN sequin_sf._syncs s ON s.name = k.sync_name
                                WHERE s.schema_name = target_schema)
                     OR c.relname IN ('_sync_write_log', '_sync_write_batch', '_sync_events'))
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r
                                 WHERE r.prpubid = pub AND r.prrelid = c.oid)
              ORDER BY c.relname LOOP
        EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s',
                       (SELECT p.pubname FROM pg_catalog.pg_publication p WHERE p.oid = pub), t);
    END LOOP;
END
$$;

-- max_concurrent_requests: requests of the sync in flight at once; the default 2 is the
-- worker's own request and one backfill page fetched ahead while another is applied.
CREATE FUNCTION sequin_sf.create_sync(
    name text,
    credential text,
    collections text[],
    schema_name text DEFAULT 'salesforce',
    rate_limit_requests int DEFAULT 28800,
    rate_limit_interval interval DEFAULT '24 hours',
    max_concurrent_requests int DEFAULT 2,
    -- also emit an "inserted" event per backfilled row (slower initial load)
    backfill_events boolean DEFAULT false,
    -- collections with at least this many rows are backfilled with a Bulk 2.0 query job
    bulk_threshold bigint DEFAULT 50000,
    -- 'url': base64 fields get a column with the path of their bytes; 'skip': none
    base64_fields text DEFAULT 'url')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    objects text[];
    new_schema boolean;
BEGIN
    IF base64_fields IS NULL OR base64_fields NOT IN ('url', 'skip') THEN
        RAISE EXCEPTION 'base64_fields must be ''url'' or ''skip'', got %',
            coalesce(quote_literal(base64_fields), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''url'' stores the path Salesforce serves a file''s bytes from (fetch it with a GET); ''skip'' leaves such fields out';
    END IF;
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
    PERFORM sequin_sf._refuse_taken_name(schema_name, '_sync_write_batch');
    -- Logs in and checks the objects now, so a bad credential or a typo fails here.
    objects := sequin_sf._resolve_collections(credential, collections);
    new_schema := NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = schema_name);
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', schema_name);
    INSERT INTO sequin_sf._syncs (name, credential, schema_name, created_schema, rate_limit_requests,
                                  rate_limit_interval, max_concurrent_requests, backfill_events,
                                  bulk_threshold, base64_fields)
    VALUES (name, credential, schema_name, new_schema, rate_limit_requests, rate_limit_interval,
            max_concurrent_requests, coalesce(backfill_events, false), bulk_threshold,
            base64_fields);
    PERFORM sequin_sf._create_sync_objects(name, schema_name);
    PERFORM sequin_sf._write_settings_of(schema_name);
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
    max_concurrent_requests int DEFAULT NULL,
    change_events text DEFAULT NULL,
    pubsub_endpoint text DEFAULT NULL,
    reconcile_interval interval DEFAULT NULL,
    event_collections text[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    before sequin_sf._syncs;
    chosen text[];
BEGIN
    before := sequin_sf._check_sync(name);
    PERFORM sequin_sf._check_change_events(change_events, pubsub_endpoint, reconcile_interval);
    chosen := sequin_sf._event_collections_of(name, event_collections);
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
        max_concurrent_requests = coalesce(alter_sync.max_concurrent_requests, s.max_concurrent_requests),
        change_events = coalesce(alter_sync.change_events, s.change_events),
        -- '' goes back to Salesforce's endpoint
        pubsub_endpoint = CASE WHEN alter_sync.pubsub_endpoint IS NULL THEN s.pubsub_endpoint
                               ELSE nullif(btrim(alter_sync.pubsub_endpoint), '') END,
        reconcile_interval = coalesce(alter_sync.reconcile_interval, s.reconcile_interval),
        -- '{}' gives change events to every collection again
        event_collections = CASE WHEN alter_sync.event_collections IS NULL THEN s.event_collections
                                 ELSE nullif(chosen, '{}') END
    WHERE s.name = alter_sync.name;
    IF alter_sync.change_events IS NOT NULL AND alter_sync.change_events <> 'channel' THEN
        PERFORM sequin_sf._leave_event_channel(before);
    END IF;
END
$$;

-- The collections of `sync` that `names` picks for change events, spelled as the sync
-- spells them (NULL: no choice given); an error names any that is not one of them.
CREATE FUNCTION sequin_sf._event_collections_of(sync text, names text[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    n text;
    found text;
    out text[] := '{}';
BEGIN
    IF names IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH n IN ARRAY names LOOP
        SELECT c.object_name INTO found FROM sequin_sf._collections c
         WHERE c.sync_name = sync AND lower(c.object_name) = lower(btrim(n));
        IF found IS NULL THEN
            RAISE EXCEPTION 'event_collections names %, which is not a collection of sync "%"', quote_literal(n), sync
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'its collections: ' || coalesce((SELECT string_agg(c.object_name, ', ' ORDER BY c.object_name)
                                                             FROM sequin_sf._collections c WHERE c.sync_name = sync), 'none')
                             || '; ''{}'' gives change events to every collection again';
        END IF;
        IF NOT found = ANY (out) THEN
            out := out || found;
        END IF;
    END LOOP;
    RETURN out;
END
$$;

-- A sync that no longer uses its own channel (change_events moved away from 'channel',
-- or the sync is dropped) leaves it to the engine to delete in Salesforce; the change
-- event stream starts again from the newest events (polls cover the switch).
CREATE FUNCTION sequin_sf._leave_event_channel(s sequin_sf._syncs) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF s.event_channel IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO sequin_sf._event_channels_left (channel, credential)
    VALUES (s.event_channel, s.credential)
    ON CONFLICT (channel) DO NOTHING;
    UPDATE sequin_sf._syncs x SET event_channel = NULL, replay_id = NULL WHERE x.name = s.name;
    RAISE NOTICE 'the Change Data Capture channel % of sync "%" will be deleted in Salesforce by the sync engine', s.event_channel, s.name;
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

-- The collection `collection` (any case) of sync `sync`, or an error naming both.
CREATE FUNCTION sequin_sf._check_collection(sync text, collection text)
RETURNS sequin_sf._collections LANGUAGE plpgsql AS $$
DECLARE
    c sequin_sf._collections;
BEGIN
    PERFORM sequin_sf._check_sync(sync);
    SELECT * INTO c FROM sequin_sf._collections x WHERE x.sync_name = sync AND lower(x.object_name) = lower(collection);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sync "%" does not mirror "%"', sync, collection USING ERRCODE = 'undefined_object',
            HINT = 'SELECT collection FROM sequin_sf.sync_status WHERE sync_name = ''' || sync || ''' lists them';
    END IF;
    RETURN c;
END
$$;

-- Settings of one collection. calculated_refresh: how often every record's calculated
-- fields (formulas, roll-ups) are read again, NULL for never. Salesforce does not move
-- a record's SystemModstamp when a record its cross-object formula reads changes, so
-- polls cannot see those changes; a refresh reads Id and calculated fields only, one
-- API call per 2,000 records.
CREATE FUNCTION sequin_sf.alter_collection(sync text, collection text, calculated_refresh interval)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c sequin_sf._collections := sequin_sf._check_collection(sync, collection);
BEGIN
    PERFORM sequin_sf._check_interval('calculated_refresh', calculated_refresh,
        interval '1 minute', interval '365 days',
        'each refresh costs one API call per 2,000 records of the collection; NULL turns it off');
    UPDATE sequin_sf._collections x
       SET calculated_refresh = alter_collection.calculated_refresh,
           calculated_cursor = CASE WHEN alter_collection.calculated_refresh IS NULL THEN NULL
                                    ELSE x.calculated_cursor END
     WHERE x.sync_name = c.sync_name AND x.object_name = c.object_name;
END
$$;

-- Starts a read of every record's calculated fields now (whatever the schedule says):
-- for when the operator knows that records cross-object formulas read have changed.
CREATE FUNCTION sequin_sf.refresh_calculated(sync text, collection text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c sequin_sf._collections := sequin_sf._check_collection(sync, collection);
BEGIN
    UPDATE sequin_sf._collections x SET calculated_cursor = coalesce(x.calculated_cursor, '')
     WHERE x.sync_name = c.sync_name AND x.object_name = c.object_name;
END
$$;

CREATE FUNCTION sequin_sf.remove_collection(sync text, collection text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs := sequin_sf._check_sync(sync);
    c sequin_sf._collections := sequin_sf._check_collection(sync, collection);
BEGIN
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
    RAISE NOTICE 'dropping %._sync_events, %._sync_write_log (and _sync_write_batch), publication % and the sync''s write settings',
                 s.schema_name, s.schema_name, 'sequin_sf_' || s.name;
    DELETE FROM sequin_sf.write_settings w WHERE w.schema_name = s.schema_name;
    EXECUTE format('DROP TABLE IF EXISTS %I._sync_events', s.schema_name);
    EXECUTE format('DROP TABLE IF EXISTS %I._sync_write_log CASCADE', s.schema_name);
    EXECUTE format('DROP TABLE IF EXISTS %I._sync_write_batch', s.schema_name);
    EXECUTE format('DROP FUNCTION IF EXISTS %I._sync_capture() CASCADE', s.schema_name);
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', 'sequin_sf_' || s.name);
    PERFORM sequin_sf._leave_event_channel(s);
    DELETE FROM sequin_sf._syncs x WHERE x.name = s.name;
    IF s.created_schema AND NOT EXISTS (
        SELECT 1 FROM pg_class WHERE relnamespace = s.schema_name::regnamespace
        UNION ALL SELECT 1 FROM pg_proc WHERE pronamespace = s.schema_name::regnamespace) THEN
        EXECUTE format('DROP SCHEMA %I', s.schema_name);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------
-- Writing back: settings, retries, waiting for and watching the writes
-- ---------------------------------------------------------------------------------

-- Per-sync write settings, one row per sync schema (made with the sync, or by
-- _write_settings_of for a sync older than this table's rows): the defaults live here.
CREATE TABLE sequin_sf.write_settings (
    schema_name         text PRIMARY KEY,
    -- records per sObject Collections request, at most Salesforce's cap
    batch_size          integer NOT NULL DEFAULT sequin_sf._max_collection_records()
                        CHECK (batch_size BETWEEN 1 AND sequin_sf._max_collection_records()),
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

-- begin: extension only
SELECT pg_catalog.pg_extension_config_dump('sequin_sf.write_settings', '');
-- end: extension only

-- A sync's write settings, made with the defaults when the sync has none yet.
CREATE FUNCTION sequin_sf._write_settings_of(p_schema text) RETURNS sequin_sf.write_settings
LANGUAGE plpgsql AS $$
DECLARE
    w sequin_sf.write_settings;
BEGIN
    SELECT * INTO w FROM sequin_sf.write_settings WHERE schema_name = p_schema;
    IF NOT FOUND THEN
        INSERT INTO sequin_sf.write_settings (schema_name) VALUES (p_schema)
            ON CONFLICT (schema_name) DO NOTHING;
        SELECT * INTO w FROM sequin_sf.write_settings WHERE schema_name = p_schema;
    END IF;
    RETURN w;
END
$$;

-- external_id_fields is {"Object": "Field"}: each object a collection of the sync, each
-- field one Salesforce marks External ID on it. Checked against a describe made now
-- (one login and one describe per object named), not against sequin_sf.columns: right
-- after create_sync the sync's worker has not described the collection yet, and the
-- columns do not say which fields are external ids.
CREATE FUNCTION sequin_sf._check_external_id_fields(p_sync text, p_fields jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    s sequin_sf._syncs := sequin_sf._check_sync(p_sync);
    objects text[];
    field text;
    described record;
    ext_ids text[];
BEGIN
    IF p_fields IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p_fields) <> 'object' THEN
        RAISE EXCEPTION 'external_id_fields must be a JSON object, got %', p_fields
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example ''{"Contact": "External_Id__c"}'': object API name -> external id field';
    END IF;
    SELECT coalesce(array_agg(c.object_name ORDER BY c.object_name), '{}') INTO objects
      FROM sequin_sf._collections c WHERE c.sync_name = p_sync;
    FOR e IN SELECT key, value FROM jsonb_each(p_fields) LOOP
        IF NOT e.key = ANY (objects) THEN
            RAISE EXCEPTION 'external_id_fields: "%" is not a collection of sync "%"', e.key, p_sync
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'name the object as Salesforce spells it; the sync''s collections are '
                             || array_to_string(objects, ', ');
        END IF;
        IF jsonb_typeof(e.value) <> 'string' THEN
            RAISE EXCEPTION 'external_id_fields: the field of % must be a string, got %', e.key, e.value
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'for example ''{"Contact": "External_Id__c"}''';
        END IF;
        field := e.value #>> '{}';
        SELECT d.name, d.external_id INTO described
          FROM sequin_sf._describe_fields(s.credential, e.key) d WHERE d.name = field;
        IF NOT FOUND OR NOT described.external_id THEN
            SELECT array_agg(d.name ORDER BY d.name) INTO ext_ids
              FROM sequin_sf._describe_fields(s.credential, e.key) d WHERE d.external_id;
            RAISE EXCEPTION 'external_id_fields: %.% %', e.key, field,
                            CASE WHEN described.name IS NULL THEN 'is not a field of ' || e.key || ' in the org'
                                 ELSE 'is not marked External ID in Salesforce' END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN cardinality(ext_ids) > 0
                                  THEN 'the external id fields of ' || e.key || ' are ' || array_to_string(ext_ids, ', ')
                                  ELSE e.key || ' has no external id field; an admin can mark a custom text or number field External ID in Setup' END
                             || ' (name them as Salesforce spells them)';
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
    sch text := (sequin_sf._check_sync(sync_name)).schema_name;
    out sequin_sf.write_settings;
    t record;
BEGIN
    IF batch_size IS NOT NULL AND batch_size NOT BETWEEN 1 AND sequin_sf._max_collection_records() THEN
        RAISE EXCEPTION 'batch_size must be between 1 and %, got %',
                        sequin_sf._max_collection_records(), batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Salesforce takes at most %s records per sObject Collections request.',
                                sequin_sf._max_collection_records());
    END IF;
    PERFORM sequin_sf._check_interval('max_batch_wait', max_batch_wait, '0 seconds', '1 hour',
        'how long a change may wait for its batch to fill; 0 sends at once');
    PERFORM sequin_sf._check_interval('write_log_retention', write_log_retention, '1 second', '10 years',
        'settled log entries older than this are pruned; 7 days is the default');
    PERFORM sequin_sf._check_external_id_fields(sync_name, external_id_fields);
    PERFORM sequin_sf._write_settings_of(sch);
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
        PERFORM sequin_sf._check_sync(sync_name);
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
-- passes), then reports this session's writes settled since its previous call. It runs
-- as its caller, to read when the session started: pg_stat_activity shows that to the
-- session's own role (and to superusers), not to the owner of _await_writes, which does
-- the rest with the owner's rights.
CREATE FUNCTION sequin_sf.await_writes(timeout interval DEFAULT '60 seconds',
                                       sync_name text DEFAULT NULL)
RETURNS TABLE (succeeded bigint, failed bigint, unsettled bigint)
LANGUAGE sql AS $$
    SELECT * FROM sequin_sf._await_writes(
        timeout, sync_name,
        (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()))
$$;

-- await_writes' work; `started`: when this session started (its log entries carry its
-- pid, which an earlier session may have had).
CREATE FUNCTION sequin_sf._await_writes(timeout interval, sync_name text, started timestamptz)
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
    ok bigint;
    bad bigint;
    open_ bigint;
BEGIN
    IF timeout IS NULL OR timeout < interval '0' OR timeout > interval '1 day' THEN
        RAISE EXCEPTION 'await_writes: timeout must be between 0 and 1 day, got %', coalesce(timeout::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example sequin_sf.await_writes(''30 seconds'')';
    END IF;
    IF sync_name IS NOT NULL THEN
        PERFORM sequin_sf._check_sync(sync_name);
    END IF;
    -- (some of its entries may wait in memory until it commits: src/capture/batch.rs)
    IF sequin_sf._captured_in_transaction() THEN
        RAISE EXCEPTION 'await_writes() cannot wait for changes of its own transaction'
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'COMMIT the changes first, then call sequin_sf.await_writes().';
    END IF;
    succeeded := 0; failed := 0; unsettled := 0;
    FOR s IN SELECT y.schema_name FROM sequin_sf._syncs y
              WHERE (_await_writes.sync_name IS NULL OR y.name = _await_writes.sync_name)
                AND to_regclass(format('%I._sync_write_log', y.schema_name)) IS NOT NULL LOOP
        -- entries still in batches (sql/capture.sql) are unsettled too
        EXECUTE format('SELECT greatest((SELECT coalesce(max(id), 0) FROM %1$I._sync_write_log),'
                       ' (SELECT coalesce(max(ids[cardinality(ids)]), 0) FROM %1$I._sync_write_batch))',
                       s.schema_name) INTO top;
        upto := upto || jsonb_build_object(s.schema_name, top);
        LOOP
            EXECUTE format('SELECT (SELECT count(*) FROM %1$I._sync_write_log'
                           '         WHERE state IN (''new'', ''pending'') AND id <= $1)'
                           '     + (SELECT coalesce(sum(cardinality(ids)), 0) FROM %1$I._sync_write_batch'
                           '         WHERE id <= $1)', s.schema_name) INTO left_ USING top;
            EXIT WHEN left_ = 0 OR clock_timestamp() >= deadline;
            PERFORM pg_sleep(nap);
            nap := least(nap * 2, 0.2);
        END LOOP;
        EXECUTE format($q$
            SELECT count(*) FILTER (WHERE state = 'succeeded'),
                   count(*) FILTER (WHERE state = 'failed'),
                   count(*) FILTER (WHERE state IN ('new', 'pending'))
              FROM (SELECT id, state, session_pid, inserted_at FROM %1$I._sync_write_log
                    UNION ALL
                    SELECT e.id, 'new', b.session_pid, b.inserted_at
                      FROM %1$I._sync_write_batch b, unnest(b.ids) e(id)) l
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
            -- entries still in batches (sql/capture.sql) are queued too
            EXECUTE format($q$
                SELECT count(*) FILTER (WHERE state = 'new') + (SELECT coalesce(sum(cardinality(ids)), 0) FROM %1$I._sync_write_batch),
                       count(*) FILTER (WHERE state = 'pending'),
                       count(*) FILTER (WHERE state = 'new' AND next_attempt_at > now()),
                       count(*) FILTER (WHERE state = 'failed' AND settled_at > now() - interval '24 hours'),
                       count(*) FILTER (WHERE state = 'succeeded' AND settled_at > now() - interval '24 hours'),
                       least(min(inserted_at) FILTER (WHERE state IN ('new', 'pending')),
                             (SELECT min(inserted_at) FROM %1$I._sync_write_batch))
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

-- ---------------------------------------------------------------------------------
-- Metrics for Prometheus (docs/metrics.md): one row per metric and label set, built
-- from what the catalog holds; metrics_text() renders them in Prometheus's text
-- exposition format. No error text and no record data, so PUBLIC may read them.
-- ---------------------------------------------------------------------------------

-- The rows of sequin_sf.metrics. Runs as the extension's owner: the write logs and
-- events it counts are the owner's, and sync_status.behind looks for the workers in
-- pg_stat_activity, which shows other roles' sessions only to privileged ones. Every
-- name is qualified and the search path pinned, as PUBLIC may call it.
CREATE FUNCTION sequin_sf._metrics()
RETURNS TABLE (name text, labels jsonb, value float8, help text, type text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    s record;
    l jsonb;
    n_new bigint;
    n_pending bigint;
    n_succeeded bigint;
    n_failed bigint;
    oldest timestamptz;
BEGIN
    RETURN QUERY
    WITH col AS (
        SELECT v.sync_name, v.collection, v.lag, v.behind, v.capture, v.rows_done,
               v.rows_total, c.state AS collection_state,
               (SELECT t.oid FROM pg_catalog.pg_class t WHERE t.oid = c.table_oid) AS table_oid,
               pg_catalog.jsonb_build_object('sync', v.sync_name, 'collection', v.collection) AS l
          FROM sequin_sf.sync_status v
          JOIN sequin_sf._collections c ON c.sync_name = v.sync_name AND c.object_name = v.collection
    )
    SELECT 'sequin_sf_lag_seconds', col.l, pg_catalog.date_part('epoch', col.lag),
           'Seconds since the collection''s table last matched Salesforce (sync_status.lag; no sample while the collection is not live)',
           'gauge'
      FROM col WHERE col.lag IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_behind', col.l, CASE WHEN col.behind IS NULL THEN 0 ELSE 1 END::float8,
           '1 while the collection''s table is not being kept current (sync_status.behind says why), else 0',
           'gauge'
      FROM col
    UNION ALL
    SELECT 'sequin_sf_backfilling', col.l, CASE WHEN col.collection_state = 'backfilling' THEN 1 ELSE 0 END::float8,
           '1 while the collection is being backfilled, else 0',
           'gauge'
      FROM col
    UNION ALL
    SELECT 'sequin_sf_capture_enabled', col.l, CASE WHEN col.capture = 'on' THEN 1 ELSE 0 END::float8,
           '1 while the table''s changes are captured and sent to Salesforce, 0 while a capture trigger is disabled or missing (sync_status.capture)',
           'gauge'
      FROM col WHERE col.capture IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_rows', col.l, pg_catalog.pg_stat_get_live_tuples(col.table_oid)::float8,
           'Rows in the collection''s table, estimated by Postgres''s statistics (pg_stat_user_tables.n_live_tup)',
           'gauge'
      FROM col WHERE col.table_oid IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_backfill_rows_done', col.l, col.rows_done::float8,
           'Rows the collection''s last backfill has loaded (sync_status.rows_done)',
           'gauge'
      FROM col
    UNION ALL
    SELECT 'sequin_sf_backfill_rows_total', col.l, col.rows_total::float8,
           'Rows Salesforce counted for the collection''s last backfill (sync_status.rows_total)',
           'gauge'
      FROM col WHERE col.rows_total IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_paused', pg_catalog.jsonb_build_object('sync', y.name),
           CASE WHEN y.paused THEN 1 ELSE 0 END::float8,
           '1 while the sync is paused (sequin_sf.pause_sync), else 0',
           'gauge'
      FROM sequin_sf._syncs y
    UNION ALL
    SELECT 'sequin_sf_api_requests_24h', pg_catalog.jsonb_build_object('sync', y.name),
           (SELECT coalesce(sum(u.requests), 0) FROM sequin_sf._api_usage u
             WHERE u.sync_name = y.name AND u.minute > now() - interval '24 hours')::float8,
           'Salesforce API requests the sync made in the last 24 hours (per-minute figures are kept 48 hours, so this is no counter)',
           'gauge'
      FROM sequin_sf._syncs y
    UNION ALL
    SELECT 'sequin_sf_org_api_requests_used', pg_catalog.jsonb_build_object('sync', y.name),
           y.org_api_used::float8,
           'API requests the whole org (every client) used in the last 24 hours, as Salesforce last reported them to the sync (syncs.org_api_requests_used)',
           'gauge'
      FROM sequin_sf._syncs y WHERE y.org_api_used IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_org_api_requests_limit', pg_catalog.jsonb_build_object('sync', y.name),
           y.org_api_limit::float8,
           'The org''s daily API request limit, as Salesforce last reported it to the sync (syncs.org_api_requests_limit)',
           'gauge'
      FROM sequin_sf._syncs y WHERE y.org_api_limit IS NOT NULL
    UNION ALL
    SELECT 'sequin_sf_org_limit_max', pg_catalog.jsonb_build_object('sync', o.sync_name, 'allocation', o.allocation),
           o.max::float8,
           'An allocation of the org (daily API requests, Bulk query jobs and storage, event deliveries, long-running requests) as /limits last reported it to the sync (sequin_sf.org_limits)',
           'gauge'
      FROM sequin_sf.org_limits o
    UNION ALL
    SELECT 'sequin_sf_org_limit_remaining', pg_catalog.jsonb_build_object('sync', o.sync_name, 'allocation', o.allocation),
           o.remaining::float8,
           'What is left of the allocation for every client of the org, as /limits last reported it to the sync',
           'gauge'
      FROM sequin_sf.org_limits o
    UNION ALL
    SELECT 'sequin_sf_org_limit_sync_used_24h', pg_catalog.jsonb_build_object('sync', o.sync_name, 'allocation', o.allocation),
           o.sync_used_24h::float8,
           'The sync''s own use of the allocation in the last 24 hours, where it counts it (API requests, Bulk query jobs, event deliveries)',
           'gauge'
      FROM sequin_sf.org_limits o WHERE o.sync_used_24h IS NOT NULL;

    FOR s IN SELECT y.name, y.schema_name FROM sequin_sf._syncs y ORDER BY y.name LOOP
        l := pg_catalog.jsonb_build_object('sync', s.name);
        n_new := 0; n_pending := 0; n_succeeded := 0; n_failed := 0; oldest := NULL;
        IF pg_catalog.to_regclass(pg_catalog.format('%I._sync_write_log', s.schema_name)) IS NOT NULL THEN
            -- entries still in batches (sql/capture.sql) are new too, as in write_status()
            EXECUTE pg_catalog.format($q$
                SELECT count(*) FILTER (WHERE w.state = 'new')
                         + (SELECT coalesce(sum(pg_catalog.cardinality(b.ids)), 0) FROM %1$I._sync_write_batch b),
                       count(*) FILTER (WHERE w.state = 'pending'),
                       count(*) FILTER (WHERE w.state = 'succeeded'),
                       count(*) FILTER (WHERE w.state = 'failed'),
                       least(min(w.inserted_at) FILTER (WHERE w.state IN ('new', 'pending')),
                             (SELECT min(b.inserted_at) FROM %1$I._sync_write_batch b))
                  FROM %1$I._sync_write_log w
                $q$, s.schema_name)
              INTO n_new, n_pending, n_succeeded, n_failed, oldest;
        END IF;
        help := 'Entries in the sync''s write log by state (new includes entries still in batches); settled ones are pruned after write_log_retention';
        type := 'gauge';
        name := 'sequin_sf_write_log_entries';
        labels := l || '{"state": "new"}'; value := n_new; RETURN NEXT;
        labels := l || '{"state": "pending"}'; value := n_pending; RETURN NEXT;
        labels := l || '{"state": "succeeded"}'; value := n_succeeded; RETURN NEXT;
        labels := l || '{"state": "failed"}'; value := n_failed; RETURN NEXT;
        name := 'sequin_sf_write_oldest_queued_seconds';
        labels := l;
        value := coalesce(pg_catalog.date_part('epoch', greatest(now() - oldest, interval '0')), 0);
        help := 'Seconds the oldest write not yet settled (new or pending) has waited; 0 when none waits';
        RETURN NEXT;
        IF pg_catalog.to_regclass(pg_catalog.format('%I._sync_events', s.schema_name)) IS NOT NULL THEN
            name := 'sequin_sf_events_retained';
            EXECUTE pg_catalog.format('SELECT count(*) FROM %I._sync_events', s.schema_name) INTO value;
            help := 'Change events kept in the sync''s _sync_events (pruned after event_retention, so this is no counter)';
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

CREATE VIEW sequin_sf.metrics AS
SELECT m.name, m.labels, m.value, m.help, m.type FROM sequin_sf._metrics() m;

-- sequin_sf.metrics in Prometheus's text exposition format (version 0.0.4): each
-- metric's # HELP and # TYPE lines, then its samples; label values escaped (\\, \",
-- \n), values as Prometheus writes them (NaN, +Inf, -Inf).
CREATE FUNCTION sequin_sf.metrics_text() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(b.block, '' ORDER BY b.name), '')
      FROM (SELECT m.name,
                   '# HELP ' || m.name || ' '
                   || replace(replace(min(m.help), '\', '\\'), E'\n', '\n') || E'\n'
                   || '# TYPE ' || m.name || ' ' || min(m.type) || E'\n'
                   || string_agg(
                          m.name
                          || coalesce((SELECT '{' || string_agg(
                                                   e.key || '="'
                                                   || replace(replace(replace(e.value, '\', '\\'), '"', '\"'), E'\n', '\n')
                                                   || '"', ',') || '}'
                                         FROM jsonb_each_text(m.labels) e), '')
                          || ' '
                          || CASE WHEN m.value = 'Infinity'::float8 THEN '+Inf'
                                  WHEN m.value = '-Infinity'::float8 THEN '-Inf'
                                  ELSE coalesce(m.value::text, 'NaN') END,
                          E'\n' ORDER BY m.labels::text) || E'\n' AS block
              FROM sequin_sf.metrics m
             GROUP BY m.name) b
$$;

COMMENT ON VIEW sequin_sf.metrics IS
    'One row per metric and label set, named for Prometheus (docs/metrics.md); sequin_sf.metrics_text() gives them in its text format.';

COMMENT ON FUNCTION sequin_sf.metrics_text() IS
    'sequin_sf.metrics in Prometheus''s text exposition format, for psql -Atc or sql_exporter.';

-- ---------------------------------------------------------------------------------
-- Privileges: who may read and call what (the one place that decides it)
-- ---------------------------------------------------------------------------------
--
-- * PUBLIC: reads sequin_sf.columns and the status views without their error text
--   (which can quote Salesforce's answers about records), calls await_writes, and reads
--   sequin_sf.metrics and metrics_text() (counts and ages, for a monitoring role).
-- * A management role, which the DBA names with sequin_sf.grant_management(role): every
--   function below, the full views, credentials (never the secrets) and write settings.
-- * Everything else (the internal tables and the functions whose names start with "_")
--   is for the extension's owner, the background worker and the functions below.
--
-- The management functions and _await_writes run as the extension's owner (SECURITY
-- DEFINER) so that their callers need no rights on internal tables; await_writes runs
-- as its caller and calls _await_writes. Each pins search_path, so nothing a caller
-- creates can stand in for what they call.

CREATE FUNCTION sequin_sf._management_functions() RETURNS regprocedure[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(p.oid::regprocedure ORDER BY p.proname)
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'sequin_sf'::regnamespace
       AND p.proname IN ('create_credential', 'drop_credential', 'available_collections',
                         'create_sync', 'alter_sync', 'add_collection', 'remove_collection',
                         'alter_collection', 'refresh_calculated',
                         'pause_sync', 'resume_sync', 'drop_sync', 'alter_write_settings',
                         'retry_writes', '_await_writes', 'write_status')
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
    -- await_writes runs as its caller (see there), _await_writes as the owner
    ALTER FUNCTION sequin_sf.await_writes(interval, text) SET search_path = pg_catalog, pg_temp;
    GRANT EXECUTE ON FUNCTION sequin_sf.await_writes(interval, text),
                              sequin_sf._await_writes(interval, text, timestamptz) TO PUBLIC;
    GRANT USAGE ON SCHEMA sequin_sf TO PUBLIC;
    GRANT SELECT ON sequin_sf.columns TO PUBLIC;
    -- metrics: counts and ages only (no error text, no record data); _metrics runs as
    -- the owner with its search path pinned
    GRANT SELECT ON sequin_sf.metrics TO PUBLIC;
    GRANT EXECUTE ON FUNCTION sequin_sf._metrics(), sequin_sf.metrics_text() TO PUBLIC;
    -- the org's allocations: figures only
    GRANT SELECT ON sequin_sf.org_limits TO PUBLIC;
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
