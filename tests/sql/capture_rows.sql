-- Write capture row by row, on a table set up by hand (no sync): what each kind of
-- change leaves in the log, checked against SQL's own to_jsonb of the rows concerned.
\set VERBOSITY terse
SET client_min_messages = warning;
SET timezone = 'America/New_York';
CREATE SCHEMA t;
CREATE TABLE t.x (
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE, _write_state text,
    a text, b varchar(10), c char(5), d boolean, e int2, f int4, g int8, h numeric,
    i numeric(10,2), j float8, k float4, l date, m timestamp, n timestamptz, o time, p jsonb,
    q text[], r json, s uuid, "Weird Col" text, "ä" text, pick text);
SELECT sequin_sf._install_write_triggers('t.x'::regclass, 'X',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{"pick": ["A", "B"]}');

-- rows as the worker writes them (not captured): every type, special values, a toasted text
BEGIN;
SET LOCAL sequin_sf.applying = on;
INSERT INTO t.x (id, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, "Weird Col", "ä", pick)
VALUES ('1', E'he"llo\n', 'vc', 'ab', true, -3, 2147483647, 9223372036854775807, 'NaN', 1.5,
        'NaN', 1.25, 'infinity', '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05+02',
        '13:14:15', '{"z": [1, 2, {"y": null}], "a": 1}', '{x,"y z"}', '{"b": 1, "a": 2}',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'w', 'ü', 'A'),
       ('2', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g), NULL, NULL,
        false, 0, 0, 0, '-Infinity', 0, 1e300, 'Infinity', '2001-02-03', 'infinity',
        '-infinity', NULL, '"scalar"', '{}', 'null', NULL, NULL, NULL, NULL),
       ('3', '', '', '', NULL, NULL, NULL, NULL, 123456789012345678901234567890.123456789,
        -0.01, -0.0, 3.4e38, '1999-12-31', '1970-01-01', '2038-01-19 03:14:07+00', '00:00',
        '[]', NULL, '{}', NULL, '', '', NULL);
COMMIT;
SELECT count(*) AS captured FROM t._sync_write_log;
CREATE TABLE t.before AS SELECT * FROM t.x;

