"""End to end: fanning a sync out with Postgres's own logical replication.

A second cluster, plain Postgres without sequin_sf, subscribes to the sync's publication
(`sequin_sf_<sync>`, `FOR TABLES IN SCHEMA <schema>`, created by create_sync) and receives
the synced tables and `_sync_events` as they change: read replicas and analytics
databases get Salesforce's data without spending a single further API call.

The subscriber-side procedure this test follows (publisher: the database with the sync,
`wal_level = logical`; `salesforce` is the sync's schema, `emu` the sync):

1. Create the schema's tables on the subscriber from the publisher's definition, minus
   the extension's functions and triggers:

       pg_dump -Fc --schema-only --no-owner --no-privileges -n salesforce -f sf.dump PUBLISHER
       pg_restore -l sf.dump | grep -v -E '^[0-9]+; [0-9]+ [0-9]+ (FUNCTION|TRIGGER) ' > sf.list
       pg_restore --exit-on-error -L sf.list -d SUBSCRIBER sf.dump

   Every table of the schema is needed, `_sync_write_log` and `_sync_write_batch`
   included: the publication
   covers all of them and CREATE SUBSCRIPTION refuses a publication whose tables it
   cannot find locally. Why functions and triggers go: see `schema_ddl` below.
2. `CREATE SUBSCRIPTION sf CONNECTION 'host=... dbname=... user=...' PUBLICATION
   sequin_sf_emu;` copies what is there and then streams every change.
3. A collection added later (`add_collection`) is published at once: the publication is
   FOR TABLES IN SCHEMA, so its new table is in it without ALTER PUBLICATION (beside the
   database, where a whole schema needs a superuser, the publication lists the tables
   and the sync adds the new one as it creates it: the same follows). The
   subscriber, which has no such table, stops applying (every table, not just the new
   one) with `logical replication target relation "salesforce.<table>" does not exist`
   and retries; nothing is lost, the publisher's slot keeps the WAL. Create the table
   there (step 1 with `-t salesforce.<table>`): the stream resumes, but the new table's
   changes are skipped until `ALTER SUBSCRIPTION sf REFRESH PUBLICATION`, which registers
   it and copies its current contents. (`ALTER SUBSCRIPTION sf DISABLE` before
   add_collection and `ENABLE` before the REFRESH avoids the retries in between.)

DDL is not replicated: a column the sync adds later (a new Salesforce field) or
converts stops the stream the same way until the subscriber's table gets the same
change. Sequences are not replicated either (only needed if the subscriber is promoted).
"""

import os
import subprocess

import pytest

from harness import (
    PG_BIN,
    Cluster,
    create_emulator_credential,
    query_rows,
    query_value,
    wait_backfilled,
    wait_for,
)

SYNC = "emu"
SCHEMA = "salesforce"


@pytest.fixture
def publisher():
    c = Cluster()  # scripts/pg-cluster.sh sets wal_level = logical for every cluster
    yield c
    c.destroy()


@pytest.fixture
def subscriber():
    # plain Postgres: nothing preloaded, the extension never created
    c = Cluster(settings={"shared_preload_libraries": "''"})
    yield c
    c.destroy()


