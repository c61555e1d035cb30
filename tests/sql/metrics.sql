-- sequin_sf.metrics and metrics_text() without a worker: syncs, collections, API usage,
-- write log entries and events set up by hand, then the metrics they give, the text
-- format (a collection name that needs escaping) and who may read them.
\set VERBOSITY terse
SET client_min_messages = warning;
INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, secret)
VALUES ('c', 'refresh_token', 'https://login.example.com', 'id', '\x00');
INSERT INTO sequin_sf._syncs (name, credential, schema_name, rate_limit_requests,
                              rate_limit_interval, max_concurrent_requests)
VALUES ('m', 'c', 'ms', 100, '1 day', 1);
INSERT INTO sequin_sf._syncs (name, credential, schema_name, rate_limit_requests,
                              rate_limit_interval, max_concurrent_requests, paused)
VALUES ('p', 'c', 'ps', 100, '1 day', 1, true);
CREATE SCHEMA ms;
SELECT sequin_sf._create_sync_objects('m', 'ms');
-- a live collection caught up 90 s ago, one backfilling, and one whose name needs
-- escaping in the text format (backslash, double quote, newline)
INSERT INTO sequin_sf._collections (sync_name, object_name, table_name, state, caught_up_at,
                                    rows_done, rows_total)
VALUES ('m', 'Contact', 'contact', 'live', now() - interval '90 seconds', 4, 4),
       ('m', 'Account', 'account', 'backfilling', NULL, 200, 1000),
       ('m', E'Odd"Obj\\x\ny', 'odd', 'live', NULL, 0, NULL),
       ('p', 'Lead', 'lead', 'live', now() - interval '1 hour', 7, 7);
INSERT INTO sequin_sf._columns (sync_name, object_name, field_name, column_name, sf_type,
                                pg_type, createable, updateable, calculated,
                                restricted_picklist, picklist_values, position)
VALUES ('m', 'Contact', 'Id', 'id', 'id', 'text', false, false, false, false, NULL, 0),
       ('m', 'Contact', 'LastName', 'last_name', 'string', 'text', true, true, false, false, NULL, 1);
CREATE TABLE ms.contact (
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text UNIQUE, last_name text, _write_state text);
SELECT sequin_sf._install_capture('ms', 'contact');
UPDATE sequin_sf._collections SET table_oid = 'ms.contact'::regclass
 WHERE sync_name = 'm' AND object_name = 'Contact';
-- API usage: two minutes of the last 24 hours count, one of 30 hours ago does not
INSERT INTO sequin_sf._api_usage (sync_name, minute, requests)
VALUES ('m', date_trunc('minute', now()) - interval '1 hour', 10),
       ('m', date_trunc('minute', now()) - interval '2 hours', 20),
       ('m', date_trunc('minute', now()) - interval '30 hours', 1000);
-- rows the worker wrote (not captured), then an application's changes: 4 log entries
-- and a statement of more than 100 rows, whose entries wait in a batch
BEGIN;
SET LOCAL sequin_sf.applying = on;
INSERT INTO ms.contact (id, last_name)
SELECT '003' || lpad(g::text, 15, '0'), 'Synced ' || g FROM generate_series(1, 4) g;
COMMIT;
UPDATE ms.contact SET last_name = 'Changed ' || _row_id WHERE _row_id <= 4;
INSERT INTO ms.contact (last_name) SELECT 'Many ' || g FROM generate_series(1, 101) g;
SELECT (SELECT count(*) FROM ms._sync_write_log) AS log_entries,
       (SELECT sum(cardinality(ids)) FROM ms._sync_write_batch) AS batched_entries;
-- as if the writer had settled two, failed one and claimed one, the oldest unsettled
-- one queued 5 minutes ago
UPDATE ms._sync_write_log SET state = 'succeeded', settled_at = now() WHERE id IN (1, 2);
UPDATE ms._sync_write_log SET state = 'failed', settled_at = now(),
       api_message = 'FIELD_CUSTOM_VALIDATION_EXCEPTION: secret words' WHERE id = 3;
UPDATE ms._sync_write_log SET state = 'pending', claimed_at = now(),
       inserted_at = now() - interval '5 minutes' WHERE id = 4;
INSERT INTO ms._sync_events (collection_id, upstream_id, event, data)
VALUES ('Contact', '003000000000000001', 'updated', '{}'), ('Contact', '003000000000000002', 'deleted', NULL);

-- every metric: times since now() in minutes, statistics' row estimates as a check
-- (a paused sync's lag keeps growing, as in sync_status)
SELECT m.name, m.labels,
       CASE WHEN m.name IN ('sequin_sf_lag_seconds', 'sequin_sf_write_oldest_queued_seconds')
                 THEN round(m.value / 60) || ' min'
            WHEN m.name = 'sequin_sf_rows' THEN (m.value >= 0)::text
            ELSE m.value::text END AS value,
       m.type
  FROM sequin_sf.metrics m ORDER BY m.name, m.labels::text;
-- one help text and type per metric name, names as Prometheus allows them
SELECT m.name, count(DISTINCT m.help) AS helps, min(m.type) AS type,
       bool_and(m.name ~ '^[a-zA-Z_:][a-zA-Z0-9_:]*$') AS valid_name
  FROM sequin_sf.metrics m GROUP BY m.name ORDER BY m.name;

-- the text format, the values that move with time masked
SELECT regexp_replace(sequin_sf.metrics_text(),
                      '^(sequin_sf_(lag_seconds|write_oldest_queued_seconds|rows)\{[^\n]*) [0-9.e+]+$',
                      '\1 <masked>', 'gn') AS metrics_text;
-- PUBLIC reads the metrics (as the owner counts them: the same rows), never the log
CREATE ROLE metrics_reader LOGIN;
SET ROLE metrics_reader;
SELECT count(*) AS rows_seen FROM sequin_sf.metrics;
SELECT length(sequin_sf.metrics_text()) > 0 AS text_readable;
SELECT count(*) FROM ms._sync_write_log;
SELECT count(*) FROM sequin_sf._api_usage;
SELECT position('secret' IN sequin_sf.metrics_text()) AS error_text_shown;
RESET ROLE;
SELECT count(*) AS rows_seen_by_owner FROM sequin_sf.metrics;
-- the definer function pins its search path, and so does the text function
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p WHERE p.oid IN ('sequin_sf._metrics()'::regprocedure,
                                 'sequin_sf.metrics_text()'::regprocedure) ORDER BY 1;
DROP ROLE metrics_reader;
