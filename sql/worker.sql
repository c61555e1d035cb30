-- Functions only the background worker calls (through SPI, each in a short
-- transaction of its own): the write path's queue, claim, record, settle and restore,
-- and the read path's housekeeping (event pruning, API usage). Nothing here is granted
-- to anyone; the worker runs as a superuser.

-- Removes events older than the sync's retention; returns how many went.
CREATE FUNCTION sequin_sf._prune_events(target_schema text, retention interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('DELETE FROM %I._sync_events WHERE inserted_at < now() - $1', target_schema)
        USING retention;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Adds this minute's API requests of a sync and drops figures older than two days.
CREATE FUNCTION sequin_sf._record_api_usage(sync text, n integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._api_usage AS u (sync_name, minute, requests)
    VALUES (sync, date_trunc('minute', now()), n)
    ON CONFLICT (sync_name, minute) DO UPDATE SET requests = u.requests + excluded.requests;
    DELETE FROM sequin_sf._api_usage WHERE minute < now() - interval '48 hours';
$$;

-- A Bulk query job the sync created (DailyBulkV2QueryJobs, sequin_sf.org_limits).
CREATE FUNCTION sequin_sf._record_bulk_job(sync text)
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

-- Change events the sync's stream delivered (the org's daily event delivery
-- allocation, DailyDeliveredPlatformEvents in sequin_sf.org_limits), counted in the
-- transaction that applied them.
CREATE FUNCTION sequin_sf._record_event_deliveries(sync text, n integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO sequin_sf._api_usage AS u (sync_name, minute, requests, events)
    VALUES (sync, date_trunc('minute', now()), 0, n)
    ON CONFLICT (sync_name, minute) DO UPDATE SET events = u.events + excluded.events;
$$;

-- The allocations of /limits a sync watches ({name: {"Max": n, "Remaining": n}}).
CREATE FUNCTION sequin_sf._record_org_limits(sync text, limits jsonb)
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
CREATE FUNCTION sequin_sf._set_backfill_note(sync text, object text, note text)
RETURNS void LANGUAGE sql AS $$
    UPDATE sequin_sf._collections SET backfill_note = note
     WHERE sync_name = sync AND object_name = object;
$$;

-- The org's API usage as the last response Salesforce gave the sync reported it.
CREATE FUNCTION sequin_sf._record_org_usage(sync text, used bigint, api_limit bigint)
RETURNS void LANGUAGE sql AS $$
    UPDATE sequin_sf._syncs
       SET org_api_used = used, org_api_limit = api_limit, org_api_seen_at = now()
     WHERE name = sync;
$$;

-- What the writer decides on: the sync's write settings and how much of its log is
-- due, cheaply (the worker asks several times a second). The decision itself (send
-- now, or wait for the batch to fill) is sync-core's ready_to_send. NULL when the
-- schema has no sync or no write log yet.
--   {"settings": {batch_size, max_batch_wait_secs, conflict_detection,
--                 external_id_fields, retention_secs, marker_seed},
--    "ready": n, "oldest_wait_secs": s}
CREATE FUNCTION sequin_sf._write_backlog(p_schema text) RETURNS jsonb
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

-- Unpacks the batches capture wrote for statements that changed many rows into the
-- log's own rows, with the log ids capture gave them (sql/capture.sql). Only the sync's
-- worker calls it, before it counts the log (_write_backlog) and reads it (_write_queue).
-- A kept row before that cannot be read safely ('!' and the reason, from
-- _batch_rows_json) makes its entry failed with that reason: nothing is sent for it.
CREATE FUNCTION sequin_sf._write_expand_batches(p_schema text) RETURNS void
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

-- Up to p_limit unsettled entries in log order, values keyed by Salesforce field names
-- (queued inserts filled from their rows first):
--   [{log_id, row_id, table_name, object, action, api_id, state, fields,
--     unmodified_since, ready}]
CREATE FUNCTION sequin_sf._write_queue(p_schema text, p_limit integer) RETURNS jsonb
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
    -- api_result goes: a pending entry's recorded answer is the one to this request
    -- (the writer settles a pending entry that has one from it, split_answered)
    EXECUTE format('UPDATE %I._sync_write_log SET state = ''pending'', claimed_at = now(),'
                   ' api_result = NULL, attempts = attempts + 1 WHERE id = ANY($1)', p_schema)
      USING p_ids;
END
$$;

-- Records the Ids of created records on their entries, which stay pending until they
-- are settled: a pending insert with an Id is known to have succeeded (see the writer's
-- split_answered). p_created: [{"log_ids": [..], "api_id": "...", "status": n}]
-- (201 created, 200 an upsert matched an existing record).
CREATE FUNCTION sequin_sf._write_record_created(p_schema text, p_created jsonb) RETURNS void
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

-- A created record's row (p_row) takes its Id when a poll has already made a copy of the
-- record (p_copy) in the meantime: the copy goes, and the row keeps its _row_id and the
-- values it holds (sent, or queued to be), taking from the copy what only Salesforce
-- sets (its stamps, defaults, calculated fields: the columns the row has NULL in).
CREATE FUNCTION sequin_sf._write_take_in_copy(p_schema text, p_table text, p_row bigint,
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

-- A row that cannot be brought in line with Salesforce's answer to its entries (p_ids):
-- the entries say why and the row is marked out_of_sync (when even that is possible).
CREATE FUNCTION sequin_sf._write_out_of_sync(p_schema text, p_table text, p_row bigint,
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

-- After creates succeeded: gives each created record's Id to its row's later entries,
-- captured while the row had none. p_created: [{"table_name", "row_id", "api_id"}].
-- Called after the rows themselves got their Ids (or were deleted): those statements
-- waited for every application transaction changing the rows, so the statements here
-- see all their entries (the batched ones once unpacked), and any later change captures
-- the Id itself. A row that could not be locked keeps its insert pending, and its later
-- entries wait for the round that settles it (the writer's split_answered).
CREATE FUNCTION sequin_sf._write_pass_on_ids(p_schema text, p_created jsonb) RETURNS void
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

-- Records what Salesforce lets the API do with a collection's object (from a describe)
-- and, when that changed, reinstalls the table's capture so it refuses what it may not.
CREATE FUNCTION sequin_sf._set_object_access(p_sync text, p_object text, p_createable boolean,
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
