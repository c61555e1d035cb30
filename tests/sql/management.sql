-- Argument checks of the management functions, with their messages and hints; none
-- of these calls needs Salesforce or the worker.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- plain http: loopback, and the hosts a superuser allows by name
SELECT sequin_sf.create_credential('local', kind => 'refresh_token',
       login_url => 'http://127.0.0.1:8899', client_id => 'a', client_secret => 'b',
       refresh_token => 'c');
SELECT sequin_sf.create_credential('emulator', kind => 'refresh_token',
       login_url => 'http://emulator:8899', client_id => 'a', client_secret => 'b',
       refresh_token => 'c');
SET sequin_sf.plain_http_hosts = 'emulator, other';
SELECT sequin_sf.create_credential('emulator', kind => 'refresh_token',
       login_url => 'http://emulator:8899', client_id => 'a', client_secret => 'b',
       refresh_token => 'c');
SELECT sequin_sf.create_credential('evil', kind => 'refresh_token',
       login_url => 'http://emulator.evil.example:8899', client_id => 'a', client_secret => 'b',
       refresh_token => 'c');
SELECT name, login_url FROM sequin_sf.credentials ORDER BY name;
RESET sequin_sf.plain_http_hosts;

INSERT INTO sequin_sf._credentials (name, kind, login_url, client_id, secret)
VALUES ('c', 'refresh_token', 'https://login.example.com', 'id', '\x00');
INSERT INTO sequin_sf._syncs (name, credential, schema_name, rate_limit_requests,
                              rate_limit_interval, max_concurrent_requests)
VALUES ('r', 'c', 'rs', 100, '1 day', 1);

SELECT sequin_sf.alter_sync('r', poll_overlap => '-1 hour');
SELECT sequin_sf.alter_sync('r', event_retention => '-1 day');
SELECT sequin_sf.alter_sync('r', describe_interval => '0');
SELECT sequin_sf.alter_sync('r', org_usage_ceiling => 0);
SELECT sequin_sf.alter_sync('r', max_concurrent_requests => 100);
SELECT sequin_sf.alter_sync(NULL);
SELECT sequin_sf.alter_sync('nope');
SELECT sequin_sf.alter_sync('r', poll_overlap => '10 seconds', describe_interval => '5 minutes');
SELECT poll_overlap, describe_interval FROM sequin_sf._syncs WHERE name = 'r';

SELECT sequin_sf.alter_write_settings('r', batch_size => 201);
SELECT sequin_sf.alter_write_settings('r', max_batch_wait => '2 hours');
-- (a field is checked against the org: tests/test_write_settings.py; an object the sync
-- does not mirror is refused before any login)
SELECT sequin_sf.alter_write_settings('r', external_id_fields => '{"Lead": "Nope__c"}');
SELECT sequin_sf.alter_write_settings('r', external_id_fields => '["Contact"]');
SELECT sequin_sf.await_writes(NULL);
SELECT sequin_sf.retry_writes(ids => '{}');

SELECT sequin_sf.create_credential('plain', kind => 'refresh_token',
       login_url => 'http://login.example.com', client_id => 'a', client_secret => 'b',
       refresh_token => 'c');
SELECT sequin_sf.create_credential('bad name!', kind => 'refresh_token', client_id => 'a');
SELECT sequin_sf.create_credential('x', kind => 'password', client_id => 'a');
SELECT sequin_sf.grant_management('no_such_role');

-- a relation in the way of a sync's table is refused, naming it
CREATE SCHEMA rs;
CREATE VIEW rs.contact AS SELECT 1 AS one;
SELECT sequin_sf._refuse_taken_name('rs', 'contact');
SELECT sequin_sf._refuse_taken_name('rs', 'account');
-- a schema owned by an ordinary role cannot hold a sync
CREATE ROLE schema_owner;
CREATE SCHEMA theirs AUTHORIZATION schema_owner;
SELECT sequin_sf._check_sync_schema('theirs');
SELECT sequin_sf._check_sync_schema('rs');