-- an update: one entry per changed row, with the changed columns' new values and the
-- whole row before (exactly to_jsonb's, text included)
UPDATE t.x SET a = a || '!', h = h, e = coalesce(e, 0) + 1;
SELECT l.row_id, l.action, l.api_id, l.state,
       l.previous = to_jsonb(before_row) AS previous_is_the_row_before,
       l.previous::text = to_jsonb(before_row)::text AS same_text,
       l."values" = (SELECT jsonb_build_object('a', x.a, 'e', x.e) FROM t.x x
                      WHERE x._row_id = l.row_id) AS values_are_the_changed_columns
  FROM t._sync_write_log l JOIN t.before before_row ON before_row._row_id = l.row_id
 ORDER BY l.id;

-- no entry for a change of nothing: the same values as stored (numeric(10,2) keeps its
-- scale, so i * 1.00 is i; a value that reads differently, 1.5 made 1.50, is a change:
-- capture_values.sql), columns never sent, statements that change no row
UPDATE t.x SET h = h, i = i * 1.00, a = a WHERE id IN ('1', '3');
UPDATE t.x SET _write_state = 'failed';
UPDATE t.x SET a = 'z' WHERE false;
DELETE FROM t.x WHERE false;
INSERT INTO t.x (id, a) VALUES ('1', 'x') ON CONFLICT (id) DO NOTHING;
SELECT count(*) AS entries FROM t._sync_write_log;

-- several updates of one row in a transaction: one entry each, each with the row as the
-- one before left it; a rolled back savepoint takes its entries with it
BEGIN;
UPDATE t.x SET b = 'one' WHERE id = '3';
SAVEPOINT s;
UPDATE t.x SET b = 'lost' WHERE id = '3';
ROLLBACK TO SAVEPOINT s;
UPDATE t.x SET b = 'two', pick = 'B' WHERE id = '3';
COMMIT;
SELECT previous ->> 'b' AS b_before, "values" FROM t._sync_write_log
 WHERE row_id = 3 ORDER BY id OFFSET 1;

-- refusals: nothing of the statement is logged
INSERT INTO t.x (a) VALUES ('fine'), ('not fine') RETURNING 1 \g /dev/null
INSERT INTO t.x (a, id) VALUES ('fine', NULL), ('bad', '4');
INSERT INTO t.x (a, pick) VALUES ('bad', 'C');
UPDATE t.x SET pick = 'C' WHERE id = '1';
UPDATE t.x SET id = '5' WHERE id = '1';
SELECT action, count(*) FROM t._sync_write_log GROUP BY action ORDER BY action;

-- an upsert that updates, a delete of a row inserted and not sent yet
INSERT INTO t.x (id, a) VALUES ('1', 'upserted') ON CONFLICT (id) DO UPDATE SET a = excluded.a;
DELETE FROM t.x WHERE a = 'not fine';
SELECT action, api_id, "values", previous ->> 'a' AS a_before FROM t._sync_write_log
 ORDER BY id DESC LIMIT 2;
-- a delete's entry holds the whole row
CREATE TABLE t.gone AS SELECT * FROM t.x WHERE id = '2';
DELETE FROM t.x WHERE id = '2';
SELECT l.api_id, l.previous = to_jsonb(gone_row) AS previous_is_the_row,
       l.previous::text = to_jsonb(gone_row)::text AS same_text
  FROM t._sync_write_log l, t.gone gone_row
 WHERE l.action = 'delete' AND l.row_id = gone_row._row_id;

-- a statement whose transition tables spill to disk, read by the application's own
-- statement triggers too (one firing before capture, one after): every row, in each
CREATE TABLE t.seen (rows bigint);
CREATE FUNCTION t.count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t.seen SELECT count(*) FROM old_rows JOIN new_rows USING (_row_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER a_count AFTER UPDATE ON t.x REFERENCING OLD TABLE AS old_rows
    NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION t.count_rows();
CREATE TRIGGER z_count AFTER UPDATE ON t.x REFERENCING OLD TABLE AS old_rows
    NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION t.count_rows();
INSERT INTO t.x (a, f) SELECT repeat(md5(g::text), 3), g FROM generate_series(1, 5000) g;
SET work_mem = '64kB';
UPDATE t.x SET f = f + 1 WHERE f IS NOT NULL AND id IS NULL;
RESET work_mem;
-- a statement of more than 100 rows is captured in batches: the worker unpacks them into
-- the log before it reads it, as here
SELECT count(*) AS batches, sum(cardinality(ids)) AS batched_entries FROM t._sync_write_batch;
SELECT sequin_sf._write_expand_batches('t');
SELECT count(*) AS batches_left FROM t._sync_write_batch;
SELECT count(*) AS entries, count(DISTINCT row_id) AS rows,
       bool_and(("values" ->> 'f')::int = (previous ->> 'f')::int + 1) AS values_follow_previous
  FROM t._sync_write_log WHERE action = 'update' AND "values" ? 'f';
SELECT rows FROM t.seen;

-- A batched UPDATE or DELETE keeps its rows before as they are; the worker turns them
-- into the same jsonb when it unpacks the batch, with the columns they had when they
-- were captured: a column dropped before, a column added and one retyped after.
CREATE TABLE t.y (LIKE t.x INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES);
ALTER TABLE t.y ADD COLUMN gone text;
SELECT sequin_sf._install_write_triggers('t.y'::regclass, 'Y',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
BEGIN;
SET LOCAL sequin_sf.applying = on;
INSERT INTO t.y (id, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, "Weird Col", "ä", pick, gone)
SELECT x.id || '-' || n.g, x.a, x.b, x.c, x.d, x.e, x.f, x.g, x.h, x.i, x.j, x.k, x.l, x.m, x.n,
       x.o, x.p, x.q, x.r, x.s, x."Weird Col", x."ä", x.pick, 'dropped'
  FROM t.x x, generate_series(1, 60) n(g) WHERE x.id IN ('1', '2', '3');
COMMIT;
ALTER TABLE t.y DROP COLUMN gone;
-- a column added with a default (rows written before take it from the catalog) and
-- values stored out of line
ALTER TABLE t.y ADD COLUMN late text DEFAULT 'late';
BEGIN;
SET LOCAL sequin_sf.applying = on;
UPDATE t.y SET a = (SELECT string_agg(md5(n.g::text || y.id), '') FROM generate_series(1, 400) n(g))
 WHERE _row_id % 2 = 0;
COMMIT;
-- (a value of more than 8 kB, a page, can only be stored out of line)
SELECT count(*) FILTER (WHERE octet_length(a) > 8192) AS out_of_line,
       count(*) FILTER (WHERE late = 'late') AS with_the_added_default
  FROM t.y;
CREATE TABLE t.y_before AS SELECT * FROM t.y;
TRUNCATE t._sync_write_log, t._sync_write_batch;
UPDATE t.y SET e = coalesce(e, 0) + 1;
CREATE TABLE t.y_updated AS SELECT * FROM t.y;
DELETE FROM t.y;
ALTER TABLE t.y ADD COLUMN added int DEFAULT 5, ALTER COLUMN b TYPE text;
SELECT action, count(*) AS batches, sum(cardinality(ids)) AS entries,
       bool_and(row_type IS NOT NULL AND previous_rows IS NOT NULL) AS rows_kept
  FROM t._sync_write_batch GROUP BY action ORDER BY action;
SELECT sequin_sf._write_expand_batches('t');
SELECT l.action, count(*) AS entries,
       bool_and(l.previous = b.row) AS previous_is_the_row_before,
       bool_and(l.previous::text = b.row::text) AS same_text
  FROM t._sync_write_log l
  JOIN (SELECT 'update' AS action, _row_id, to_jsonb(y) AS row FROM t.y_before y
        UNION ALL SELECT 'delete', _row_id, to_jsonb(y) FROM t.y_updated y) b
    ON b._row_id = l.row_id AND b.action = l.action
 GROUP BY l.action ORDER BY l.action;
SELECT count(*) AS logged, count(*) FILTER (WHERE previous ? 'gone' OR previous ? 'added')
       AS with_columns_of_another_time
  FROM t._sync_write_log;
-- kept rows are read back by the worker alone
SELECT has_function_privilege('public', 'sequin_sf._batch_rows_json(text, bytea[])', 'EXECUTE')
       AS public_may_read_kept_rows;
