-- Write capture without a worker: a synced table set up by hand as the worker would
-- (catalog rows, table, _install_capture), then changes, refusals, the log they leave,
-- and the writer's queue, claim and settle functions called as the worker calls them.
\set VERBOSITY terse
SET client_min_messages = warning;
INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, secret)
VALUES ('c', 'refresh_token', 'https://login.example.com', 'id', '\x00');
INSERT INTO sequin_sf._syncs (name, credential, schema_name, rate_limit_requests,
                              rate_limit_interval, max_concurrent_requests)
VALUES ('r', 'c', 'rs', 100, '1 day', 1);
CREATE SCHEMA rs;
INSERT INTO sequin_sf._collections (sync_name, object_name, table_name, state)
VALUES ('r', 'Contact', 'contact', 'live');
INSERT INTO sequin_sf._columns (sync_name, object_name, field_name, column_name, sf_type,
                                pg_type, createable, updateable, calculated,
                                restricted_picklist, picklist_values, position)
VALUES ('r', 'Contact', 'Id', 'id', 'id', 'text', false, false, false, false, NULL, 0),
       ('r', 'Contact', 'LastName', 'last_name', 'string', 'text', true, true, false, false, NULL, 1),
       ('r', 'Contact', 'Title', 'title', 'string', 'text', true, true, false, false, NULL, 2),
       ('r', 'Contact', 'Score__c', 'score__c', 'double', 'numeric', false, false, true, false, NULL, 3),
       ('r', 'Contact', 'Level__c', 'level__c', 'picklist', 'text', true, true, false, true,
        ARRAY['Gold', 'Silver', 'x$body$; SELECT 1; $body$'], 4),
       ('r', 'Contact', 'SystemModstamp', 'system_modstamp', 'datetime', 'timestamptz', false, false, false, false, NULL, 5);
CREATE TABLE rs.contact (
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text UNIQUE, last_name text, title text, score__c numeric, level__c text,
    system_modstamp timestamptz, _write_state text);
SELECT sequin_sf._install_capture('rs', 'contact');
UPDATE sequin_sf._collections SET table_oid = 'rs.contact'::regclass;

-- the worker's own changes are not captured
BEGIN;
SELECT set_config('sequin_sf.applying', 'on', true) IS NOT NULL AS applying;
INSERT INTO rs.contact (id, last_name, title, system_modstamp)
VALUES ('003000000000001AAA', 'Synced', 'CEO', '2026-01-01T00:00:00Z');
COMMIT;
SELECT count(*) AS captured FROM rs._sync_write_log;

-- an application's changes are, one entry per changed row
INSERT INTO rs.contact (last_name, level__c) VALUES ('Ada', 'Gold'), ('Bob', NULL);
UPDATE rs.contact SET title = 'CTO' WHERE id = '003000000000001AAA';
UPDATE rs.contact SET title = title WHERE id = '003000000000001AAA';  -- nothing changed
UPDATE rs.contact SET last_name = 'Robert' WHERE last_name = 'Bob';
DELETE FROM rs.contact WHERE last_name = 'Robert';
SELECT id, table_name, object_name, row_id, action, api_id, state, "values",
       previous ->> 'title' AS previous_title
  FROM rs._sync_write_log ORDER BY id;

-- refused at once, nothing logged
UPDATE rs.contact SET score__c = 1 WHERE id = '003000000000001AAA';
UPDATE rs.contact SET id = '003000000000002AAA' WHERE id = '003000000000001AAA';
INSERT INTO rs.contact (last_name, level__c) VALUES ('Eve', 'Bronze');
INSERT INTO rs.contact (last_name, level__c) VALUES ('Mallory', 'x$body$; SELECT 1; $body$');
TRUNCATE rs.contact;
SET sequin_sf.applying = on;  -- allowed here: this script runs as a superuser
RESET sequin_sf.applying;
SELECT count(*) AS entries FROM rs._sync_write_log;

