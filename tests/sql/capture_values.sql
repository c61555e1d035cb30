-- What capture counts as a change, and the keys it relies on, on tables set up by hand
-- (no sync): a value that reads differently is a change even where the type's equality
-- calls the two equal; _row_id never changes; the keys must be of the types the log holds.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE EXTENSION citext;
CREATE SCHEMA v;
CREATE TABLE v.x (
    _row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE, _write_state text,
    ci citext, f float8, n numeric, t text);
SELECT sequin_sf._install_write_triggers('v.x'::regclass, 'X',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
BEGIN;
SET LOCAL sequin_sf.applying = on;
INSERT INTO v.x (id, ci, f, n, t) VALUES ('1', 'Acme', 0, 1.0, 'same');
COMMIT;

-- equal by the type, visible all the same: each is logged with the value as it now reads
UPDATE v.x SET ci = 'ACME';
UPDATE v.x SET f = '-0';
UPDATE v.x SET n = 1.00;
-- the very same values: nothing to log
UPDATE v.x SET ci = 'ACME', f = '-0', n = 1.00, t = 'same';
SELECT id, action, "values" FROM v._sync_write_log ORDER BY id;

-- _row_id is the row's key: an UPDATE that changes it is refused in words
UPDATE v.x SET _row_id = DEFAULT;
CREATE FUNCTION v.renumber() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW._row_id := NEW._row_id + 100; RETURN NEW; END $$;
CREATE TRIGGER renumber BEFORE UPDATE ON v.x FOR EACH ROW EXECUTE FUNCTION v.renumber();
UPDATE v.x SET t = 'renumbered';
DROP TRIGGER renumber ON v.x;
SELECT _row_id, t FROM v.x;

-- keys of another type than the log's are refused when capture first reads the table
CREATE TABLE v.y (_row_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text UNIQUE,
                  _write_state text, a text);
SELECT sequin_sf._install_write_triggers('v.y'::regclass, 'Y',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
INSERT INTO v.y (a) VALUES ('x');
CREATE TABLE v.z (_row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id int UNIQUE,
                  _write_state text, a text);
SELECT sequin_sf._install_write_triggers('v.z'::regclass, 'Z',
    '{"id": "assigned by Salesforce"}', '{"id": "assigned by Salesforce"}', '{}');
INSERT INTO v.z (a) VALUES ('x');
SELECT count(*) AS logged_for_bad_keys FROM v._sync_write_log WHERE table_name IN ('y', 'z');
