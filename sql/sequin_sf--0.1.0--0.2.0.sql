-- sequin_sf 0.1.0 -> 0.2.0 (ALTER EXTENSION sequin_sf UPDATE)
--
-- Tables first (by hand), then every function that changed or is new (drafted from the
-- two releases' install scripts by scripts/upgrade-script.sh, which rewrites only that
-- part, and read through), then what must be redone for objects the old release
-- created: the capture triggers of synced tables (now one function in Rust for all), the
-- write logs' grants and tables of batches, and the privileges of the extension's own
-- objects.

-- Existing syncs keep the external id markers they have been using (an upsert already
-- sent with one may be sent again with the same one); syncs created from now on get a
-- random key.
ALTER TABLE sequin_sf._syncs ADD COLUMN marker_key text NOT NULL DEFAULT '';
ALTER TABLE sequin_sf._syncs ALTER COLUMN marker_key SET DEFAULT gen_random_uuid()::text;

-- The tables the old release created are the ones it recorded by name.
ALTER TABLE sequin_sf._collections ADD COLUMN table_oid oid;
UPDATE sequin_sf._collections c
   SET table_oid = to_regclass(format('%I.%I', s.schema_name, c.table_name))::oid
  FROM sequin_sf._syncs s
 WHERE s.name = c.sync_name;

-- Object-level access from describe: unknown (NULL, everything allowed as before) until
-- the object's next describe that reports a change.
ALTER TABLE sequin_sf._collections ADD COLUMN createable boolean,
                                   ADD COLUMN updateable boolean,
                                   ADD COLUMN deletable boolean,
                                   ADD COLUMN replicateable boolean;
-- A field whose type changed in Salesforce can leave its column with a note for the
-- operator.
ALTER TABLE sequin_sf._columns ADD COLUMN note text;
CREATE OR REPLACE VIEW sequin_sf.columns AS
SELECT m.sync_name,
       s.schema_name,
       c.table_name,
       m.column_name,
       m.object_name AS collection,
       m.field_name,
       m.sf_type,
       m.pg_type,
       m.compound_of,
       m.createable,
       m.updateable,
       m.calculated,
       m.nillable,
       m.restricted_picklist,
       m.picklist_values,
       m.active,
       m.position,
       m.note
FROM sequin_sf._columns m
JOIN sequin_sf._collections c ON c.sync_name = m.sync_name AND c.object_name = m.object_name
JOIN sequin_sf._syncs s ON s.name = m.sync_name;
-- Calculated fields read again on a schedule (alter_collection).
ALTER TABLE sequin_sf._collections ADD COLUMN calculated_refresh interval,
                                   ADD COLUMN calculated_refreshed_at timestamptz,
                                   ADD COLUMN calculated_cursor text;
-- How each collection's live changes arrive (Change Data Capture events or polling).
ALTER TABLE sequin_sf._collections
    ADD COLUMN change_source text NOT NULL DEFAULT 'polling' CHECK (change_source IN ('polling', 'events')),
    ADD COLUMN change_source_note text;
-- Syncs created before keep leaving base64 fields out; new ones store their paths.
ALTER TABLE sequin_sf._syncs ADD COLUMN base64_fields text NOT NULL DEFAULT 'skip'
    CHECK (base64_fields IN ('url', 'skip'));
ALTER TABLE sequin_sf._syncs ALTER COLUMN base64_fields SET DEFAULT 'url';
-- Change Data Capture (alter_sync change_events, pubsub_endpoint, reconcile_interval):
-- syncs created before subscribe too, as new ones do ('auto' only acts on objects the
-- org selected for CDC).
ALTER TABLE sequin_sf._syncs
    ADD COLUMN change_events text NOT NULL DEFAULT 'auto' CHECK (change_events IN ('auto', 'channel', 'off')),
    ADD COLUMN event_collections text[],
    ADD COLUMN event_channel text,
    ADD COLUMN pubsub_endpoint text,
    ADD COLUMN reconcile_interval interval NOT NULL DEFAULT '1 hour',
    ADD COLUMN replay_id bytea,
    ADD COLUMN events_status text;
