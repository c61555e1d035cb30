-- sequin_sf catalog: credentials, syncs, collections, column mapping, API usage.
-- Tables whose names start with "_" are internal; users read the views.

CREATE TABLE sequin_sf._credentials (
    name        text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('refresh_token', 'password', 'client_credentials', 'jwt_bearer')),
    login_url   text NOT NULL,
    client_id   text,
    username    text,
    -- nonce || ChaCha20-Poly1305 ciphertext of the secret parts; the key lives in a
    -- file in the data directory, never in the database.
    secret      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON sequin_sf._credentials FROM PUBLIC;

CREATE TABLE sequin_sf._syncs (
    name                     text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]{0,47}$'),
    credential               text NOT NULL REFERENCES sequin_sf._credentials(name),
    schema_name              text NOT NULL UNIQUE,
    created_schema           boolean NOT NULL DEFAULT false,
    rate_limit_requests      integer NOT NULL CHECK (rate_limit_requests > 0),
    rate_limit_interval      interval NOT NULL CHECK (rate_limit_interval > '0'::interval),
    max_concurrent_requests  integer NOT NULL CHECK (max_concurrent_requests > 0),
    -- never push the org's own daily usage (all clients) past this share of its quota
    org_usage_ceiling        real NOT NULL DEFAULT 0.8 CHECK (org_usage_ceiling > 0 AND org_usage_ceiling <= 1),
    -- share of the budget polls leave free for backfills, describes and writes
    write_reserve            real NOT NULL DEFAULT 0.2 CHECK (write_reserve >= 0 AND write_reserve < 1),
    poll_overlap             interval NOT NULL DEFAULT '30 seconds',
    event_retention          interval NOT NULL DEFAULT '7 days',
    -- backfilled rows are a snapshot, not changes: no events unless asked for
    backfill_events          boolean NOT NULL DEFAULT false,
    bulk_threshold           bigint NOT NULL DEFAULT 50000,
    describe_interval        interval NOT NULL DEFAULT '10 minutes',
    deleted_interval         interval NOT NULL DEFAULT '1 minute',
    paused                   boolean NOT NULL DEFAULT false,
    last_error               text,
    last_error_at            timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    -- random per sync: part of the external id markers of its creates, so a sync that
    -- replaces a dropped one (same schema, same log ids) never matches the old records
    marker_key               text NOT NULL DEFAULT gen_random_uuid()::text,
    -- base64 fields (Attachment.Body): 'url', a text column with the path Salesforce
    -- serves the bytes from (what REST queries return), or 'skip', no column
    base64_fields            text NOT NULL DEFAULT 'url' CHECK (base64_fields IN ('url', 'skip')),
    -- Change Data Capture: 'auto' subscribes to the change events of the collections
    -- the org selected for CDC (Setup's page: the standard channel), 'channel' to a
    -- channel of the sync's own holding its collections (event_channel), 'off' polls
    -- every collection; the collections not on events are polled
    change_events            text NOT NULL DEFAULT 'auto' CHECK (change_events IN ('auto', 'channel', 'off')),
    -- the collections that may take change events (NULL: every one), when the org
    -- allows fewer entities than the sync has collections
    event_collections        text[],
    -- the sync's own channel in Salesforce (full name, `..__chn`), named by the engine
    -- the first time change_events = 'channel' needs it
    event_channel            text,
    -- the Pub/Sub API endpoint (NULL: Salesforce's, https://api.pubsub.salesforce.com:7443)
    pubsub_endpoint          text,
    -- collections on change events are still polled this often, as a safety net
    reconcile_interval       interval NOT NULL DEFAULT '1 hour',
    -- where the change event stream resumes: the replay id of the last event applied,
    -- written in the transaction that applied it
    replay_id                bytea,
    -- what the change event stream is doing, in a sentence (NULL: never started)
    events_status            text,
    -- the read side retries after an error: since the first of a run of failures, and
    -- next at (NULL once a step succeeded); shown by sync_status.behind
    read_retry_since         timestamptz,
    read_retry_at            timestamptz,
    -- the org's daily API requests (all clients) and its limit, as Salesforce last
    -- reported them to this sync (Sforce-Limit-Info), and when
    org_api_used             bigint,
    org_api_limit            bigint,
    org_api_seen_at          timestamptz
);

-- Channels of dropped syncs (or of syncs that left change_events = 'channel') still to
-- be deleted in Salesforce with the credential they were made with: SQL cannot call
-- Salesforce, the engine does it (`channels::remove_left`), and says here why not yet.
CREATE TABLE sequin_sf._event_channels_left (
    channel     text PRIMARY KEY,
    credential  text NOT NULL,
    left_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text
);

CREATE TABLE sequin_sf._collections (
    sync_name            text NOT NULL REFERENCES sequin_sf._syncs(name) ON DELETE CASCADE,
    object_name          text NOT NULL,
    table_name           text NOT NULL,
    state                text NOT NULL DEFAULT 'backfilling' CHECK (state IN ('backfilling', 'live')),
    stamp_field          text,
    rows_total           bigint,
    rows_done            bigint NOT NULL DEFAULT 0,
    backfill_mode        text CHECK (backfill_mode IN ('rest', 'bulk')),
    backfill_cursor      text,
    -- why the backfill reads REST pages though its size called for a Bulk job (the
    -- org's Bulk query allocations), shown in sync_status
    backfill_note        text,
    bulk_job_id          text,
    bulk_locator         text,
    backfill_started_at  timestamptz,
    backfill_finished_at timestamptz,
    poll_cursor          timestamptz,
    deleted_cursor       timestamptz,
    last_poll_at         timestamptz,
    caught_up_at         timestamptz,
    describe_modified    text,
    last_error           text,
    last_error_at        timestamptz,
    added_at             timestamptz NOT NULL DEFAULT now(),
    -- the table this sync created (NULL until it exists): the only relation of that
    -- name it will ever alter or drop
    table_oid            oid,
    -- what Salesforce lets the API do with the object (describe; NULL = not known yet):
    -- capture refuses what it may not, polls skip /deleted where it is not replicateable
    createable           boolean,
    updateable           boolean,
    deletable            boolean,
    replicateable        boolean,
    -- calculated fields read again this often (NULL: never); the round in progress
    -- resumes after calculated_cursor (an Id; '' = from the start)
    calculated_refresh      interval,
    calculated_refreshed_at timestamptz,
    calculated_cursor       text,
    -- how live changes arrive: 'events' (Change Data Capture) or 'polling', and why
    change_source           text NOT NULL DEFAULT 'polling' CHECK (change_source IN ('polling', 'events')),
    change_source_note      text,
    PRIMARY KEY (sync_name, object_name),
    UNIQUE (sync_name, table_name)
);

CREATE TABLE sequin_sf._columns (
    sync_name           text NOT NULL,
    object_name         text NOT NULL,
    field_name          text NOT NULL,
    column_name         text NOT NULL,
    sf_type             text NOT NULL,
    pg_type             text NOT NULL,
    compound_of         text,
    createable          boolean NOT NULL DEFAULT false,
    updateable          boolean NOT NULL DEFAULT false,
    calculated          boolean NOT NULL DEFAULT false,
    nillable            boolean NOT NULL DEFAULT true,
    restricted_picklist boolean NOT NULL DEFAULT false,
    picklist_values     text[],
    -- false once the field disappeared from Salesforce, or changed to a type the column
    -- cannot hold: the column stays, unfilled
    active              boolean NOT NULL DEFAULT true,
    position            integer NOT NULL,
    added_at            timestamptz NOT NULL DEFAULT now(),
    removed_at          timestamptz,
    -- what the operator should know about this column (a type change not followed)
    note                text,
    PRIMARY KEY (sync_name, object_name, field_name),
    UNIQUE (sync_name, object_name, column_name),
    FOREIGN KEY (sync_name, object_name) REFERENCES sequin_sf._collections ON DELETE CASCADE
);

-- API requests per sync and minute, for the 24 h figures in the views.
CREATE TABLE sequin_sf._api_usage (
    sync_name  text NOT NULL REFERENCES sequin_sf._syncs(name) ON DELETE CASCADE,
    minute     timestamptz NOT NULL,
    requests   integer NOT NULL,
    -- Bulk query jobs the sync created in the minute (DailyBulkV2QueryJobs)
    bulk_jobs  integer NOT NULL DEFAULT 0,
    -- change events the stream delivered in the minute (DailyDeliveredPlatformEvents)
    events     integer NOT NULL DEFAULT 0,
    -- bytes of Bulk query results downloaded in the minute (DailyBulkV2QueryFileStorageMB)
    bulk_result_bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (sync_name, minute)
);

-- The org's allocations as /limits last reported them to a sync (allocations.rs).
CREATE TABLE sequin_sf._org_limits (
    sync_name  text NOT NULL REFERENCES sequin_sf._syncs(name) ON DELETE CASCADE,
    allocation text NOT NULL,
    max        bigint NOT NULL,
    remaining  bigint NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (sync_name, allocation)
);

-- Keep the configuration across pg_dump/restore (the secret column stays ciphertext).
-- begin: extension only (objects sequin-sf installs are dumped like any others)
SELECT pg_catalog.pg_extension_config_dump('sequin_sf._credentials', '');

SELECT pg_catalog.pg_extension_config_dump('sequin_sf._syncs', '');

SELECT pg_catalog.pg_extension_config_dump('sequin_sf._collections', '');

SELECT pg_catalog.pg_extension_config_dump('sequin_sf._columns', '');

SELECT pg_catalog.pg_extension_config_dump('sequin_sf._event_channels_left', '');
-- end: extension only

CREATE VIEW sequin_sf.credentials AS
SELECT name, kind, login_url, client_id, username, created_at, updated_at
FROM sequin_sf._credentials;

CREATE VIEW sequin_sf.syncs AS
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

CREATE VIEW sequin_sf.sync_status AS
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

CREATE VIEW sequin_sf.columns AS
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

-- Who may read and call what is decided in one place: the end of sql/api.sql.