-- what the writer decides on: the settings (with their defaults) and what is due
SELECT jsonb_pretty((sequin_sf._write_backlog('rs') #- '{settings,marker_seed}') - 'oldest_wait_secs');
-- the writer's queue: inserts filled from their rows, field names from the mapping
SELECT e ->> 'log_id' AS log_id, e ->> 'action' AS action, e ->> 'object' AS object,
       e -> 'fields' AS fields, e ->> 'ready' AS ready
  FROM jsonb_array_elements(sequin_sf._write_queue('rs', 100)) e;

-- claim, then settle: a created record's Id reaches the row and the row's later entries
SELECT sequin_sf._write_claim('rs', ARRAY[1, 3]::bigint[]);
UPDATE rs.contact SET title = 'Queen' WHERE last_name = 'Ada';
SELECT sequin_sf._write_record_created('rs', '[{"log_ids": [1], "api_id": "003000000000009AAA"}]');
SELECT sequin_sf._write_settle('rs', '[
  {"log_ids": [1], "row_id": 2, "table_name": "contact", "action": "insert",
   "outcome": "succeeded", "api_id": "003000000000009AAA", "status": 201},
  {"log_ids": [3], "row_id": 1, "table_name": "contact", "action": "update",
   "outcome": "failed", "status": 400, "message": "FIELD_CUSTOM_VALIDATION_EXCEPTION: no"}]');
SELECT _row_id, id, last_name, title, _write_state FROM rs.contact ORDER BY _row_id;
SELECT id, action, api_id, state, api_result, api_message FROM rs._sync_write_log ORDER BY id;

-- a failed write is re-queued by retry_writes as a new entry; a blanket retry leaves
-- creates of unknown outcome alone
SELECT sequin_sf._write_settle('rs', '[
  {"log_ids": [2], "row_id": 3, "table_name": "contact", "action": "insert",
   "outcome": "failed", "status": null, "message": "outcome unknown: test", "row_state": "unknown"}]');
SET client_min_messages = notice;
SELECT sequin_sf.retry_writes('r');
SET client_min_messages = warning;
SELECT id, action, state, retry_of FROM rs._sync_write_log WHERE retry_of IS NOT NULL ORDER BY id;

-- a session that skips ordinary triggers (session_replication_role = replica, as bulk
-- loads do) is captured all the same
SET session_replication_role = replica;
UPDATE rs.contact SET title = 'Replica role' WHERE id = '003000000000001AAA';
RESET session_replication_role;
SELECT action, "values" FROM rs._sync_write_log ORDER BY id DESC LIMIT 1;

-- capture switched off by hand (superuser or owner) shows in sync_status
SELECT collection, capture FROM sequin_sf.sync_status;
ALTER TABLE rs.contact DISABLE TRIGGER _sync_write_update;
SELECT collection, capture FROM sequin_sf.sync_status;
ALTER TABLE rs.contact ENABLE ALWAYS TRIGGER _sync_write_update;
SELECT collection, capture FROM sequin_sf.sync_status;

-- a column someone adds to a synced table maps to no field: changing only it logs
-- nothing, and it is left out of an update's values; once the sync maps a column (a new
-- field) and installs capture again, it is sent
ALTER TABLE rs.contact ADD COLUMN my_note text;
SELECT count(*) AS entries_before FROM rs._sync_write_log;
UPDATE rs.contact SET my_note = 'ours' WHERE id = '003000000000001AAA';
UPDATE rs.contact SET my_note = 'still ours', title = 'Noted' WHERE id = '003000000000001AAA';
INSERT INTO sequin_sf._columns (sync_name, object_name, field_name, column_name, sf_type,
                                pg_type, createable, updateable, calculated,
                                restricted_picklist, picklist_values, position)
VALUES ('r', 'Contact', 'My_Note__c', 'my_note', 'string', 'text', true, true, false, false, NULL, 6);
SELECT sequin_sf._install_capture('rs', 'contact');
UPDATE rs.contact SET my_note = 'sent now' WHERE id = '003000000000001AAA';
SELECT action, "values" FROM rs._sync_write_log ORDER BY id DESC LIMIT 2;
DELETE FROM sequin_sf._columns WHERE column_name = 'my_note';
ALTER TABLE rs.contact DROP COLUMN my_note;
SELECT sequin_sf._install_capture('rs', 'contact');

-- a constraint the log's row breaks is reported as Postgres reports it, for a log row
-- and for a batch (a statement of more than 100 rows), and the change rolls back: the
-- executor words the violation from the range table capture gives it
ALTER TABLE rs._sync_write_log ADD CONSTRAINT no_updates CHECK (action <> 'update') NOT VALID;
ALTER TABLE rs._sync_write_batch ADD CONSTRAINT no_updates CHECK (action <> 'update') NOT VALID;
UPDATE rs.contact SET title = 'Refused by the log' WHERE id = '003000000000001AAA';
-- a transaction's batches are written as it commits: the commit fails, and takes the
-- transaction's inserts with it
BEGIN;
INSERT INTO rs.contact (last_name) SELECT 'Many ' || g FROM generate_series(1, 101) g;
UPDATE rs.contact SET title = 'Refused by the batch' WHERE last_name LIKE 'Many %';
COMMIT;
ALTER TABLE rs._sync_write_log DROP CONSTRAINT no_updates;
ALTER TABLE rs._sync_write_batch DROP CONSTRAINT no_updates;
SELECT count(*) FILTER (WHERE title LIKE 'Refused%') AS refused_changes,
       count(*) FILTER (WHERE last_name LIKE 'Many %') AS rows_of_the_failed_commit
  FROM rs.contact;

-- a kept row before that cannot be read safely (an edit of the batch table, corruption)
-- makes its entry failed with the reason when the worker unpacks the batch, and the
-- rest of the batch goes on: nothing reads past a row's end or crashes the worker
INSERT INTO rs.contact (last_name) SELECT 'Kept ' || g FROM generate_series(1, 101) g;
UPDATE rs.contact SET title = 'Batched' WHERE last_name LIKE 'Kept %';
UPDATE rs._sync_write_batch
   SET previous_rows[1] = substr(previous_rows[1], 1, 20),
       previous_rows[2] = overlay(substr(previous_rows[2], 1, 24) placing '\x18000000'::bytea from 1 for 4),
       previous_rows[3] = overlay(previous_rows[3] placing '\xff07'::bytea from 11 for 2)
 WHERE action = 'update';
SELECT sequin_sf._write_expand_batches('rs');
SELECT state, count(*), min(api_message) AS reason
  FROM rs._sync_write_log WHERE action = 'update' AND "values" ->> 'title' = 'Batched'
 GROUP BY state, api_message ORDER BY state, reason;
DELETE FROM rs.contact WHERE last_name LIKE 'Kept %';

-- an object Salesforce does not let the API create or delete: refused before any row
-- changes, while updates are still captured; the worker's own changes pass
SELECT sequin_sf._set_object_access('r', 'Contact', false, true, false, false);
INSERT INTO rs.contact (last_name) VALUES ('Nope');
DELETE FROM rs.contact WHERE id = '003000000000001AAA';
UPDATE rs.contact SET title = 'Still captured' WHERE id = '003000000000001AAA';
BEGIN;
SELECT set_config('sequin_sf.applying', 'on', true) IS NOT NULL AS applying;
DELETE FROM rs.contact WHERE id = '003000000000001AAA';
ROLLBACK;
SELECT action, "values" FROM rs._sync_write_log ORDER BY id DESC LIMIT 1;
SELECT createable, updateable, deletable, replicateable FROM sequin_sf._collections;

-- removing a collection drops the table it created (and says so) and leaves capture on
-- for the rest of the caller's transaction
BEGIN;
SET LOCAL client_min_messages = notice;
SELECT sequin_sf.remove_collection('r', 'Contact');
SELECT current_setting('sequin_sf.applying') AS applying, to_regclass('rs.contact') AS table_left;
ROLLBACK;