-- Channels of dropped syncs still to be deleted in Salesforce (the engine does it).
CREATE TABLE sequin_sf._event_channels_left (
    channel     text PRIMARY KEY,
    credential  text NOT NULL,
    left_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
SELECT pg_catalog.pg_extension_config_dump('sequin_sf._event_channels_left', '');
-- The org's API usage as Salesforce last reported it to the sync (syncs, metrics).
ALTER TABLE sequin_sf._syncs
    ADD COLUMN org_api_used bigint,
    ADD COLUMN org_api_limit bigint,
    ADD COLUMN org_api_seen_at timestamptz;
-- Bulk query jobs per sync and minute, the org's allocations (/limits) as a sync last
-- read them, and why a backfill reads REST pages instead of a Bulk job.
ALTER TABLE sequin_sf._api_usage ADD COLUMN bulk_jobs integer NOT NULL DEFAULT 0,
                                 ADD COLUMN events integer NOT NULL DEFAULT 0,
                                 ADD COLUMN bulk_result_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE sequin_sf._collections ADD COLUMN backfill_note text;
CREATE TABLE sequin_sf._org_limits (
    sync_name  text NOT NULL REFERENCES sequin_sf._syncs(name) ON DELETE CASCADE,
    allocation text NOT NULL,
    max        bigint NOT NULL,
    remaining  bigint NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (sync_name, allocation)
);
-- The org's allocations a sync depends on, as Salesforce's /limits last reported them
-- to the sync (read at most every 15 minutes, and before each Bulk query job), with the
-- share the sync itself used where it counts it. A sync keeps (1 - org_usage_ceiling)
-- of each for the org's other integrations: it does not start a Bulk query job once
-- the jobs or the result storage left are at or below that share, and reads REST pages
-- instead (sync_status.backfill_note says so).
CREATE VIEW sequin_sf.org_limits AS
SELECT l.sync_name,
       l.allocation,
       l.max,
       l.remaining,
       l.max - l.remaining AS used,
       round((l.max - l.remaining)::numeric / nullif(l.max, 0), 4) AS used_share,
       CASE l.allocation
            WHEN 'DailyApiRequests' THEN
                (SELECT coalesce(sum(u.requests), 0) FROM sequin_sf._api_usage u
                  WHERE u.sync_name = l.sync_name AND u.minute > now() - interval '24 hours')
            WHEN 'DailyBulkV2QueryJobs' THEN
                (SELECT coalesce(sum(u.bulk_jobs), 0) FROM sequin_sf._api_usage u
                  WHERE u.sync_name = l.sync_name AND u.minute > now() - interval '24 hours')
            WHEN 'DailyBulkV2QueryFileStorageMB' THEN
                (SELECT ceil(coalesce(sum(u.bulk_result_bytes), 0) / 1048576.0) FROM sequin_sf._api_usage u
                  WHERE u.sync_name = l.sync_name AND u.minute > now() - interval '24 hours')
            WHEN 'DailyDeliveredPlatformEvents' THEN
                (SELECT coalesce(sum(u.events), 0) FROM sequin_sf._api_usage u
                  WHERE u.sync_name = l.sync_name AND u.minute > now() - interval '24 hours')
       END::bigint AS sync_used_24h,
       round((1 - s.org_usage_ceiling)::numeric, 4) AS kept_for_others,
       l.seen_at
FROM sequin_sf._org_limits l
JOIN sequin_sf._syncs s ON s.name = l.sync_name;

CREATE OR REPLACE VIEW sequin_sf.syncs AS
SELECT s.name,
       s.credential,
       s.schema_name,
       s.rate_limit_requests,
       s.rate_limit_interval,
       s.max_concurrent_requests,
       s.org_usage_ceiling,
       s.poll_overlap,
       s.event_retention,
       s.backfill_events,
       s.bulk_threshold,
       CASE WHEN s.paused THEN 'paused'
            WHEN EXISTS (SELECT 1 FROM sequin_sf._collections c
                         WHERE c.sync_name = s.name AND c.state = 'backfilling') THEN 'backfilling'
            ELSE 'live' END AS state,
       ARRAY(SELECT c.object_name FROM sequin_sf._collections c
             WHERE c.sync_name = s.name ORDER BY c.object_name) AS collections,
       (SELECT coalesce(sum(u.requests), 0) FROM sequin_sf._api_usage u
         WHERE u.sync_name = s.name AND u.minute > now() - interval '24 hours')::bigint AS api_requests_24h,
       'sequin_sf_' || s.name AS notify_channel,
       'sequin_sf_' || s.name AS publication,
       s.last_error,
       s.last_error_at,
       s.created_at,
       s.base64_fields,
       s.change_events,
       s.event_collections,
       s.event_channel,
       coalesce(s.pubsub_endpoint, 'https://api.pubsub.salesforce.com:7443') AS pubsub_endpoint,
       s.reconcile_interval,
       s.events_status,
       s.org_api_used AS org_api_requests_used,
       s.org_api_limit AS org_api_requests_limit,
       s.org_api_seen_at AS org_api_usage_at
FROM sequin_sf._syncs s;
-- The read side's retry after an error, for sync_status.behind and behind_since.
ALTER TABLE sequin_sf._syncs
    ADD COLUMN read_retry_since timestamptz,
    ADD COLUMN read_retry_at timestamptz;
CREATE OR REPLACE VIEW sequin_sf.sync_status AS
SELECT c.sync_name,
       c.object_name AS collection,
       s.schema_name || '.' || c.table_name AS table_name,
       CASE WHEN s.paused THEN 'paused' ELSE c.state END AS state,
       c.backfill_mode,
       c.rows_done,
       c.rows_total,
       c.backfill_started_at,
       c.backfill_finished_at,
       c.last_poll_at,
       CASE WHEN c.state = 'live' AND c.caught_up_at IS NOT NULL
            THEN greatest(now() - c.caught_up_at, interval '0') END AS lag,
       (SELECT coalesce(sum(u.requests), 0) FROM sequin_sf._api_usage u
         WHERE u.sync_name = c.sync_name AND u.minute > now() - interval '24 hours')::bigint AS api_requests_24h,
       coalesce(c.last_error, s.last_error) AS last_error,
       CASE WHEN c.last_error IS NOT NULL THEN c.last_error_at ELSE s.last_error_at END AS last_error_at,
       c.calculated_refresh,
       c.calculated_refreshed_at,
       c.change_source,
       c.change_source_note,
       b.behind,
       b.behind_since,
       -- whether the table's changes are being captured: a superuser or the table's
       -- owner can ALTER TABLE ... DISABLE TRIGGER, and changes made meanwhile are never
       -- sent
       (SELECT CASE WHEN c.table_oid IS NULL THEN NULL
                    WHEN count(*) FILTER (WHERE t.tgenabled <> 'D') = 3 THEN 'on'
                    WHEN count(*) = 0 THEN 'off: the table has no capture triggers, so its changes are not sent'
                    ELSE 'off: ' || string_agg(t.tgname, ', ') FILTER (WHERE t.tgenabled = 'D')
                         || ' disabled, so changes are not sent (ALTER TABLE ... ENABLE ALWAYS TRIGGER ...; changes made meanwhile stay unsent)'
               END
          FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid = c.table_oid
           AND t.tgname IN ('_sync_write_insert', '_sync_write_update', '_sync_write_delete')) AS capture,
       c.backfill_note
FROM sequin_sf._collections c
JOIN sequin_sf._syncs s ON s.name = c.sync_name
-- Why the collection's table is not being kept current right now (NULL while it is, or
-- the sync is paused), and since when: no worker of the extension (nor sequin-sf, whose
-- sessions are named for it) holds the session lock every process running a sync holds (a worker being started again after a
-- crash), the read side retries after an error, or the collection's last poll failed.
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.paused THEN NULL
                WHEN NOT r.running THEN 'no worker runs this sync: it is being started again'
                WHEN s.read_retry_at IS NOT NULL THEN 'retrying after an error (see last_error)'
                WHEN c.last_error IS NOT NULL THEN 'its last poll failed (see last_error)'
           END AS behind,
           CASE WHEN s.paused THEN NULL
                -- the last sign of the worker keeping the collection
                WHEN NOT r.running THEN greatest(c.caught_up_at, c.last_poll_at, c.backfill_started_at)
                WHEN s.read_retry_at IS NOT NULL THEN s.read_retry_since
                WHEN c.last_error IS NOT NULL THEN coalesce(c.caught_up_at, c.last_error_at)
           END AS behind_since
    FROM (SELECT EXISTS (
              SELECT 1 FROM pg_catalog.pg_locks l
                JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted
                 AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                    WHERE d.datname = pg_catalog.current_database())
                 AND l.classid = pg_catalog.hashtext('sequin_sf sync')::oid
                 AND l.objid = pg_catalog.hashtext(s.name)::oid
                 AND l.objsubid = 2
                 AND (a.backend_type IN ('sequin_sf sync', 'sequin_sf')
                      OR a.application_name = 'sequin-sf')) AS running) r
) b;
-- functions (drafted)

