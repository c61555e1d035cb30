-- Write capture across a transaction: its first 100 entries are log rows at once, the
-- others wait in memory and are written as batches when it commits (the worker unpacks
-- them, as _write_expand_batches does here). Whatever the path, the log ends up with one
-- entry per change that was committed, in the order of capture, and nothing of a
-- rolled back savepoint or transaction.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE SCHEMA tt;
CREATE TABLE tt.z (_row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE,
                   _write_state text, a text, n int);
SELECT sequin_sf._install_write_triggers('tt.z'::regclass, 'Z',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
BEGIN;
SET LOCAL sequin_sf.applying = on;
INSERT INTO tt.z (id, a, n) SELECT 'r' || g, 'v0', g FROM generate_series(1, 300) g;
COMMIT;

BEGIN;
-- 150 one-row statements: the first 100 are in the log already (seen by the transaction
-- itself), the other 50 wait in memory, not in the batch table yet
DO $$ BEGIN FOR i IN 1..150 LOOP UPDATE tt.z SET n = n + 1000 WHERE _row_id = i; END LOOP; END $$;
SELECT count(*) AS in_the_log FROM tt._sync_write_log;
SELECT count(*) AS batch_rows FROM tt._sync_write_batch;
-- inside savepoints, entries are written with their statement: a rollback takes them,
-- of a small statement and of a large one alike
SAVEPOINT s1;
UPDATE tt.z SET a = 'rolled back' WHERE _row_id <= 5;
UPDATE tt.z SET a = 'rolled back too' WHERE _row_id <= 200;
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
UPDATE tt.z SET a = 'kept' WHERE _row_id BETWEEN 151 AND 160;
RELEASE SAVEPOINT s2;
-- a block with an exception handler is a subtransaction too
DO $$
BEGIN
    FOR i IN 161..165 LOOP
        BEGIN
            UPDATE tt.z SET a = 'block' WHERE _row_id = i;
            IF i = 163 THEN
                RAISE EXCEPTION 'undone';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;
-- back at the top level: waits in memory with the others
UPDATE tt.z SET a = 'last' WHERE _row_id = 300;
-- the transaction's own entries cannot be waited for, wherever they are
DO $$
BEGIN
    PERFORM sequin_sf.await_writes('1 second');
EXCEPTION WHEN active_sql_transaction THEN
    RAISE WARNING 'await_writes refused: %', SQLERRM;
END
$$;
COMMIT;
SELECT count(*) AS batch_rows, sum(cardinality(ids)) AS batched_entries FROM tt._sync_write_batch;
SELECT sequin_sf._write_expand_batches('tt');
SELECT count(*) AS entries,
       count(*) FILTER (WHERE "values" ->> 'a' LIKE 'rolled back%') AS rolled_back,
       count(*) FILTER (WHERE row_id = 163) AS of_the_undone_block
  FROM tt._sync_write_log;
-- in the order of capture, each with the row before it and the values it set
SELECT array_agg(row_id ORDER BY id) = ARRAY(SELECT g::bigint FROM generate_series(1, 162) g
                                             UNION ALL SELECT g FROM generate_series(164, 165) g
                                             UNION ALL SELECT 300) AS in_capture_order
  FROM tt._sync_write_log;
SELECT bool_and(("values" ->> 'n')::int = (previous ->> 'n')::int + 1000
                AND previous ->> 'a' = 'v0') AS updates_follow_their_rows
  FROM tt._sync_write_log WHERE row_id <= 150;
SELECT count(*) FILTER (WHERE "values" = '{"a": "kept"}' AND previous ->> 'n' = row_id::text)
           AS kept_savepoint,
       count(*) FILTER (WHERE "values" = '{"a": "block"}') AS block_entries,
       count(*) FILTER (WHERE "values" = '{"a": "last"}') AS last_entry
  FROM tt._sync_write_log;

-- a transaction rolled back leaves nothing behind, in the log or in batches
TRUNCATE tt._sync_write_log;
BEGIN;
DO $$ BEGIN FOR i IN 1..150 LOOP UPDATE tt.z SET n = n + 1 WHERE _row_id = i; END LOOP; END $$;
ROLLBACK;
SELECT (SELECT count(*) FROM tt._sync_write_log) AS log_entries,
       (SELECT count(*) FROM tt._sync_write_batch) AS batch_rows;
-- and the next transaction starts counting afresh: its one-row change is a log row
UPDATE tt.z SET a = 'fresh' WHERE _row_id = 1;
SELECT count(*) AS in_the_log_at_commit FROM tt._sync_write_log;

-- a table altered in the middle of a transaction: the rows kept before and after it are
-- read back with the columns each had
TRUNCATE tt._sync_write_log;
BEGIN;
DO $$ BEGIN FOR i IN 1..120 LOOP UPDATE tt.z SET a = 'before' WHERE _row_id = i; END LOOP; END $$;
ALTER TABLE tt.z ADD COLUMN extra int DEFAULT 7;
DO $$ BEGIN FOR i IN 121..150 LOOP UPDATE tt.z SET a = 'after' WHERE _row_id = i; END LOOP; END $$;
COMMIT;
SELECT count(*) AS batch_rows FROM tt._sync_write_batch;
SELECT sequin_sf._write_expand_batches('tt');
SELECT "values" ->> 'a' AS change, count(*) AS entries,
       count(*) FILTER (WHERE previous ? 'extra') AS with_extra,
       count(*) FILTER (WHERE previous ->> 'extra' = '7') AS with_its_default
  FROM tt._sync_write_log GROUP BY 1 ORDER BY 1;

-- the batch table dropped in the transaction (as drop_sync does): the commit goes through
BEGIN;
DO $$ BEGIN FOR i IN 1..150 LOOP UPDATE tt.z SET n = n + 1 WHERE _row_id = i; END LOOP; END $$;
DROP TABLE tt._sync_write_batch;
COMMIT;
SELECT to_regclass('tt._sync_write_batch') AS batch_table;
DROP SCHEMA tt CASCADE;