def schema_ddl(cluster, workdir, name, *selection):
    """Recreates the tables `selection` (pg_dump -n/-t arguments) of `cluster` in another
    database: returns the path of a custom-format schema-only dump and of the restore list
    that leaves out the extension's objects.

    Left out, because a subscriber neither can nor should have them:
    - TRIGGER: the capture triggers, `_sync_write_truncate` and `_sync_write_refuse_*` call
      functions of the `sequin_sf` schema, which does not exist without the extension (the
      restore fails);
      the capture triggers queue every local change into `_sync_write_log` to be written
      back to Salesforce, which on a replica nobody should do. (Replicated changes would
      not fire them anyway: the apply worker runs with session_replication_role =
      replica.)
    Kept: tables with their identity sequences, primary keys (the replica identity the
    subscriber finds updated and deleted rows by), UNIQUE (id), indexes and comments.
    --no-owner / --no-privileges: roles and grants are the subscriber's own business."""
    dump = os.path.join(workdir, f"{name}.dump")
    listing = os.path.join(workdir, f"{name}.list")
    subprocess.run(
        [f"{PG_BIN}/pg_dump", "-Fc", "--schema-only", "--no-owner", "--no-privileges",
         *selection, "-f", dump, "-d", cluster.dsn()],
        check=True,
    )
    toc = subprocess.run(
        [f"{PG_BIN}/pg_restore", "-l", dump], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    # entries look like "313; 2620 16640 TRIGGER salesforce contact _sync_write_insert postgres"
    kept = [line for line in toc
            if line.startswith(";") or line.split()[3:4] not in (["FUNCTION"], ["TRIGGER"])]
    assert len(kept) < len(toc), "expected the extension's triggers in the dump"
    with open(listing, "w") as f:
        f.write("\n".join(kept) + "\n")
    return dump, listing


def restore(dump, listing, cluster):
    subprocess.run(
        [f"{PG_BIN}/pg_restore", "--exit-on-error", "--no-owner", "--no-privileges",
         "-L", listing, "-d", cluster.dsn(), dump],
        check=True,
    )


def published_tables(pub_conn, publication):
    return [t for (t,) in query_rows(
        pub_conn, "SELECT tablename FROM pg_publication_tables WHERE pubname = %s"
        " AND schemaname = %s ORDER BY tablename", (publication, SCHEMA))]


def contents(conn, table, columns, key):
    """Every row of a table, every column, in key order."""
    cols = ", ".join(f'"{c}"' for c in columns)
    order = ", ".join(f'"{c}"' for c in key)
    return query_rows(conn, f'SELECT {cols} FROM "{SCHEMA}"."{table}" ORDER BY {order}')


def table_shapes(pub_conn, publication):
    """{table: (published columns, primary key columns)} of the publication's tables."""
    out = {}
    for table, columns in query_rows(
            pub_conn, "SELECT tablename, attnames FROM pg_publication_tables"
            " WHERE pubname = %s AND schemaname = %s", (publication, SCHEMA)):
        key = [a for (a,) in query_rows(
            pub_conn, "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
            " WHERE i.indrelid = format('%%I.%%I', %s::text, %s::text)::regclass"
            " AND i.indisprimary ORDER BY a.attnum", (SCHEMA, table))]
        out[table] = (columns, key)
    return out


def differences(pub_conn, sub_conn, publication, tables=None):
    """The published tables whose full contents differ between the two sides (empty
    when the subscriber has caught up)."""
    diff = []
    for table, (columns, key) in sorted(table_shapes(pub_conn, publication).items()):
        if tables is not None and table not in tables:
            continue
        if contents(pub_conn, table, columns, key) != contents(sub_conn, table, columns, key):
            diff.append(table)
    return diff


def wait_subscription_ready(sub_conn, n_tables, timeout=300):
    """Waits until the subscription has `n_tables` tables, each copied and streaming."""
    wait_for(
        lambda: query_rows(
            sub_conn, "SELECT count(*), count(*) FILTER (WHERE srsubstate = 'r')"
            " FROM pg_subscription_rel")[0] == (n_tables, n_tables),
        timeout=timeout, what=f"initial copy of {n_tables} tables",
    )


def test_second_cluster_subscribes_to_the_sync_publication(
        start_emulator, publisher, subscriber, tmp_path):
    emulator = start_emulator("--seed", "11", "--generate", "Account=40,Contact=120,Opportunity=30")
    pub = publisher.connect()
    sub = subscriber.connect()
    try:
        assert query_value(pub, "SHOW wal_level") == "logical"

        # --- publisher: a sync of Contact and Account, backfilled with events
        publisher.install(pub)
        create_emulator_credential(pub, emulator)
        pub.execute(
            "SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => %s,"
            " backfill_events => true, rate_limit_requests => 100000)",
            (SYNC, ["Contact", "Account"]),
        )
        wait_backfilled(pub, SYNC)
        publication = query_value(
            pub, "SELECT publication FROM sequin_sf.syncs WHERE name = %s", (SYNC,))
        assert publication == f"sequin_sf_{SYNC}"
        assert published_tables(pub, publication) == [
            "_sync_events", "_sync_write_batch", "_sync_write_log", "account", "contact"]
        # every published table can take UPDATE and DELETE: each has a primary key as
        # its replica identity (a table without one in a published schema would refuse
        # them on the publisher)
        assert query_rows(
            pub, "SELECT c.relname FROM pg_publication_tables p"
            " JOIN pg_class c ON c.oid = format('%%I.%%I', p.schemaname, p.tablename)::regclass"
            " WHERE p.pubname = %s AND NOT (c.relreplident IN ('f', 'i')"
            "   OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i"
            "       WHERE i.indrelid = c.oid AND i.indisprimary)))", (publication,)) == []
        assert query_value(pub, "SELECT count(*) FROM salesforce._sync_events") == \
            query_value(pub, "SELECT count(*) FROM salesforce.contact") + \
            query_value(pub, "SELECT count(*) FROM salesforce.account") > 0

        # --- subscriber: plain Postgres, no sequin_sf anywhere
        assert query_value(sub, "SHOW shared_preload_libraries") == ""
        assert query_value(sub, "SELECT count(*) FROM pg_extension WHERE extname = 'sequin_sf'") == 0
        dump, listing = schema_ddl(publisher, str(tmp_path), "schema", "-n", SCHEMA)
        restore(dump, listing, subscriber)
        assert query_value(sub, "SELECT to_regnamespace('sequin_sf')") is None
        assert query_value(
            sub, "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE c.relnamespace = 'salesforce'::regnamespace") == 0
        sub.execute(
            f"CREATE SUBSCRIPTION sf CONNECTION '{publisher.dsn()}' PUBLICATION {publication}")
        wait_subscription_ready(sub, 5)
        wait_for(lambda: differences(pub, sub, publication) == [], timeout=300,
                 what="subscriber equal to publisher after the initial copy")
        assert query_value(sub, "SELECT count(*) FROM salesforce.contact") > 0

        # --- changes in Salesforce reach the publisher, and through it the subscriber
        cid = query_value(pub, "SELECT id FROM salesforce.contact ORDER BY id LIMIT 1")
        aid = query_value(pub, "SELECT id FROM salesforce.account ORDER BY id DESC LIMIT 1")
        emulator.control("PATCH", f"records/Contact/{cid}", {"Title": "Replicated VP"})
        new_id = emulator.control(
            "POST", "records/Contact", [{"LastName": "Fanout", "Email": "fan@out.test"}])["ids"][0]
        emulator.control("DELETE", f"records/Account/{aid}")

        def applied(conn):
            return (
                query_value(conn, "SELECT title FROM salesforce.contact WHERE id = %s", (cid,))
                == "Replicated VP"
                and query_value(conn, "SELECT last_name FROM salesforce.contact WHERE id = %s",
                                (new_id,)) == "Fanout"
                and query_value(conn, "SELECT count(*) FROM salesforce.account WHERE id = %s",
                                (aid,)) == 0
            )

        wait_for(lambda: applied(pub), timeout=180, what="changes on the publisher")
        wait_for(lambda: differences(pub, sub, publication) == [], timeout=300,
                 what="subscriber equal to publisher after the changes")
        assert applied(sub)
        events = {(u, e) for u, e in query_rows(
            sub, "SELECT upstream_id, event FROM salesforce._sync_events"
            " WHERE upstream_id = ANY (%s)", ([cid, new_id, aid],))}
        assert {(cid, "updated"), (new_id, "inserted"), (aid, "deleted")} <= events

        # --- a collection added later: published at once (FOR TABLES IN SCHEMA) ...
        pub.execute("SELECT sequin_sf.add_collection(%s, 'Opportunity')", (SYNC,))
        wait_backfilled(pub, SYNC)
        assert "opportunity" in published_tables(pub, publication)
        opportunities = query_value(pub, "SELECT count(*) FROM salesforce.opportunity")
        assert opportunities > 0
        # ... so its first rows stop the subscriber, which has no such table: the apply
        # worker fails and retries (the whole stream waits, nothing is lost)
        wait_for(lambda: 'logical replication target relation "salesforce.opportunity"'
                         ' does not exist' in subscriber.log(),
                 timeout=180, what="the subscriber to miss the new table")
        assert query_value(
            sub, "SELECT apply_error_count FROM pg_stat_subscription_stats"
            " WHERE subname = 'sf'") > 0

        # create the table there: the stream resumes (the Opportunity backfill's events
        # arrive) but the new table's own changes are skipped, it is not in the
        # subscription yet
        dump, listing = schema_ddl(publisher, str(tmp_path), "opportunity",
                                   "-t", f"{SCHEMA}.opportunity")
        restore(dump, listing, subscriber)
        wait_for(lambda: differences(pub, sub, publication,
                                     tables={"_sync_events", "contact", "account"}) == [],
                 timeout=300, what="the stream to resume once the table exists")
        assert query_value(
            sub, "SELECT count(*) FROM salesforce._sync_events"
            " WHERE collection_id = 'salesforce:opportunity'") == opportunities
        assert query_value(sub, "SELECT count(*) FROM salesforce.opportunity") == 0
        assert query_value(sub, "SELECT count(*) FROM pg_subscription_rel") == 5

        # REFRESH PUBLICATION adds it to the subscription and copies its contents
        sub.execute("ALTER SUBSCRIPTION sf REFRESH PUBLICATION")
        wait_subscription_ready(sub, 6)
        wait_for(lambda: differences(pub, sub, publication) == [], timeout=300,
                 what="subscriber equal to publisher after REFRESH PUBLICATION")
        assert query_value(sub, "SELECT count(*) FROM salesforce.opportunity") == opportunities

        # and from then on its changes stream like the others'
        oid = query_value(pub, "SELECT id FROM salesforce.opportunity ORDER BY id LIMIT 1")
        emulator.control("PATCH", f"records/Opportunity/{oid}", {"Name": "Replicated Deal"})
        wait_for(lambda: query_value(sub, "SELECT name FROM salesforce.opportunity"
                                          " WHERE id = %s", (oid,)) == "Replicated Deal",
                 timeout=180, what="an Opportunity change on the subscriber")
        wait_for(lambda: differences(pub, sub, publication) == [], timeout=300,
                 what="subscriber equal to publisher at the end")
    finally:
        sub.close()
        pub.close()