-- A Bulk query job the sync created (DailyBulkV2QueryJobs, sequin_sf.org_limits).
CREATE OR REPLACE FUNCTION sequin_sf._record_bulk_job(sync text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._api_usage AS u (sync_name, minute, requests, bulk_jobs)
    VALUES (sync, date_trunc('minute', now()), 0, 1)
    ON CONFLICT (sync_name, minute) DO UPDATE SET bulk_jobs = u.bulk_jobs + 1;
$$;

-- Bytes of Bulk query results the sync downloaded (DailyBulkV2QueryFileStorageMB,
-- sequin_sf.org_limits).
CREATE FUNCTION sequin_sf._record_bulk_results(sync text, bytes bigint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._api_usage AS u (sync_name, minute, requests, bulk_result_bytes)
    VALUES (sync, date_trunc('minute', now()), 0, bytes)
    ON CONFLICT (sync_name, minute) DO UPDATE SET bulk_result_bytes = u.bulk_result_bytes + excluded.bulk_result_bytes;
$$;

-- Change events the sync's stream delivered (DailyDeliveredPlatformEvents).
CREATE OR REPLACE FUNCTION sequin_sf._record_event_deliveries(sync text, n integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._api_usage AS u (sync_name, minute, requests, events)
    VALUES (sync, date_trunc('minute', now()), 0, n)
    ON CONFLICT (sync_name, minute) DO UPDATE SET events = u.events + excluded.events;
$$;

-- The allocations of /limits a sync watches ({name: {"Max": n, "Remaining": n}}).
CREATE OR REPLACE FUNCTION sequin_sf._record_org_limits(sync text, limits jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._org_limits AS o (sync_name, allocation, max, remaining, seen_at)
    SELECT sync, e.key, (e.value ->> 'Max')::bigint, (e.value ->> 'Remaining')::bigint, now()
      FROM jsonb_each(limits) e
     WHERE jsonb_typeof(e.value -> 'Max') = 'number'
       AND jsonb_typeof(e.value -> 'Remaining') = 'number'
    ON CONFLICT (sync_name, allocation) DO UPDATE
       SET max = excluded.max, remaining = excluded.remaining, seen_at = excluded.seen_at;
$$;

-- Why a backfill reads REST pages instead of a Bulk job (NULL: no reason to tell).
CREATE OR REPLACE FUNCTION sequin_sf._set_backfill_note(sync text, object text, note text)
RETURNS void LANGUAGE sql AS $$
    UPDATE sequin_sf._collections SET backfill_note = note
     WHERE sync_name = sync AND object_name = object;
$$;

CREATE OR REPLACE FUNCTION sequin_sf._record_org_usage(sync text, used bigint, api_limit bigint)
RETURNS void LANGUAGE sql AS $$
    UPDATE sequin_sf._syncs
       SET org_api_used = used, org_api_limit = api_limit, org_api_seen_at = now()
     WHERE name = sync;
$$;
DROP FUNCTION IF EXISTS sequin_sf._install_write_triggers(regclass, text, jsonb, jsonb, jsonb, text[]);
DROP FUNCTION IF EXISTS sequin_sf._seal_secrets(text, text, text, text);
DROP FUNCTION IF EXISTS sequin_sf._sync_schema(text);
DROP FUNCTION IF EXISTS sequin_sf.alter_sync(text, interval, interval, interval, interval, real, bigint, boolean, int, interval, int);
DROP FUNCTION IF EXISTS sequin_sf.create_credential(text, text, text, text, text, text, text, text, text);
DROP FUNCTION IF EXISTS sequin_sf.create_sync(text, text, text[], text, int, interval, int, boolean, bigint);
CREATE OR REPLACE FUNCTION sequin_sf._write_backlog(p_schema text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs;
    w sequin_sf.write_settings;
    ready_n bigint;
    oldest float8;
BEGIN
    SELECT * INTO s FROM sequin_sf._syncs WHERE schema_name = p_schema;
    IF NOT FOUND OR to_regclass(format('%I._sync_write_log', p_schema)) IS NULL THEN
        RETURN NULL;
    END IF;
    w := sequin_sf._write_settings_of(p_schema);
    PERFORM sequin_sf._write_expand_batches(p_schema);
    EXECUTE format('SELECT count(*), coalesce(extract(epoch FROM now() - min(inserted_at)), 0)'
                   '  FROM (SELECT inserted_at FROM %I._sync_write_log'
                   '         WHERE state IN (''new'', ''pending'')'
                   '           AND (next_attempt_at IS NULL OR next_attempt_at <= now())'
                   '         ORDER BY id LIMIT $1) r', p_schema)
      INTO ready_n, oldest USING w.batch_size;
    RETURN jsonb_build_object(
        'settings', jsonb_build_object(
            'batch_size', w.batch_size,
            'max_batch_wait_secs', extract(epoch FROM w.max_batch_wait),
            'conflict_detection', w.conflict_detection,
            'external_id_fields', w.external_id_fields,
            'retention_secs', extract(epoch FROM w.write_log_retention),
            -- unique to this cluster, database, schema and sync (a sync created again
            -- in the same schema has a new key): external id markers of creates never
            -- collide with another sync's, nor with a dropped one's
            'marker_seed', left(md5((SELECT system_identifier::text FROM pg_control_system())
                                    || current_database() || p_schema || s.marker_key), 10)),
        'ready', ready_n,
        'oldest_wait_secs', oldest);
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_expand_batches(p_schema text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(format('%I._sync_write_batch', p_schema)) IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format($q$
        WITH b AS (DELETE FROM %1$I._sync_write_batch RETURNING *)
        INSERT INTO %1$I._sync_write_log
               (id, table_name, object_name, row_id, action, api_id, previous, "values",
                session_pid, inserted_at, state, api_message, settled_at)
        OVERRIDING SYSTEM VALUE
        SELECT e.id, b.table_name, b.object_name, e.row_id, b.action, e.api_id,
               CASE WHEN e.unreadable THEN NULL ELSE e.kept::jsonb END,
               e."values", b.session_pid, b.inserted_at,
               CASE WHEN e.unreadable THEN 'failed' ELSE 'new' END,
               CASE WHEN e.unreadable THEN substr(e.kept, 2) END,
               CASE WHEN e.unreadable THEN now() END
          FROM b, LATERAL (
                 SELECT u.*, left(u.kept, 1) = '!' AS unreadable
                   FROM unnest(b.ids, b.row_ids, b.api_ids,
                               sequin_sf._batch_rows_json(b.row_type::text, b.previous_rows),
                               b."values")
                        AS u(id, row_id, api_id, kept, "values")) e
         ORDER BY e.id
        $q$, p_schema);
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_queue(p_schema text, p_limit integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    sync text;
    conflicts boolean;
    entries jsonb;
BEGIN
    SELECT name INTO sync FROM sequin_sf._syncs WHERE schema_name = p_schema;
    IF sync IS NULL OR to_regclass(format('%I._sync_write_log', p_schema)) IS NULL THEN
        RETURN '[]'::jsonb;
    END IF;
    conflicts := (sequin_sf._write_settings_of(p_schema)).conflict_detection;
    -- The worker calls this in a REPEATABLE READ transaction (queue.rs): unpacking the
    -- batches, filling the inserts and reading the entries all see the same commits. So
    -- a row's earlier changes, batched or not, are in the log whenever its later ones
    -- are, and an insert whose row is gone has its delete read with it.
    PERFORM sequin_sf._write_expand_batches(p_schema);
    PERFORM sequin_sf._write_fill_inserts(p_schema, sync);
    EXECUTE format($q$
        SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.log_id), '[]'::jsonb) FROM (
          SELECT l.id AS log_id, l.row_id, l.table_name, l.object_name AS object, l.action,
                 l.api_id, l.state, l.api_result, l.api_message,
                 (SELECT coalesce(jsonb_object_agg(m.field_name, v.value), '{}'::jsonb)
                    FROM jsonb_each(l."values") v
                    JOIN sequin_sf._columns m
                      ON m.sync_name = $1 AND m.object_name = l.object_name
                     AND m.column_name = v.key) AS fields,
                 -- unchanged since the row last synced, or since our own last write
                 -- to the record succeeded (its new stamp has not been polled yet)
                 CASE WHEN $3 AND l.action = 'update' THEN
                     greatest((l.previous ->> 'system_modstamp')::timestamptz, w.last_ok)
                 END AS unmodified_since,
                 -- An insert's values are filled from its row by the statement before
                 -- this one. Under the worker's REPEATABLE READ both see the same
                 -- inserts; called in READ COMMITTED, an insert committed in between
                 -- is seen here unfilled and waits for the next round, never sent empty.
                 ((l.next_attempt_at IS NULL OR l.next_attempt_at <= now())
                  AND NOT (l.action = 'insert' AND l."values" IS NULL)) AS ready
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
      USING sync, p_limit, conflicts;
    RETURN entries;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_fill_inserts(p_schema text, p_sync text) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._write_claim(p_schema text, p_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- the claim must be on disk before the request leaves, whatever the server's
    -- synchronous_commit: a lost claim would let a create be sent twice
    PERFORM set_config('synchronous_commit', 'on', true);
    -- api_result goes: a pending entry's recorded answer is the one to this request
    -- (the writer settles a pending entry that has one from it, split_answered)
    EXECUTE format('UPDATE %I._sync_write_log SET state = ''pending'', claimed_at = now(),'
                   ' api_result = NULL, attempts = attempts + 1 WHERE id = ANY($1)', p_schema)
      USING p_ids;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_record_created(p_schema text, p_created jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- as durable as the claim: a lost record of a create would make it "unknown"
    PERFORM set_config('synchronous_commit', 'on', true);
    EXECUTE format($q$
        UPDATE %I._sync_write_log l SET api_id = c.api_id, api_result = c.status
          FROM (SELECT x ->> 'api_id' AS api_id, (x ->> 'status')::int AS status,
                       jsonb_array_elements_text(x -> 'log_ids')::bigint AS log_id
                  FROM jsonb_array_elements($1) x) c
         WHERE l.id = c.log_id AND l.state = 'pending' AND l.action = 'insert'
        $q$, p_schema)
      USING p_created;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_settle(p_schema text, p_outcomes jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    ids bigint[];
    tbl text;
    row_id bigint;
    api text;
    other bigint;
    created jsonb := '[]';
BEGIN
    PERFORM set_config('sequin_sf.applying', 'on', true);
    -- a lost settlement would turn a known answer (and a created record's Id) into an
    -- unknown one after a crash
    PERFORM set_config('synchronous_commit', 'on', true);
    -- Rows are brought in line one by one; an application statement changing many of
    -- them at once can lock them in another order. Of two transactions waiting on each
    -- other, the one whose deadlock_timeout runs out first is cancelled: let it be this
    -- one's row change (a subtransaction, below), which yields as it does on a lock
    -- timeout, not the application's statement.
    BEGIN
        PERFORM set_config('deadlock_timeout', '100ms', true);
    EXCEPTION WHEN insufficient_privilege THEN
        -- a role that is no superuser (sequin-sf beside the database) keeps the server's
        -- deadlock_timeout: the lock_timeout below still gives the row up within 500 ms
        NULL;
    END;
    -- A row an application holds is settled again later (below), so waiting long for it
    -- gains nothing, and every row of a long application transaction would cost the
    -- whole wait: after the first row given up, the others are not waited for at all.
    PERFORM set_config('lock_timeout', '500ms', true);
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
                    ELSIF (o ->> 'status')::int = 201 THEN
                        -- the record is new: the other row is the copy a poll made of it
                        -- while this row, held by an application, could not take its Id
                        PERFORM sequin_sf._write_take_in_copy(p_schema, tbl, row_id, other, api);
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
            IF SQLSTATE IN ('55P03', '40P01') THEN
                -- The row is held by an application's transaction (lock_timeout or
                -- deadlock): what Salesforce answered must still reach it (a created
                -- record's Id, a refused change undone), so the entries stay pending
                -- with the answer recorded above, and a later round settles them again
                -- (the writer's split_answered), every 3 s until the row is free.
                EXECUTE format('UPDATE %I._sync_write_log SET state = ''pending'', settled_at = NULL,'
                               ' next_attempt_at = now() + interval ''3 seconds'' WHERE id = ANY($1)',
                               p_schema) USING ids;
                PERFORM set_config('lock_timeout', '10ms', true);
                CONTINUE;
            ELSE
                PERFORM sequin_sf._write_out_of_sync(p_schema, tbl, row_id, ids, SQLERRM);
            END IF;
        END;
        IF o ->> 'outcome' = 'succeeded' AND o ->> 'action' = 'insert' AND api IS NOT NULL THEN
            created := created || jsonb_build_object('table_name', tbl, 'row_id', row_id,
                                                     'api_id', api);
        END IF;
    END LOOP;
    -- after the rows were brought in line above (see _write_pass_on_ids)
    PERFORM sequin_sf._write_pass_on_ids(p_schema, created);
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_take_in_copy(p_schema text, p_table text, p_row bigint,
                                              p_copy bigint, p_api_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    copy jsonb;
    sets text;
BEGIN
    EXECUTE format('DELETE FROM %1$I.%2$I c WHERE _row_id = $1 RETURNING to_jsonb(c)',
                   p_schema, p_table)
      INTO copy USING p_copy;
    SELECT string_agg(format('%1$I = coalesce(t.%1$I, c.%1$I)', a.attname), ', ') INTO sets
      FROM pg_attribute a
     WHERE a.attrelid = format('%I.%I', p_schema, p_table)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attgenerated = '' AND a.attname NOT IN ('_row_id', 'id', '_write_state');
    EXECUTE format('UPDATE %1$I.%2$I t SET id = $1, _write_state = NULL, %3$s'
                   ' FROM jsonb_populate_record(NULL::%1$I.%2$I, $2) c WHERE t._row_id = $3',
                   p_schema, p_table, sets)
      USING p_api_id, copy, p_row;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_out_of_sync(p_schema text, p_table text, p_row bigint,
                                             p_ids bigint[], p_error text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %I._sync_write_log SET api_message = concat_ws(''; '', api_message, $2)'
                   ' WHERE id = ANY($1)', p_schema)
      USING p_ids, format('row _row_id=%s of %s.%s could not be updated to match: %s',
                          p_row, p_schema, p_table, p_error);
    BEGIN
        EXECUTE format('UPDATE %I.%I SET _write_state = ''out_of_sync'' WHERE _row_id = $1',
                       p_schema, p_table) USING p_row;
    EXCEPTION WHEN OTHERS THEN
        NULL;  -- the message above already says what is wrong
    END;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_pass_on_ids(p_schema text, p_created jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_array_length(p_created) = 0 THEN
        RETURN;
    END IF;
    PERFORM sequin_sf._write_expand_batches(p_schema);
    EXECUTE format($q$
        UPDATE %I._sync_write_log l SET api_id = c.api_id
          FROM jsonb_to_recordset($1) AS c(table_name text, row_id bigint, api_id text)
         WHERE l.row_id = c.row_id AND l.table_name = c.table_name AND l.api_id IS NULL
           AND l.state IN ('new', 'pending')
        $q$, p_schema)
      USING p_created;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._write_restore_update(p_schema text, p_table text, p_row bigint,
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

CREATE OR REPLACE FUNCTION sequin_sf._set_object_access(p_sync text, p_object text, p_createable boolean,
                                             p_updateable boolean, p_deletable boolean,
                                             p_replicateable boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    UPDATE sequin_sf._collections c
       SET createable = p_createable, updateable = p_updateable, deletable = p_deletable,
           replicateable = p_replicateable
      FROM sequin_sf._syncs s
     WHERE s.name = c.sync_name AND c.sync_name = p_sync AND c.object_name = p_object
       AND (c.createable, c.updateable, c.deletable, c.replicateable)
           IS DISTINCT FROM (p_createable, p_updateable, p_deletable, p_replicateable)
    RETURNING s.schema_name, c.table_name INTO t;
    IF FOUND AND to_regclass(format('%I.%I', t.schema_name, t.table_name)) IS NOT NULL THEN
        PERFORM sequin_sf._install_capture(t.schema_name, t.table_name);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._refuse_write(
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

CREATE OR REPLACE FUNCTION sequin_sf._revoke_grants(p_rel regclass) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._install_write_log(p_schema text) RETURNS void
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

-- The trigger function of a table's capture of one operation, as the clause CREATE
-- TRIGGER ... EXECUTE FUNCTION takes: the C capture (src/capture/), given the object,
-- the operation's rules and the columns sent as arguments. Beside the database
-- sql/plain/library.sql defines it instead, generating a PL/pgSQL function per table.
CREATE OR REPLACE FUNCTION sequin_sf._capture_function(
    p_table regclass, p_op text, p_object text, p_rules jsonb, p_picklists jsonb, p_sent text[]
) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('sequin_sf._capture_writes(%L, %L, %L%s)', p_object, p_rules, p_picklists,
                  (SELECT coalesce(string_agg(format(', %L', c), ''), '')
                     FROM unnest(p_sent) c WHERE c <> '_row_id'))
$$;

CREATE OR REPLACE FUNCTION sequin_sf._install_write_triggers(
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

CREATE OR REPLACE FUNCTION sequin_sf._refuse_object_write() RETURNS trigger
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

CREATE OR REPLACE FUNCTION sequin_sf._remove_write_triggers(p_table regclass) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._install_capture(p_schema text, p_table text) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._readonly_reason(m sequin_sf._columns, p_op text) RETURNS text
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

CREATE OR REPLACE FUNCTION sequin_sf._batch_rows_json(
	"row_type" TEXT, /* & str */
	"rows" bytea[] /* Array < & [u8] > */
) RETURNS TEXT[] /* Vec < Option < String > > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_batch_rows_json_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._describe_fields(
	"credential" TEXT, /* & str */
	"object" TEXT /* & str */
) RETURNS TABLE (
	"name" TEXT,  /* String */
	"external_id" bool  /* bool */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_describe_fields_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._captured_in_transaction() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_captured_in_transaction_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._max_collection_records() RETURNS INT /* i32 */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_max_collection_records_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._seal_credential_secrets(
	"credential" TEXT, /* & str */
	"client_secret" TEXT, /* Option < & str > */
	"refresh_token" TEXT, /* Option < & str > */
	"password" TEXT, /* Option < & str > */
	"private_key" TEXT /* Option < & str > */
) RETURNS bytea /* Vec < u8 > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_seal_credential_secrets_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._capture_writes()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_capture_writes_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._capture_statement_starts()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_capture_statement_starts_wrapper';

CREATE OR REPLACE FUNCTION sequin_sf._read_secrets_file(path text) RETURNS jsonb LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION sequin_sf._secret_from(arg text, doc jsonb, key text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF doc ? key AND arg IS NOT NULL THEN
        RAISE EXCEPTION '% is given both as an argument and in secrets_file', key
            USING ERRCODE = 'invalid_parameter_value', HINT = 'give each secret once';
    END IF;
    RETURN coalesce(arg, doc ->> key);
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._store_credential(
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

CREATE OR REPLACE FUNCTION sequin_sf.create_credential(
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

CREATE OR REPLACE FUNCTION sequin_sf._check_sync(sync text) RETURNS sequin_sf._syncs LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION sequin_sf._refuse_taken_name(target_schema text, target_table text)
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

CREATE OR REPLACE FUNCTION sequin_sf._create_sync_objects(sync text, target_schema text)
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

CREATE OR REPLACE FUNCTION sequin_sf._publish_tables(target_schema text) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._check_sync_schema(target_schema text) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._check_sync_settings(
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

CREATE OR REPLACE FUNCTION sequin_sf._check_change_events(change_events text, pubsub_endpoint text,
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

CREATE OR REPLACE FUNCTION sequin_sf._check_interval(setting text, value interval, low interval,
                                          high interval, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NOT NULL AND (value < low OR value > high) THEN
        RAISE EXCEPTION '% must be between % and %, got %', setting, low, high, value
            USING ERRCODE = 'invalid_parameter_value', HINT = what;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._add_collections(sync text, objects text[]) RETURNS void LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION sequin_sf.create_sync(
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

CREATE OR REPLACE FUNCTION sequin_sf._event_collections_of(sync text, names text[]) RETURNS text[]
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

CREATE OR REPLACE FUNCTION sequin_sf._leave_event_channel(s sequin_sf._syncs) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf.alter_sync(
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

CREATE OR REPLACE FUNCTION sequin_sf._check_collection(sync text, collection text)
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

CREATE OR REPLACE FUNCTION sequin_sf.alter_collection(sync text, collection text, calculated_refresh interval)
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

CREATE OR REPLACE FUNCTION sequin_sf.refresh_calculated(sync text, collection text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c sequin_sf._collections := sequin_sf._check_collection(sync, collection);
BEGIN
    UPDATE sequin_sf._collections x SET calculated_cursor = coalesce(x.calculated_cursor, '')
     WHERE x.sync_name = c.sync_name AND x.object_name = c.object_name;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf.remove_collection(sync text, collection text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s sequin_sf._syncs := sequin_sf._check_sync(sync);
    c sequin_sf._collections := sequin_sf._check_collection(sync, collection);
BEGIN
    PERFORM sequin_sf._drop_collection_table(s.schema_name, c);
    DELETE FROM sequin_sf._collections x WHERE x.sync_name = sync AND x.object_name = c.object_name;
END
$$;

CREATE OR REPLACE FUNCTION sequin_sf._drop_collection_table(target_schema text, c sequin_sf._collections)
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

CREATE OR REPLACE FUNCTION sequin_sf.drop_sync(name text) RETURNS void LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION sequin_sf._write_settings_of(p_schema text) RETURNS sequin_sf.write_settings
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

CREATE OR REPLACE FUNCTION sequin_sf._check_external_id_fields(p_sync text, p_fields jsonb) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf.alter_write_settings(
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

CREATE OR REPLACE FUNCTION sequin_sf.retry_writes(sync_name text DEFAULT NULL, ids bigint[] DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION sequin_sf.await_writes(timeout interval DEFAULT '60 seconds',
                                       sync_name text DEFAULT NULL)
RETURNS TABLE (succeeded bigint, failed bigint, unsettled bigint)
LANGUAGE sql AS $$
    SELECT * FROM sequin_sf._await_writes(
        timeout, sync_name,
        (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()))
$$;

CREATE OR REPLACE FUNCTION sequin_sf._await_writes(timeout interval, sync_name text, started timestamptz)
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

CREATE OR REPLACE FUNCTION sequin_sf.write_status()
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

CREATE OR REPLACE FUNCTION sequin_sf._management_functions() RETURNS regprocedure[]
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

CREATE OR REPLACE FUNCTION sequin_sf.grant_management(role_name name) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf.revoke_management(role_name name) RETURNS void
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

CREATE OR REPLACE FUNCTION sequin_sf._apply_privileges() RETURNS void
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

-- redone (by hand)

-- write_settings: the batch size's bound and default come from the Rust constant
-- (the function above), as in a fresh install.
ALTER TABLE sequin_sf.write_settings DROP CONSTRAINT write_settings_batch_size_check;
ALTER TABLE sequin_sf.write_settings
    ADD CONSTRAINT write_settings_batch_size_check
    CHECK (batch_size BETWEEN 1 AND sequin_sf._max_collection_records());
ALTER TABLE sequin_sf.write_settings
    ALTER COLUMN batch_size SET DEFAULT sequin_sf._max_collection_records();

COMMENT ON FUNCTION sequin_sf.grant_management(name) IS
    'Lets a role create and manage credentials and syncs (the management functions) and read the full status views. Superusers only.';

-- Capture is now sequin_sf._capture_writes for every table: the per-table trigger
-- functions the old release generated go once no trigger uses them.
DO $redo$
DECLARE
    t record;
    f text;
BEGIN
    FOR t IN SELECT s.schema_name, c.table_name
               FROM sequin_sf._collections c JOIN sequin_sf._syncs s ON s.name = c.sync_name
              WHERE c.table_oid IS NOT NULL LOOP
        PERFORM sequin_sf._install_capture(t.schema_name, t.table_name);
    END LOOP;
    FOR f IN SELECT p.oid::regprocedure::text
               FROM pg_proc p JOIN sequin_sf._syncs s ON p.pronamespace = to_regnamespace(s.schema_name)
              WHERE p.proname LIKE '\_sync\_capture\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgfoid = p.oid) LOOP
        EXECUTE 'DROP FUNCTION ' || f;
    END LOOP;
    -- every write log gets its table of batches (a sync without tables has a log too)
    FOR t IN SELECT s.schema_name FROM sequin_sf._syncs s
              WHERE to_regclass(format('%I._sync_write_log', s.schema_name)) IS NOT NULL LOOP
        PERFORM sequin_sf._install_write_log(t.schema_name);
    END LOOP;
END
$redo$;

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

CREATE EVENT TRIGGER sequin_sf_refuse_inheritance ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION sequin_sf._refuse_inheritance();

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

SELECT sequin_sf._apply_privileges();
